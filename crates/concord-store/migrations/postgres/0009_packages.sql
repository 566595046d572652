-- Transfer packages (issue 22): the chains of signed packages this node wrote for each
-- partner ('out', node '') and imported from each producer ('in', node = the producer's
-- public key, hex), and the cursor of each (partner, collection) that `--since-last` resumes
-- after. A chain advances only from the sequence its writer read (compare and set), so two
-- processes never write or import the same sequence number twice.
CREATE TABLE package_chains (
    direction  TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    node       TEXT NOT NULL,
    partner    TEXT NOT NULL,
    sequence   BIGINT NOT NULL CHECK (sequence >= 1),
    digest     TEXT NOT NULL,
    updated_ns BIGINT NOT NULL,
    PRIMARY KEY (direction, node, partner)
);
-- The last entry (in the collection's (date_added, id, version, seq) order) that a package
-- for the partner covered.
CREATE TABLE package_cursors (
    partner       TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    date_added_ns BIGINT NOT NULL,
    object_id     TEXT NOT NULL,
    version_key   TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (partner, collection_id)
);
