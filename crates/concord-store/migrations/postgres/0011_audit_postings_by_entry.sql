-- Schema 11 (issue 17): on SQLite, the posting index by entry (0011 there). PostgreSQL keeps
-- an entry's postings in the entry's own row (`audit_entries.vids`, GIN-indexed), which
-- `audit verify` reads with the entry: nothing to add. Kept so that both backends count
-- the same schema versions.
SELECT 1;
