-- Schema 18 (issue 20; the SQLite twin says why in full): named users and web sessions, in
-- the database so that every `concord serve` process on one database knows every user and serves every
-- session (DESIGN.md: the server keeps no state of its own).
--
-- A user has two secrets, each kept as its argon2id PHC hash: the password of the web UI's
-- login (with the second factor, if any) and the login token of the admin REST API
-- (`concordu_<token_id>_<secret>`, for automation: never typed into a browser). `token_id`
-- (16 hex digits, random) finds the user from a token without the name. `totp_secret`: the RFC 6238 key, hex, NULL without a second factor;
-- `totp_last_step`: the last time step accepted, so a code is accepted once (RFC 6238 §5.2).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_id TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    created_ns BIGINT NOT NULL
);

-- A session is found by the SHA-256 (hex) of its cookie value: the value itself is never
-- stored, so a copy of the database opens no session. `kind`: admin | partner | user;
-- `subject`: '' for the admin, the partner's key id, or the user's name.
CREATE TABLE web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL
);
CREATE INDEX web_sessions_subject ON web_sessions (kind, subject);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen_ns);
