-- Schema 20 (issue 20, item 5): the web UI's OpenID Connect logins between the redirect to
-- the provider and its answer at /ui/oidc/callback, in the database so that any
-- `concord serve` process on one database finishes a login another one began (DESIGN.md: the
-- server keeps no state of its own).
--
-- A row is found by the SHA-256 (hex) of the login's `state` (RFC 6749 §10.12), and taken
-- (deleted) by the first callback that names it, so a state and its code are used once.
-- `nonce` (OpenID Connect Core 1.0 §3.1.2.1) and `code_verifier` (RFC 7636 §4.1) are kept
-- as sent: the callback needs them; they open nothing without the provider's code, which
-- the provider gives only to the browser that logged in. `next_path`: the page to return
-- to; `source`: the client's address (an IPv6 address by its /64), counted against the
-- per-source quota; `expires_ns`: after it the row is refused and deleted.
CREATE TABLE oidc_logins (
    state_sha256 TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    next_path TEXT NOT NULL,
    source TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL
);
CREATE INDEX oidc_logins_source ON oidc_logins (source);
CREATE INDEX oidc_logins_expires ON oidc_logins (expires_ns);
