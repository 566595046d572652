-- Schema version 8 (issue 24, item 14): a conflicting `(id, modified)` is decided per
-- collection. Before, `(id, modified_key)` was unique over the whole node, so a writer of
-- one collection whose version differed from one held by another collection was refused,
-- and the refusal told it that another collection holds the object (an oracle). Now two
-- collections may hold different content under one `(id, modified)`: a version row is
-- unique by `(id, modified_key, content_hash)`, and the write batch refuses a conflict only
-- when its own collection holds the other content (STIX 2.1 §3.6 within what the writer can
-- read). Rows are still shared between collections when their content is the same.
DROP INDEX object_versions_id_modified;
CREATE UNIQUE INDEX object_versions_id_modified
    ON object_versions (id, modified_key, content_hash) WHERE modified_key IS NOT NULL;
