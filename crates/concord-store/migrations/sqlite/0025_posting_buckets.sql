-- Schema 25 (issue 17): the posting index keeps one row per block of 64 version rows an
-- entry names, not one per version row. A partner page of 100 objects names 100 vids, mostly
-- consecutive (a collection's versions are stored in the order they came), so the append
-- wrote about 100 postings per page: most of the cost of recording a page, and ~10 bytes per
-- object served. It now writes about 2 or 3. `bucket` is vid >> 6
-- (concord_store::sqlite::POSTING_BUCKET_BITS); a look-up by vid reads the entries of its
-- bucket and keeps those whose items name it (the items are decoded anyway to show them).
CREATE TABLE audit_posting_buckets (
    bucket INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (bucket, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO audit_posting_buckets (bucket, seq) SELECT vid >> 6, seq FROM audit_postings;
DROP TABLE audit_postings;
ALTER TABLE audit_posting_buckets RENAME TO audit_postings;
