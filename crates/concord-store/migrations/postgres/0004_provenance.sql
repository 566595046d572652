-- Provenance (issue 7): which peer each object version was received from, and when. Sync
-- reads it to never push a version back to the peer it came from (no echoes) and to send a
-- sighting home to the peer that produced the indicator. `version` is the entry's version
-- text (`modified`, else `created`, else empty).
CREATE TABLE provenance (
    object_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    peer        TEXT NOT NULL,
    received_ns BIGINT NOT NULL,
    PRIMARY KEY (object_id, version, peer)
);
