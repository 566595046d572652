-- Schema 23 (issue 17): the posting index is written after its entries, off the path of
-- the read that appended them. `indexed_through`: every transfer entry with seq <= it has
-- its postings in audit_postings; the entries above it (at most a bounded number, see
-- concord_store::sqlite::POSTINGS_LAG_MAX) are found by decoding their items. The index
-- is derived (not part of the chain): `audit verify` checks the postings of the entries at
-- or below the mark, and a mark set too low only makes `audit show` read more.
CREATE TABLE audit_index (
    one             INTEGER PRIMARY KEY CHECK (one = 1),
    indexed_through INTEGER NOT NULL
);
-- Every entry written before this schema was indexed as it was appended.
INSERT INTO audit_index (one, indexed_through)
VALUES (1, COALESCE((SELECT MAX(seq) FROM audit_entries), 0));
