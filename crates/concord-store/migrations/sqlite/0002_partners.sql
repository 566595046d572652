-- Partners: organisations with credentials on this node (issue 5). The record (jurisdiction,
-- sharing groups, collection permissions, argon2 hash of the API key secret) is one JSON
-- document; key_id is the public half of the API key, unique, for the lookup.
CREATE TABLE partners (
    name       TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL UNIQUE,
    record     TEXT NOT NULL
);
