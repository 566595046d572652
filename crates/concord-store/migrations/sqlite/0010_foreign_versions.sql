-- Versions a partner wrote of an object it did not create, while every version of the object
-- this collection held was withheld from it (issue 18; STIX 2.1 §3.6: only an object's creator
-- makes new versions of it). The write is answered, and read back by its writer, as a new
-- object's would be (issue 15: the answer never tells that withheld versions exist); nobody
-- else reads it: every query of the store leaves it out unless asked for this writer's view
-- (ObjectFilter::foreign). `writer` is the provenance name (`partner/NAME`).
CREATE TABLE foreign_versions (
    collection_id TEXT NOT NULL,
    vid           INTEGER NOT NULL,
    writer        TEXT NOT NULL,
    PRIMARY KEY (collection_id, vid)
);

-- Whether the source brought the version first (it was new to the node then), as opposed to
-- sending again one the node held already (an echo): only a version a partner brought first
-- is its own to make new versions of (issue 18). Rows from before count as not first.
ALTER TABLE provenance ADD COLUMN first INTEGER NOT NULL DEFAULT 0;
