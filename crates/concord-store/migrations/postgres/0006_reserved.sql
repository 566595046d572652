-- Reserved for 0006_collection_version (another branch, issue 16/18 work): migrations are applied
-- by position, so this placeholder keeps 0007 at position 7. Replace this file with the real
-- 0006 when both are merged (no database has run 0007 before then).
SELECT 1;
