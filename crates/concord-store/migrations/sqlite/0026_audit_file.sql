-- Schema 26 (issue 17): the audit log moves to a file of its own
-- (migrations/sqlite-audit/0001_audit_file.sql says why). Before this runs, the store has
-- copied every row of these tables into that file and recorded its id as the setting
-- `audit.file` (in this transaction); here the main file lets them go.
-- audit_version_names stays: it is written with the deletion of a version row, in the main
-- file's transaction.
DROP TABLE audit_log;
DROP TABLE audit_entries;
DROP TABLE audit_postings;
DROP TABLE audit_checkpoints;
DROP TABLE audit_archives;
