-- Schema version 6 (issue 16, item 2): a version counter per collection, the same as
-- migrations/sqlite/0006_collection_version.sql. Every write batch that adds an entry to the
-- collection and every delete that removes one adds 1 to it, in the same transaction; it is
-- a row of the database, so every `concord serve` process on it sees it move (a cache of
-- compiled indicator sets in one process is invalidated by a write through another).

ALTER TABLE collections ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
