-- Schema 12 (issue 17, attack finding: the names `audit show` prints were outside the chain).
-- An entry refers to object versions by version row (vid); the object id and version it is
-- shown with come from object_versions, or from audit_version_names once the row is deleted,
-- and neither table is covered by the chain, so renaming a row redirected `audit show` while
-- `audit verify` said intact. Each new entry records the SHA-256 of the names of its version
-- rows (concord_store::audit::names_digest: vid, object id, modified), covered by its hash
-- (concord-audit-transfer-v2); `audit verify` recomputes it from the tables.
--
-- Entries from before keep names NULL and their v1 hash, so they still verify (without the
-- names check). audit_version_names keeps `modified` as stored (NULL: a version without one,
-- or a name kept before this schema), because the digest binds `modified`, not the version
-- text: an SCO's version text is its first date_added, which changes when that entry goes.
ALTER TABLE audit_entries ADD COLUMN names BYTEA;
ALTER TABLE audit_version_names ADD COLUMN modified TEXT;
