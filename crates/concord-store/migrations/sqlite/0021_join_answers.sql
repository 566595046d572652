-- Schema 21 (issue 19): a join answered once is answered the same to a retry of the same
-- request. request_sha256: the SHA-256 (hex) of the canonical join request that consumed the
-- invitation; answer: the signed answer sent to it, sealed (XChaCha20-Poly1305) under a key
-- derived from the invitation's secret, which the node never keeps: the stored row alone
-- yields neither the API key in the answer nor anything else of it.
ALTER TABLE invitations ADD COLUMN request_sha256 TEXT;
ALTER TABLE invitations ADD COLUMN answer TEXT;
