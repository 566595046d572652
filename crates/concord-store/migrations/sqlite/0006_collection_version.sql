-- Schema version 6 (issue 16, item 2): a version counter per collection. Every write batch
-- that adds an entry to the collection and every delete that removes one adds 1 to it, in
-- the same transaction, so a cache of anything computed from a collection's entries (the
-- compiled indicator sets of POST /api/match) is stale exactly when the counter moved.
-- `date_added` alone does not tell: a delete does not move it.

ALTER TABLE collections ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
