-- Schema 15 (issue 19): invitations this node issued (`concord invite`). The secret is never
-- kept, only its SHA-256 (hex): the invitation file holds the secret, the node can check it
-- and nothing more. A join consumes the row (used_ns, used_by) in the same transaction that
-- creates the partner and the peer, so an invitation admits one join, however many race.
-- offer: the invitation as issued, without its secret (JSON): the grants a join gives.
CREATE TABLE invitations (
    id            TEXT PRIMARY KEY,
    partner       TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_ns    BIGINT NOT NULL,
    expires_ns    BIGINT NOT NULL,
    used_ns       BIGINT,
    used_by       TEXT,
    offer         TEXT NOT NULL
);
