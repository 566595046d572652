-- Schema version 5 (issue 16, item 5): object versions are keyed and ordered by a text key
-- instead of INTEGER nanoseconds since 1970, which only reach 1677–2262: a real feed's
-- `modified: "9999-12-31T23:59:59Z"` and leap seconds (`23:59:60`) did not fit.
--
-- The key is concord_stix::Timestamp::sort_key: ISO 8601 basic format, UTC, nine fraction
-- digits (`20161231T235960.500000000Z`), 26 bytes, so text order (memcmp) is time order over
-- years 0001–9999, leap seconds included. `date_added_ns` stays INTEGER: the node sets it
-- from its own clock, always inside 1677–2262.
--
-- Existing rows get the key of their nanoseconds (floor division, so dates before 1970 too);
-- the order of every existing row is unchanged.

ALTER TABLE object_versions ADD COLUMN modified_key TEXT;
UPDATE object_versions SET modified_key =
    strftime('%Y%m%dT%H%M%S',
             (modified_ns - ((modified_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000,
             'unixepoch')
    || '.' || printf('%09d', ((modified_ns % 1000000000) + 1000000000) % 1000000000) || 'Z'
    WHERE modified_ns IS NOT NULL;
DROP INDEX object_versions_id_modified;
DROP INDEX object_versions_id_hash;
ALTER TABLE object_versions DROP COLUMN modified_ns;
CREATE UNIQUE INDEX object_versions_id_modified
    ON object_versions (id, modified_key) WHERE modified_key IS NOT NULL;
CREATE UNIQUE INDEX object_versions_id_hash
    ON object_versions (id, content_hash) WHERE modified_key IS NULL;

-- The TAXII version of the entry: modified, else created, else date_added, as a key.
ALTER TABLE collection_entries ADD COLUMN version_key TEXT NOT NULL DEFAULT '';
UPDATE collection_entries SET version_key =
    strftime('%Y%m%dT%H%M%S',
             (version_ns - ((version_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000,
             'unixepoch')
    || '.' || printf('%09d', ((version_ns % 1000000000) + 1000000000) % 1000000000) || 'Z';
DROP INDEX entries_page;
DROP INDEX entries_by_id;
ALTER TABLE collection_entries DROP COLUMN version_ns;
CREATE INDEX entries_page
    ON collection_entries (collection_id, date_added_ns, id, version_key, seq);
CREATE INDEX entries_by_id ON collection_entries (collection_id, id, version_key);
