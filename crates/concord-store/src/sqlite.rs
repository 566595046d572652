//! The embedded default backend: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time: the store keeps one writer connection behind a mutex
//! (a [`WriteBatch`] holds it for its whole transaction) and a small pool of reader
//! connections, so TAXII reads go on while an import writes. `synchronous = FULL`: a
//! committed batch survives a crash or power loss, which TAXII's 202 promises the client.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::audit::{AuditEntry, AuditRecord, chain_after};
use crate::{
    AddOutcome, Collection, Entry, NewCollection, NewObject, ObjectFilter, Page, PageRequest,
    Partner, Result, Store, StoreError, StoreOptions, WriteBatch, content_hash,
};
use crate::{VersionParams, version_condition};

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/sqlite/0002_partners.sql"),
    include_str!("../migrations/sqlite/0003_audit.sql"),
    include_str!("../migrations/sqlite/0004_provenance.sql"),
    include_str!("../migrations/sqlite/0005_timestamp_keys.sql"),
    include_str!("../migrations/sqlite/0006_collection_version.sql"),
];

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    options: StoreOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Sets up a connection; its page cache is `cache_bytes` ([`StoreOptions::sqlite_cache_bytes`]).
fn configure(conn: &Connection, cache_bytes: u64) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // A negative cache_size is in KiB; at least 64 KiB.
    let kib = (cache_bytes / 1024).max(64);
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA cache_size = -{kib};
         PRAGMA temp_store = MEMORY;"
    ))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// Errors: [`StoreError::SchemaTooNew`] for a file from a newer Concord, or a database
    /// error.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// [`SqliteStore::open`], with at most [`StoreOptions::sqlite_readers`] idle readers
    /// kept and [`StoreOptions::sqlite_cache_bytes`] of page cache per connection.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        configure(&conn, options.sqlite_cache_bytes)?;
        migrate(&conn)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            options: options.clone(),
        })
    }

    /// What the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable (SQLite rolls back).
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c, self.options.sqlite_cache_bytes)?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.options.sqlite_readers {
            pool.push(conn);
        }
        out
    }
}

impl SqliteStore {
    /// Opens a write batch on `collection_id`, first creating `create` in its transaction.
    fn begin(
        &self,
        collection_id: &str,
        create: Option<&Collection>,
    ) -> Result<Box<dyn WriteBatch + '_>> {
        if let Some(c) = create {
            crate::check_alias(c.alias.as_deref().unwrap_or_default())?;
        }
        let conn = self.writer();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut batch = SqliteBatch {
            conn,
            collection_id: collection_id.to_owned(),
            date_added_ns: 0,
            open: true,
            added: false,
        };
        if let Some(c) = create {
            let alias = c.alias.clone().unwrap_or_default();
            let taken: bool = batch.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM collections WHERE alias = ?1 OR id = ?1 OR id = ?2)",
                params![alias, c.id],
                |r| r.get(0),
            )?;
            if taken {
                return Err(StoreError::CollectionExists(alias));
            }
            insert_collection(&batch.conn, c)?;
        }
        let known: bool = batch.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM collections WHERE id = ?1)",
            [collection_id],
            |r| r.get(0),
        )?;
        if !known {
            return Err(StoreError::NoSuchCollection(collection_id.to_owned()));
        }
        // date_added only grows, node-wide: a page that ended at the newest entry can never
        // be overtaken by an entry dated earlier (keyset pagination stays complete).
        let last: Option<i64> = batch.conn.query_row(
            "SELECT MAX(date_added_ns) FROM collection_entries",
            [],
            |r| r.get(0),
        )?;
        batch.date_added_ns = now_ns().max(last.map_or(i64::MIN, |l| l + 1_000));
        Ok(Box::new(batch))
    }
}

fn insert_collection(conn: &Connection, c: &Collection) -> Result<()> {
    conn.execute(
        "INSERT INTO collections (id, alias, title, description, created_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![c.id, c.alias, c.title, c.description, now_ns()],
    )?;
    Ok(())
}

/// Moves a collection's version ([`Store::collection_version`]), in the caller's transaction.
fn bump_version(conn: &Connection, collection_id: &str) -> Result<()> {
    conn.prepare_cached("UPDATE collections SET version = version + 1 WHERE id = ?1")?
        .execute([collection_id])?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

fn row_to_collection(r: &rusqlite::Row<'_>) -> rusqlite::Result<Collection> {
    Ok(Collection {
        id: r.get(0)?,
        alias: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
    })
}

struct SqliteBatch<'a> {
    conn: MutexGuard<'a, Connection>,
    collection_id: String,
    date_added_ns: i64,
    open: bool,
    /// Whether an entry was added: the commit moves the collection's version.
    added: bool,
}

impl Drop for SqliteBatch<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl WriteBatch for SqliteBatch<'_> {
    fn date_added_ns(&self) -> i64 {
        self.date_added_ns
    }

    fn add(&mut self, object: &NewObject<'_>) -> Result<AddOutcome> {
        let h = object.header;
        let hash = content_hash(object.value);
        let version = h.version();
        let modified_key = version.map(|t| t.sort_key());
        let existing: Option<(i64, Vec<u8>)> = match &modified_key {
            Some(m) => self
                .conn
                .prepare_cached(
                    "SELECT vid, content_hash FROM object_versions WHERE id = ?1 AND modified_key = ?2",
                )?
                .query_row(params![h.id, m], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
            None => self
                .conn
                .prepare_cached(
                    "SELECT vid, content_hash FROM object_versions
                     WHERE id = ?1 AND modified_key IS NULL AND content_hash = ?2",
                )?
                .query_row(params![h.id, &hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        let vid = match existing {
            Some((_, stored)) if stored != hash => {
                return Ok(AddOutcome::Conflict(format!(
                    "a different object with id {} and modified {} is already stored; \
                     a new version needs a new modified (STIX 2.1 §3.6)",
                    h.id,
                    version.map(|t| t.as_str()).unwrap_or("-")
                )));
            }
            Some((vid, _)) => vid,
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO object_versions
                         (id, type, spec_version, modified_key, modified, content_hash, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        h.id,
                        h.object_type,
                        h.spec_version.as_str(),
                        modified_key,
                        version.map(|t| t.as_str()),
                        &hash[..],
                        object.body
                    ])?;
                self.conn.last_insert_rowid()
            }
        };
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO collection_entries
                 (collection_id, vid, date_added_ns, id, type, spec_version, version_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                self.collection_id,
                vid,
                self.date_added_ns,
                h.id,
                h.object_type,
                h.spec_version.as_str(),
                modified_key.unwrap_or_else(|| {
                    concord_stix::Timestamp::from_unix_nanos(self.date_added_ns, 9).sort_key()
                })
            ])?;
        Ok(if n == 1 {
            self.added = true;
            AddOutcome::Added
        } else {
            AddOutcome::AlreadyPresent
        })
    }

    fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()> {
        insert_audit(&self.conn, records)
    }

    fn add_provenance(&mut self, object_id: &str, version: &str, peer: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO provenance (object_id, version, peer, received_ns)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![object_id, version, peer, now_ns()],
        )?;
        Ok(())
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.added {
            bump_version(&self.conn, &self.collection_id)?;
        }
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

/// Builds the WHERE clause shared by listing and deleting.
struct Query {
    sql: String,
    args: Vec<SqlValue>,
}

impl Query {
    fn new(collection_id: &str) -> Query {
        Query {
            sql: "e.collection_id = ?".to_owned(),
            args: vec![SqlValue::Text(collection_id.to_owned())],
        }
    }

    fn list(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.sql.push_str(&format!(
            " AND {column} IN ({})",
            vec!["?"; values.len()].join(",")
        ));
        self.args
            .extend(values.iter().map(|v| SqlValue::Text(v.clone())));
    }

    /// `match[spec_version]` and `match[version]` (TAXII 2.1 §3.4.2).
    fn versions(&mut self, filter: &ObjectFilter) {
        // `same_spec` restricts the entries of the same object that count when picking the
        // first or last version; it comes with its own arguments.
        let (same_spec, same_spec_args) = if filter.spec_versions.is_empty() {
            // Without match[spec_version], only the newest spec version held of each object.
            self.sql.push_str(
                " AND e.spec_version = (SELECT MAX(s.spec_version) FROM collection_entries s
                   WHERE s.collection_id = e.collection_id AND s.id = e.id)",
            );
            ("x.spec_version = e.spec_version".to_owned(), Vec::new())
        } else {
            self.list("e.spec_version", &filter.spec_versions);
            (
                format!(
                    "x.spec_version IN ({})",
                    vec!["?"; filter.spec_versions.len()].join(",")
                ),
                filter
                    .spec_versions
                    .iter()
                    .map(|v| SqlValue::Text(v.clone()))
                    .collect(),
            )
        };
        let mut params = SqliteVersionParams {
            query: self,
            same_spec_args,
        };
        if let Some(cond) = version_condition(&filter.versions, &same_spec, &mut params) {
            self.sql.push_str(&cond);
        }
    }
}

/// Positional `?` parameters: the `same_spec` arguments are bound again at each use.
struct SqliteVersionParams<'q> {
    query: &'q mut Query,
    same_spec_args: Vec<SqlValue>,
}

impl VersionParams for SqliteVersionParams<'_> {
    fn same_spec_used(&mut self) {
        self.query.args.extend(self.same_spec_args.iter().cloned());
    }

    fn version_at(&mut self, key: String) -> String {
        self.query.args.push(SqlValue::Text(key));
        "?".to_owned()
    }
}

impl Store for SqliteStore {
    fn collections(&self) -> Result<Vec<Collection>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, alias, title, description FROM collections ORDER BY alias, id",
            )?;
            let rows = st.query_map([], row_to_collection)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn collection(&self, id_or_alias: &str) -> Result<Option<Collection>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT id, alias, title, description FROM collections WHERE id = ?1 OR alias = ?1
                 ORDER BY id = ?1 DESC LIMIT 1",
            )?
            .query_row([id_or_alias], row_to_collection)
            .optional()?)
        })
    }

    fn create_collection(&self, new: &NewCollection) -> Result<Collection> {
        crate::check_alias(&new.alias)?;
        let conn = self.writer();
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM collections WHERE alias = ?1 OR id = ?1)",
            [&new.alias],
            |r| r.get(0),
        )?;
        if exists {
            return Err(StoreError::CollectionExists(new.alias.clone()));
        }
        let c = new.with_new_id();
        insert_collection(&conn, &c)?;
        Ok(c)
    }

    fn begin_write(&self, collection_id: &str) -> Result<Box<dyn WriteBatch + '_>> {
        self.begin(collection_id, None)
    }

    fn begin_write_creating(&self, collection: &Collection) -> Result<Box<dyn WriteBatch + '_>> {
        self.begin(&collection.id, Some(collection))
    }

    fn entries(
        &self,
        collection_id: &str,
        filter: &ObjectFilter,
        page: &PageRequest,
        with_body: bool,
    ) -> Result<Page> {
        let mut q = Query::new(collection_id);
        if let Some(after) = filter.added_after_ns {
            q.sql.push_str(" AND e.date_added_ns > ?");
            q.args.push(SqlValue::Integer(after));
        }
        q.list("e.id", &filter.ids);
        q.list("e.type", &filter.types);
        q.versions(filter);
        if let Some(c) = &page.after {
            q.sql
                .push_str(" AND (e.date_added_ns, e.id, e.version_key, e.seq) > (?, ?, ?, ?)");
            q.args.extend([
                SqlValue::Integer(c.date_added_ns),
                SqlValue::Text(c.id.clone()),
                SqlValue::Text(c.version_key.clone()),
                SqlValue::Integer(c.seq),
            ]);
        }
        let limit = page.limit.max(1);
        // With `match[id]` (and the egress door's look-ups of referenced objects), the few
        // entries of those ids are found by id and then sorted; left to itself, SQLite walks
        // the whole collection in page order to honour ORDER BY and tests each entry.
        let index = if filter.ids.is_empty() {
            ""
        } else {
            " INDEXED BY entries_by_id"
        };
        let sql = format!(
            "SELECT e.id, e.date_added_ns, e.version_key, v.modified, e.spec_version, e.type, e.seq, {}
             FROM collection_entries e{index} JOIN object_versions v ON v.vid = e.vid
             WHERE {}
             ORDER BY e.date_added_ns, e.id, e.version_key, e.seq
             LIMIT {}",
            if with_body { "v.body" } else { "NULL" },
            q.sql,
            limit + 1
        );
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(q.args.iter()), |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    date_added_ns: r.get(1)?,
                    version_key: r.get(2)?,
                    version_text: r.get(3)?,
                    spec_version: r.get(4)?,
                    object_type: r.get(5)?,
                    seq: r.get(6)?,
                    body: r.get(7)?,
                })
            })?;
            let mut entries = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let more = entries.len() > limit;
            entries.truncate(limit);
            Ok(Page { entries, more })
        })
    }

    fn delete_object(&self, collection_id: &str, id: &str, filter: &ObjectFilter) -> Result<usize> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut q = Query::new(collection_id);
        q.list("e.id", &[id.to_owned()]);
        q.versions(filter);
        let n = tx.execute(
            &format!(
                "DELETE FROM collection_entries WHERE seq IN
                 (SELECT e.seq FROM collection_entries e WHERE {})",
                q.sql
            ),
            rusqlite::params_from_iter(q.args.iter()),
        )?;
        tx.execute(
            "DELETE FROM object_versions WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM collection_entries e WHERE e.vid = object_versions.vid)",
            [id],
        )?;
        if n > 0 {
            bump_version(&tx, collection_id)?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn count(&self, collection_id: &str) -> Result<u64> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached(
                    "SELECT COUNT(*) FROM collection_entries WHERE collection_id = ?1",
                )?
                .query_row([collection_id], |r| r.get::<_, i64>(0))? as u64,
            )
        })
    }

    fn last_added(&self, collection_id: &str) -> Result<Option<i64>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT MAX(date_added_ns) FROM collection_entries WHERE collection_id = ?1",
            )?
            .query_row([collection_id], |r| r.get::<_, Option<i64>>(0))?)
        })
    }

    fn collection_version(&self, collection_id: &str) -> Result<i64> {
        self.with_reader(|c| {
            c.prepare_cached("SELECT version FROM collections WHERE id = ?1")?
                .query_row([collection_id], |r| r.get::<_, i64>(0))
                .optional()?
                .ok_or_else(|| StoreError::NoSuchCollection(collection_id.to_owned()))
        })
    }

    fn put_status(&self, id: &str, body: &str) -> Result<()> {
        self.writer().execute(
            "INSERT OR REPLACE INTO status_resources (id, created_ns, body) VALUES (?1, ?2, ?3)",
            params![id, now_ns(), body],
        )?;
        Ok(())
    }

    fn status(&self, id: &str) -> Result<Option<String>> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached("SELECT body FROM status_resources WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                    .query_row([key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn partners(&self) -> Result<Vec<Partner>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached("SELECT record FROM partners ORDER BY name")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| Partner::from_record(&r?)).collect()
        })
    }

    fn put_partner(&self, partner: &Partner) -> Result<()> {
        self.writer().execute(
            "INSERT INTO partners (name, key_id, record) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, record = excluded.record",
            params![partner.name, partner.key_id, partner.to_record()],
        )?;
        Ok(())
    }

    fn remove_partner(&self, name: &str) -> Result<bool> {
        Ok(self
            .writer()
            .execute("DELETE FROM partners WHERE name = ?1", [name])?
            == 1)
    }

    fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer();
        // IMMEDIATE: the write lock of the file, so that two processes cannot fork the chain.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_audit(&tx, records)?;
        tx.commit()?;
        Ok(())
    }

    fn audit(
        &self,
        after_seq: i64,
        limit: usize,
        partner: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, time_ns, direction, door, partner, collection_id, object_id,
                 modified, decision, transformations, policy_version, prev_hash, hash
                 FROM audit_log WHERE seq > ?1 AND (?2 IS NULL OR partner = ?2)
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![after_seq, partner, limit], |r| {
                Ok((
                    AuditEntry {
                        seq: r.get(0)?,
                        time_ns: r.get(1)?,
                        record: AuditRecord {
                            direction: r.get(2)?,
                            door: r.get(3)?,
                            partner: r.get(4)?,
                            collection: r.get(5)?,
                            object_id: r.get(6)?,
                            modified: r.get(7)?,
                            decision: r.get(8)?,
                            transformations: Vec::new(),
                            policy_version: r.get(10)?,
                        },
                        prev_hash: r.get(11)?,
                        hash: r.get(12)?,
                    },
                    r.get::<_, String>(9)?,
                ))
            })?;
            rows.map(|row| {
                let (mut e, t) = row?;
                e.record.transformations = crate::audit::parse_transformations(&t);
                Ok(e)
            })
            .collect()
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.writer().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn try_lease(&self, key: &str, holder: &str, now_ns: i64, until_ns: i64) -> Result<bool> {
        let changed = self.writer().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value
             WHERE substr(settings.value, 1, 20) < ?3 OR substr(settings.value, 22) = ?4",
            params![
                key,
                crate::lease_value(holder, until_ns),
                crate::lease_value("", now_ns)[..20].to_owned(),
                holder
            ],
        )?;
        Ok(changed == 1)
    }

    fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            let rows = st.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn received_from(&self, object_id: &str, version: Option<&str>) -> Result<Vec<String>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT peer FROM provenance
                 WHERE object_id = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY peer",
            )?;
            let rows = st.query_map(params![object_id, version], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        if let Some(v) = self.setting(key)? {
            return Ok(v);
        }
        // `INSERT … DO NOTHING` then a read on the writer connection: the file's write lock
        // orders racing processes, and the first insert wins.
        let conn = self.writer();
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )?)
    }
}

/// Appends audit records after the last entry of the chain, inside the caller's write
/// transaction (which holds the file's write lock, so the chain cannot fork).
fn insert_audit(conn: &Connection, records: &[AuditRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut st = conn.prepare_cached(
        "INSERT INTO audit_log (seq, time_ns, direction, door, partner, collection_id,
         object_id, modified, decision, transformations, policy_version, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for e in chain_after(last, now_ns(), records) {
        let r = &e.record;
        st.execute(params![
            e.seq,
            e.time_ns,
            r.direction,
            r.door,
            r.partner,
            r.collection,
            r.object_id,
            r.modified,
            r.decision,
            serde_json::to_string(&r.transformations).unwrap_or_default(),
            r.policy_version,
            e.prev_hash,
            e.hash
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, item 3: each connection's page cache is `sqlite_cache_bytes`, and of the
    /// readers opened while many read at once, `sqlite_readers` stay open after.
    #[test]
    fn readers_and_their_caches_are_sized_by_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            sqlite_readers: 2,
            sqlite_cache_bytes: 1 << 20,
            ..StoreOptions::default()
        };
        let store = SqliteStore::open_with(&dir.path().join("t.sqlite"), &options).unwrap();
        let barrier = std::sync::Barrier::new(6);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    store
                        .with_reader(|c| {
                            // All six hold a reader at once.
                            barrier.wait();
                            let kib: i64 =
                                c.pragma_query_value(None, "cache_size", |r| r.get(0))?;
                            assert_eq!(kib, -1024);
                            Ok(())
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(store.readers.lock().unwrap().len(), 2);
        let kib: i64 = store
            .writer()
            .pragma_query_value(None, "cache_size", |r| r.get(0))
            .unwrap();
        assert_eq!(kib, -1024);
    }
}
