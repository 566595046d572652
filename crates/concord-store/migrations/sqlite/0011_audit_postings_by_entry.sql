-- Schema 11 (issue 17): the posting index read by entry as well as by version row.
-- `audit verify` checks that every entry it verifies is in the posting index (the index is
-- derived from the items, outside the chain: deleted postings would hide an entry from
-- `audit show --object`). By entry it reads the postings of a range of entries in one
-- sequential scan, instead of one random look-up per (vid, entry); entries only grow, so
-- this index is appended to at its end. Archiving removes a prefix through it too.
CREATE INDEX audit_postings_seq ON audit_postings (seq);
