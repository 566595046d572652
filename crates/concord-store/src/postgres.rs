//! The scale backend: PostgreSQL (or any server that speaks its protocol), chosen by a
//! `postgres://` URL (DESIGN.md, "Storage").
//!
//! The same model and the same semantics as [`crate::sqlite`] — the conformance suite
//! (`tests/conformance.rs`) runs unchanged on both — with these differences:
//!
//! - **Several processes share one database.** A node's state lives only in the database:
//!   `concord serve` processes on one database act as one node. Reads go through a small pool
//!   of connections per process.
//! - **One writer at a time, node-wide.** Each write batch (and each delete) takes a
//!   transaction-scoped advisory lock (`pg_advisory_xact_lock`) first, so batches are
//!   serialised across processes; the batch then sets the node's `date_added` clock
//!   (`write_clock`) to `max(now, last + 1 µs)` and uses it. `date_added` therefore grows
//!   strictly in commit order, which keyset pagination needs (ARCHITECTURE.md, "date_added
//!   only grows"). `now` is the database server's clock, the one clock every process shares.
//! - **Bulk writes.** Holding the lock, a batch knows that no one else adds object versions,
//!   so it decides each object's outcome with one indexed lookup, draws version ids from the
//!   sequence in blocks, and writes rows with binary `COPY` in chunks (measured faster than
//!   batched multi-row `INSERT … SELECT unnest(…)`; figures in `docs/scaling.md`).
//! - **Durability**: `COMMIT` returns once the WAL is flushed (`synchronous_commit = on`, the
//!   server default), which TAXII's 202 promises the client.
//!
//! Bodies are TEXT, never `jsonb` (which would reorder keys and drop whitespace): objects are
//! served as their producer wrote them. `date_added` is BIGINT nanoseconds; object versions
//! are keyed by `concord_stix::Timestamp::sort_key` text (years 0001–9999, leap seconds), as
//! in SQLite.
//! Migrations live in `migrations/postgres/NNNN_name.sql`; applied ones are recorded in the
//! table `concord_schema_migrations`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::error::SqlState;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Config, NoTls, Row, Statement};
use sha2::Digest;

use crate::audit::{
    ArchiveBoundary, AuditEntry, AuditRecord, Checkpoint, GENESIS, Hash, TransferEntry,
    chain_after, chain_transfers, group_records, parse_transformations, pending_vids,
};
use crate::{
    AddOutcome, Collection, Cursor, Entry, NewCollection, NewObject, ObjectFilter,
    PackageDirection, PackageLink, Page, PageRequest, Partner, Result, Store, StoreError,
    StoreOptions, WriteBatch, conflict_message, content_hash,
};
use crate::{Admission, InvitationRecord, InvitationUse};
use crate::{
    Approval, ApprovalDecision, OidcBegin, OidcLogin, OidcQuota, PartnerSwap, SessionClock,
    SessionSubject, SettingChange, User, WebSession,
};
use crate::{AuditQuery, AuditWindow, VersionName};
use crate::{ForeignVersions, VersionParams, version_condition};

/// The columns [`user_row`] reads.
const USER_COLUMNS: &str =
    "name, role, token_id, password_hash, token_hash, totp_secret, created_ns";

fn user_row(r: &Row) -> User {
    User {
        name: r.get(0),
        role: r.get(1),
        token_id: r.get(2),
        password_hash: r.get(3),
        token_hash: r.get(4),
        totp_secret: r.get(5),
        created_ns: r.get(6),
    }
}

/// Migrations, applied in order; `concord_schema_migrations` records which ran.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        "0002_partners",
        include_str!("../migrations/postgres/0002_partners.sql"),
    ),
    (
        "0003_audit",
        include_str!("../migrations/postgres/0003_audit.sql"),
    ),
    (
        "0004_provenance",
        include_str!("../migrations/postgres/0004_provenance.sql"),
    ),
    (
        "0005_timestamp_keys",
        include_str!("../migrations/postgres/0005_timestamp_keys.sql"),
    ),
    (
        "0006_collection_version",
        include_str!("../migrations/postgres/0006_collection_version.sql"),
    ),
    (
        "0007_audit_transfers",
        include_str!("../migrations/postgres/0007_audit_transfers.sql"),
    ),
    (
        "0008_versions_per_collection",
        include_str!("../migrations/postgres/0008_versions_per_collection.sql"),
    ),
    (
        "0009_packages",
        include_str!("../migrations/postgres/0009_packages.sql"),
    ),
    (
        "0010_foreign_versions",
        include_str!("../migrations/postgres/0010_foreign_versions.sql"),
    ),
    (
        "0011_foreign_shadows",
        include_str!("../migrations/postgres/0011_foreign_shadows.sql"),
    ),
    (
        "0012_audit_names",
        include_str!("../migrations/postgres/0012_audit_names.sql"),
    ),
    (
        "0013_package_reservations",
        include_str!("../migrations/postgres/0013_package_reservations.sql"),
    ),
    (
        "0014_audit_time",
        include_str!("../migrations/postgres/0014_audit_time.sql"),
    ),
    (
        "0015_invitations",
        include_str!("../migrations/postgres/0015_invitations.sql"),
    ),
    (
        "0018_people",
        include_str!("../migrations/postgres/0018_people.sql"),
    ),
    (
        "0019_approvals",
        include_str!("../migrations/postgres/0019_approvals.sql"),
    ),
    (
        "0020_oidc_logins",
        include_str!("../migrations/postgres/0020_oidc_logins.sql"),
    ),
    (
        "0021_join_answers",
        include_str!("../migrations/postgres/0021_join_answers.sql"),
    ),
    (
        "0022_approval_requests",
        include_str!("../migrations/postgres/0022_approval_requests.sql"),
    ),
    (
        "0024_legacy_archive",
        include_str!("../migrations/postgres/0024_legacy_archive.sql"),
    ),
];

/// The `vid`s of object `$1`'s version rows, as a subquery: both indexes on
/// `object_versions (id, …)` are partial (`modified_key` NULL or not), so `WHERE id = $1`
/// alone matches neither and scans every version; each condition is named (as in the
/// SQLite store, whose test checks the plan).
const VIDS_OF_ID: &str =
    "(SELECT vid FROM object_versions WHERE id = $1 AND modified_key IS NOT NULL
      UNION ALL
      SELECT vid FROM object_versions WHERE id = $1 AND modified_key IS NULL)";

/// First key of the two-key advisory locks: "Conc" for write batches.
const WRITE_LOCK_CLASS: i32 = 0x436f_6e63;
/// First key of the two-key advisory locks: "Caud" for audit appends. Not the write-batch
/// lock: the chain only needs appends serialised with each other, and a TAXII read that
/// records its egress must not wait for an import batch to commit.
const AUDIT_LOCK_CLASS: i32 = 0x4361_7564;
/// First key of the two-key advisory locks: "Cmig" while migrating.
const MIGRATE_LOCK_CLASS: i32 = 0x436d_6967;
/// First key of the two-key advisory locks: "Coid" for pending OpenID Connect logins (their
/// quota is counted and taken under it).
const OIDC_LOCK_CLASS: i32 = 0x436f_6964;
/// Moves a collection's version ([`Store::collection_version`]), in the caller's transaction.
const BUMP_VERSION: &str = "UPDATE collections SET version = version + 1 WHERE id = $1";
/// A batch writes its buffered rows when it holds this many…
const FLUSH_ROWS: usize = 5_000;
/// …or this many bytes of bodies.
const FLUSH_BYTES: usize = 16 << 20;
/// A batch that wrote this many entries refreshes the planner's statistics.
const ANALYZE_AFTER_ROWS: usize = 10_000;
/// Version ids drawn from the sequence at once.
const VID_BLOCK: i64 = 1_000;

/// Whether `location` is a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The message of a PostgreSQL error with its details (the client's own `Display` says only
/// "db error").
pub fn describe(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

/// Migrations applied when a store was opened (for `concord migrate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// Schema version before.
    pub from: i64,
    /// Schema version after (the newest this build knows).
    pub to: i64,
    /// Names of the migrations applied now, in order.
    pub applied: Vec<String>,
}

/// One pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        if self.statements.len() >= 256 {
            self.statements.clear();
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let st = self.prepare(sql)?;
        Ok(self.client.query(&st, params)?)
    }

    fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let st = self.prepare(sql)?;
        Ok(self.client.query_opt(&st, params)?)
    }

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let st = self.prepare(sql)?;
        Ok(self.client.query_one(&st, params)?)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let st = self.prepare(sql)?;
        Ok(self.client.execute(&st, params)?)
    }
}

struct Pool {
    idle: Vec<Conn>,
    /// Connections that exist (idle or lent out).
    open: usize,
}

/// A store in a PostgreSQL database (in the first schema of the connection's `search_path`).
pub struct PostgresStore {
    config: Config,
    /// The schema the store lives in.
    schema: String,
    /// Second key of the advisory locks: derived from the schema, so that nodes in different
    /// schemas of one database do not wait for each other.
    lock_key: i32,
    migrations: MigrationReport,
    pool: Mutex<Pool>,
    returned: Condvar,
    /// Most connections this process opens, reads and writes together
    /// ([`StoreOptions::postgres_max_connections`], at least 1).
    max_connections: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("schema", &self.schema)
            .finish()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Each client owns a small tokio runtime, and a runtime must not be dropped inside an
        // async context (the server may drop the last reference there): close them on a
        // thread of their own.
        let idle = std::mem::take(&mut self.pool.get_mut().unwrap_or_else(|e| e.into_inner()).idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

fn lock_key(schema: &str) -> i32 {
    let d = sha2::Sha256::digest(schema.as_bytes());
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

/// Moves a chain of transfer packages from `previous` (0: none yet) to `link`, in the
/// caller's transaction; `false` when its last sequence is no longer `previous`.
fn advance_chain(
    client: &mut impl ::postgres::GenericClient,
    direction: PackageDirection,
    node: &str,
    partner: &str,
    previous: i64,
    link: &PackageLink,
) -> Result<bool> {
    let now = now_ns();
    let changed = if previous == 0 {
        client.execute(
            "INSERT INTO package_chains (direction, node, partner, sequence, digest, updated_ns)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &direction.as_str(),
                &node,
                &partner,
                &link.sequence,
                &link.digest,
                &now,
            ],
        )?
    } else {
        client.execute(
            "UPDATE package_chains SET sequence = $4, digest = $5, updated_ns = $6
             WHERE direction = $1 AND node = $2 AND partner = $3 AND sequence = $7",
            &[
                &direction.as_str(),
                &node,
                &partner,
                &link.sequence,
                &link.digest,
                &now,
                &previous,
            ],
        )?
    };
    Ok(changed == 1)
}

/// Applies pending migrations inside one transaction, under an advisory lock so that two
/// processes starting at once on an empty database do not both migrate it.
fn migrate(client: &mut Client) -> Result<(String, MigrationReport)> {
    let mut tx = client.transaction()?;
    // No "relation already exists, skipping" notice on every start.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    let schema: Option<String> = tx.query_one("SELECT current_schema()", &[])?.get(0);
    let Some(schema) = schema else {
        // Let PostgreSQL say it ("no schema has been selected to create in").
        tx.batch_execute("CREATE TABLE concord_schema_migrations (version INTEGER)")?;
        return Err(StoreError::Corrupt("current_schema() is NULL".to_owned()));
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATE_LOCK_CLASS, &lock_key(&schema)],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS concord_schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_ns BIGINT NOT NULL
         )",
    )?;
    let current: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM concord_schema_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if i64::from(current) > known {
        return Err(StoreError::SchemaTooNew {
            found: current.into(),
            known,
        });
    }
    let mut applied = Vec::new();
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO concord_schema_migrations (version, name, applied_ns) VALUES ($1, $2, $3)",
            &[&(i as i32 + 1), name, &now_ns()],
        )?;
        applied.push((*name).to_owned());
    }
    tx.commit()?;
    Ok((
        schema,
        MigrationReport {
            from: current.into(),
            to: known,
            applied,
        },
    ))
}

impl PostgresStore {
    /// Connects to the database at `url` (a libpq-style URL, e.g.
    /// `postgres://concord@db.example/concord`; `?options=-c%20search_path%3Dname` puts the
    /// store in another schema) and applies pending migrations.
    ///
    /// Errors: [`StoreError::SchemaTooNew`] for a database from a newer Concord, or a
    /// PostgreSQL error (cannot connect, no such database, permission denied…).
    pub fn open(url: &str) -> Result<PostgresStore> {
        Self::open_with(url, &StoreOptions::default())
    }

    /// [`PostgresStore::open`], opening at most [`StoreOptions::postgres_max_connections`]
    /// connections.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<PostgresStore> {
        let config: Config = url.parse()?;
        let mut client = config.connect(NoTls)?;
        let (schema, migrations) = migrate(&mut client)?;
        let _ = client.batch_execute("SET jit = off");
        Ok(PostgresStore {
            config,
            lock_key: lock_key(&schema),
            schema,
            migrations,
            pool: Mutex::new(Pool {
                idle: vec![Conn {
                    client,
                    statements: HashMap::new(),
                }],
                open: 1,
            }),
            returned: Condvar::new(),
            max_connections: options.postgres_max_connections.max(1),
        })
    }

    /// What [`PostgresStore::open`] migrated.
    pub fn migration_report(&self) -> &MigrationReport {
        &self.migrations
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A connection from the pool; waits while `max_connections` are lent out.
    fn conn(&self) -> Result<Conn> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = pool.idle.pop() {
                if c.client.is_closed() {
                    pool.open -= 1;
                    continue;
                }
                crate::record_pool("postgres", pool.open - pool.idle.len(), pool.idle.len());
                return Ok(c);
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                crate::record_pool("postgres", pool.open - pool.idle.len(), pool.idle.len());
                drop(pool);
                return match self.connect() {
                    Ok(client) => Ok(Conn {
                        client,
                        statements: HashMap::new(),
                    }),
                    Err(e) => {
                        self.pool.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                        self.returned.notify_one();
                        Err(e.into())
                    }
                };
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A new connection, set up for short OLTP queries.
    fn connect(&self) -> Result<Client, ::postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        // JIT compilation costs ~0.4 s per page query whose estimated cost is high (the
        // first/last-version subqueries make it so) and buys nothing for a LIMITed index
        // scan. Best effort: a server without JIT may not know the setting.
        let _ = client.batch_execute("SET jit = off");
        Ok(client)
    }

    /// Gives a connection back (or forgets it when it is broken).
    fn put_back(&self, c: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if c.client.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(c);
        }
        crate::record_pool("postgres", pool.open - pool.idle.len(), pool.idle.len());
        drop(pool);
        self.returned.notify_one();
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let mut c = self.conn()?;
        let out = f(&mut c);
        self.put_back(c);
        out
    }

    /// Whether the store holds no collection and no object version (what `concord
    /// migrate-store` requires of its target).
    pub fn is_empty(&self) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM collections)
                    AND NOT EXISTS (SELECT 1 FROM object_versions)",
                &[],
            )?
            .get(0))
        })
    }

    /// `EXPLAIN` of the query that serves one TAXII page (for `docs/scaling.md` and the test
    /// that checks the keyset index is used).
    pub fn explain_entries(
        &self,
        collection_id: &str,
        filter: &ObjectFilter,
        page: &PageRequest,
    ) -> Result<String> {
        let (sql, q) = entries_sql(collection_id, filter, page, true);
        self.with_conn(|c| {
            let rows = c
                .client
                .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &q.params())?;
            Ok(rows
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }
}

fn row_to_collection(r: &Row) -> Collection {
    Collection {
        id: r.get(0),
        alias: r.get(1),
        title: r.get(2),
        description: r.get(3),
    }
}

/// The identity of an object version: `(id, modified)`, or `(id, content)` without one.
#[derive(Clone, PartialEq, Eq, Hash)]
enum VersionKey {
    Modified(String),
    Content([u8; 32]),
}

struct PendingVersion {
    vid: i64,
    id: String,
    object_type: String,
    spec_version: String,
    modified_key: Option<String>,
    modified: Option<String>,
    hash: [u8; 32],
    body: String,
}

struct PendingEntry {
    vid: i64,
    id: String,
    object_type: String,
    spec_version: String,
    version_key: String,
}

struct PgBatch<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
    collection_id: String,
    date_added_ns: i64,
    open: bool,
    /// Version ids drawn from the sequence and not used yet (used from the end).
    free_vids: Vec<i64>,
    versions: Vec<PendingVersion>,
    entries: Vec<PendingEntry>,
    /// The versions added since the last flush, with their content hash.
    pending: HashMap<(String, VersionKey), ([u8; 32], i64)>,
    /// For each id first versioned since the last flush, its `created` and
    /// `created_by_ref` (STIX 2.1 §3.6: later versions keep them).
    pending_versions: HashMap<String, serde_json::Value>,
    pending_bytes: usize,
    /// The vid the last `add` stored or found.
    last_vid: Option<i64>,
    /// Entries written so far.
    written: usize,
    /// Whether an entry was added: the commit moves the collection's version.
    added: bool,
}

impl Drop for PgBatch<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.conn.take() {
            if self.open && c.client.batch_execute("ROLLBACK").is_err() {
                // A connection in an unknown state is not given back.
                let _ = c.client.close();
                let mut pool = self.store.pool.lock().unwrap_or_else(|e| e.into_inner());
                pool.open -= 1;
                drop(pool);
                self.store.returned.notify_one();
                return;
            }
            self.store.put_back(c);
        }
    }
}

impl PgBatch<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a batch holds its connection until dropped")
    }

    fn next_vid(&mut self) -> Result<i64> {
        if self.free_vids.is_empty() {
            let rows = self.conn().query(
                "SELECT nextval('object_versions_vid_seq') FROM generate_series(1, $1::bigint)",
                &[&VID_BLOCK],
            )?;
            self.free_vids = rows.iter().rev().map(|r| r.get(0)).collect();
        }
        Ok(self.free_vids.pop().expect("a block of version ids"))
    }

    /// Writes the buffered rows with binary COPY.
    fn flush(&mut self) -> Result<()> {
        let versions = std::mem::take(&mut self.versions);
        let entries = std::mem::take(&mut self.entries);
        self.written += entries.len();
        let collection_id = self.collection_id.clone();
        let date_added_ns = self.date_added_ns;
        let client = &mut self.conn.as_mut().expect("connection").client;
        if !versions.is_empty() {
            let sink = client.copy_in(
                "COPY object_versions
                 (vid, id, type, spec_version, modified_key, modified, content_hash, body)
                 FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::BYTEA,
                    Type::TEXT,
                ],
            );
            for v in &versions {
                w.write(&[
                    &v.vid,
                    &v.id,
                    &v.object_type,
                    &v.spec_version,
                    &v.modified_key,
                    &v.modified,
                    &&v.hash[..],
                    &v.body,
                ])?;
            }
            w.finish()?;
        }
        if !entries.is_empty() {
            let sink = client.copy_in(
                "COPY collection_entries
                 (collection_id, vid, date_added_ns, id, type, spec_version, version_key)
                 FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                ],
            );
            for e in &entries {
                w.write(&[
                    &collection_id,
                    &e.vid,
                    &date_added_ns,
                    &e.id,
                    &e.object_type,
                    &e.spec_version,
                    &e.version_key,
                ])?;
            }
            w.finish()?;
        }
        self.pending.clear();
        self.pending_versions.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

impl WriteBatch for PgBatch<'_> {
    fn date_added_ns(&self) -> i64 {
        self.date_added_ns
    }

    fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()> {
        let lock_key = self.store.lock_key;
        insert_transfers(
            &mut self.conn().client,
            lock_key,
            records,
            &Default::default(),
            None,
        )
    }

    fn last_vid(&self) -> Option<i64> {
        self.last_vid
    }

    fn add_provenance(
        &mut self,
        object_id: &str,
        version: &str,
        peer: &str,
        first: bool,
    ) -> Result<()> {
        let now = now_ns();
        self.conn().client.execute(
            "INSERT INTO provenance (object_id, version, peer, received_ns, first)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (object_id, version, peer)
             DO UPDATE SET first = provenance.first OR excluded.first",
            &[&object_id, &version, &peer, &now, &first],
        )?;
        Ok(())
    }

    fn mark_foreign(&mut self, vid: i64, writer: &str) -> Result<()> {
        let collection_id = self.collection_id.clone();
        self.conn().client.execute(
            "INSERT INTO foreign_versions (collection_id, vid, writer) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&collection_id, &vid, &writer],
        )?;
        Ok(())
    }

    fn adopt_foreign(&mut self, vid: i64) -> Result<()> {
        let collection_id = self.collection_id.clone();
        self.conn().client.execute(
            "DELETE FROM foreign_versions WHERE collection_id = $1 AND vid = $2",
            &[&collection_id, &vid],
        )?;
        Ok(())
    }

    fn foreign_of(&mut self, id: &str) -> Result<Vec<i64>> {
        let collection_id = self.collection_id.clone();
        Ok(self
            .conn()
            .client
            .query(
                "SELECT f.vid FROM foreign_versions f
                 JOIN collection_entries e
                   ON e.collection_id = f.collection_id AND e.vid = f.vid
                 WHERE f.collection_id = $1 AND e.id = $2",
                &[&collection_id, &id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn take_over(&mut self, id: &str, keep: Option<i64>) -> Result<Option<Vec<i64>>> {
        let collection_id = self.collection_id.clone();
        let client = &mut self.conn().client;
        let created: bool = client
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM provenance
                     WHERE object_id = $1 AND first AND peer LIKE 'partner/%')",
                &[&id],
            )?
            .get(0);
        if !created {
            return Ok(None);
        }
        client.execute(
            "INSERT INTO foreign_versions (collection_id, vid, writer, shadows)
             SELECT e.collection_id, e.vid, MIN(p.peer), FALSE
             FROM collection_entries e JOIN object_versions v ON v.vid = e.vid
             JOIN provenance p ON p.object_id = e.id AND p.version = COALESCE(v.modified, '')
             WHERE e.collection_id = $1 AND e.id = $2 AND e.vid IS DISTINCT FROM $3
               AND p.peer IN (SELECT peer FROM provenance
                              WHERE object_id = $2 AND first AND peer LIKE 'partner/%')
             GROUP BY e.collection_id, e.vid
             ON CONFLICT DO NOTHING",
            &[&collection_id, &id, &keep],
        )?;
        client.execute(
            "UPDATE provenance SET first = FALSE WHERE object_id = $1 AND peer LIKE 'partner/%'",
            &[&id],
        )?;
        self.foreign_of(id).map(Some)
    }

    fn holds_id(&mut self, id: &str) -> Result<bool> {
        // Versions of this batch not flushed yet are not in the table.
        if self.pending.keys().any(|(held, _)| held == id) {
            return Ok(true);
        }
        Ok(self
            .conn()
            .client
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM object_versions WHERE id = $1 AND modified_key IS NOT NULL)
                     OR EXISTS(SELECT 1 FROM object_versions WHERE id = $1 AND modified_key IS NULL)
                     OR EXISTS(SELECT 1 FROM audit_version_names WHERE object_id = $1)",
                &[&id],
            )?
            .get(0))
    }

    fn advance_package_in(
        &mut self,
        producer: &str,
        partner: &str,
        link: &PackageLink,
    ) -> Result<bool> {
        let now = now_ns();
        let client = &mut self.conn().client;
        if client.execute(
            "INSERT INTO package_imports (node, partner, sequence, digest, imported_ns)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&producer, &partner, &link.sequence, &link.digest, &now],
        )? != 1
        {
            return Ok(false);
        }
        client.execute(
            "INSERT INTO package_chains (direction, node, partner, sequence, digest, updated_ns)
             VALUES ('in', $1, $2, $3, $4, $5)
             ON CONFLICT (direction, node, partner) DO UPDATE SET
               sequence = excluded.sequence, digest = excluded.digest,
               updated_ns = excluded.updated_ns
             WHERE package_chains.sequence < excluded.sequence",
            &[&producer, &partner, &link.sequence, &link.digest, &now],
        )?;
        Ok(true)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn().client.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn add_unseen(&mut self, object: &NewObject<'_>, unseen: &[i64]) -> Result<AddOutcome> {
        let h = object.header;
        let hash = content_hash(object.value);
        let version = h.version();
        let modified_key = version.map(|t| t.sort_key());
        let key = (
            h.id.clone(),
            match &modified_key {
                Some(m) => VersionKey::Modified(m.clone()),
                None => VersionKey::Content(hash),
            },
        );
        // Added earlier in this batch and not yet written.
        self.last_vid = None;
        if let Some((stored, vid)) = self.pending.get(&key) {
            return Ok(if *stored == hash {
                self.last_vid = Some(*vid);
                AddOutcome::AlreadyPresent
            } else {
                AddOutcome::Conflict(conflict_message(h))
            });
        }
        // Stored before (by this batch or another): nobody else writes while we hold the lock.
        // A versioned object is decided within this collection only (issue 24, item 14): what
        // other collections hold never changes the answer.
        let collection_id = self.collection_id.clone();
        if let Some(m) = &modified_key {
            // Versions the writer does not receive count as absent ([`WriteBatch::add_unseen`]).
            let unseen_vids = unseen.to_vec();
            let held = self.conn().query_opt(
                "SELECT v.vid, v.content_hash FROM collection_entries e
                 JOIN object_versions v ON v.vid = e.vid
                 WHERE e.collection_id = $1 AND e.id = $2 AND e.version_key = $3
                   AND v.modified_key IS NOT NULL AND NOT (e.vid = ANY($4))
                 ORDER BY e.seq
                 LIMIT 1",
                &[&collection_id, &h.id, &m, &unseen_vids],
            )?;
            if let Some(row) = held {
                return Ok(if row.get::<_, &[u8]>(1) == hash {
                    self.last_vid = Some(row.get(0));
                    AddOutcome::AlreadyPresent
                } else {
                    AddOutcome::Conflict(conflict_message(h))
                });
            }
            let earlier: Option<serde_json::Value> = match self.pending_versions.get(&h.id) {
                Some(v) => Some(v.clone()),
                None => match self.conn().query_opt(
                    "SELECT v.body FROM collection_entries e
                     JOIN object_versions v ON v.vid = e.vid
                     WHERE e.collection_id = $1 AND e.id = $2 AND v.modified_key IS NOT NULL
                       AND NOT (e.vid = ANY($3))
                     LIMIT 1",
                    &[&collection_id, &h.id, &unseen_vids],
                )? {
                    Some(row) => Some(
                        serde_json::from_str(row.get::<_, &str>(0))
                            .map_err(|e| StoreError::Corrupt(format!("stored {}: {e}", h.id)))?,
                    ),
                    None => None,
                },
            };
            if let Some(earlier) = earlier {
                if let Some(why) = crate::unchanging_properties(h, &earlier, object.value) {
                    return Ok(AddOutcome::Conflict(why));
                }
            } else {
                // What the next version of this id in this batch is checked against.
                let mut kept = serde_json::Map::new();
                for p in ["created", "created_by_ref"] {
                    if let Some(v) = object.value.get(p) {
                        kept.insert(p.to_owned(), v.clone());
                    }
                }
                self.pending_versions
                    .insert(h.id.clone(), serde_json::Value::Object(kept));
            }
        }
        let existing = match &modified_key {
            Some(m) => self.conn().query_opt(
                "SELECT v.vid, EXISTS (SELECT 1 FROM collection_entries e
                   WHERE e.collection_id = $4 AND e.vid = v.vid)
                 FROM object_versions v
                 WHERE v.id = $1 AND v.modified_key = $2 AND v.content_hash = $3",
                &[&h.id, &m, &&hash[..], &collection_id],
            )?,
            None => self.conn().query_opt(
                "SELECT v.vid, EXISTS (SELECT 1 FROM collection_entries e
                   WHERE e.collection_id = $3 AND e.vid = v.vid)
                 FROM object_versions v
                 WHERE v.id = $1 AND v.modified_key IS NULL AND v.content_hash = $2",
                &[&h.id, &&hash[..], &collection_id],
            )?,
        };
        let vid = match existing {
            Some(row) => {
                if row.get::<_, bool>(1) {
                    self.last_vid = Some(row.get(0));
                    return Ok(AddOutcome::AlreadyPresent);
                }
                row.get(0)
            }
            None => {
                let vid = self.next_vid()?;
                self.pending_bytes += object.body.len();
                self.versions.push(PendingVersion {
                    vid,
                    id: h.id.clone(),
                    object_type: h.object_type.clone(),
                    spec_version: h.spec_version.as_str().to_owned(),
                    modified_key: modified_key.clone(),
                    modified: version.map(|t| t.as_str().to_owned()),
                    hash,
                    body: object.body.to_owned(),
                });
                vid
            }
        };
        self.entries.push(PendingEntry {
            vid,
            id: h.id.clone(),
            object_type: h.object_type.clone(),
            spec_version: h.spec_version.as_str().to_owned(),
            version_key: modified_key.unwrap_or_else(|| {
                concord_stix::Timestamp::from_unix_nanos(self.date_added_ns, 9).sort_key()
            }),
        });
        self.pending.insert(key, (hash, vid));
        self.last_vid = Some(vid);
        self.added = true;
        if self.entries.len() >= FLUSH_ROWS || self.pending_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(AddOutcome::Added)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush()?;
        if self.added {
            let collection_id = self.collection_id.clone();
            self.conn().execute(BUMP_VERSION, &[&collection_id])?;
        }
        self.conn().client.batch_execute("COMMIT")?;
        self.open = false;
        // After a bulk load the planner's statistics are stale until autovacuum comes by
        // (a minute or more), and with them a page query can pick a full sort over the
        // keyset index: refresh them now (a sample; well under a second).
        if self.written >= ANALYZE_AFTER_ROWS {
            self.conn()
                .client
                .batch_execute("ANALYZE object_versions; ANALYZE collection_entries")?;
        }
        Ok(())
    }
}

/// Builds the WHERE clause shared by listing and deleting, with numbered parameters.
struct Query {
    sql: String,
    args: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Query {
    fn new(collection_id: &str) -> Query {
        let mut q = Query {
            sql: String::new(),
            args: Vec::new(),
        };
        let p = q.arg(collection_id.to_owned());
        q.sql = format!("e.collection_id = {p}");
        q
    }

    /// Adds a parameter; returns its placeholder.
    fn arg(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.args.push(Box::new(v));
        format!("${}", self.args.len())
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    fn list(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        // One value as an equality, so that an index on (collection_id, column, date_added_ns,
        // …) returns rows in page order with no sort.
        if let [one] = values {
            let p = self.arg(one.clone());
            self.sql.push_str(&format!(" AND {column} = {p}::text"));
        } else {
            let p = self.arg(values.to_vec());
            self.sql
                .push_str(&format!(" AND {column} = ANY({p}::text[])"));
        }
    }

    /// `match[spec_version]` and `match[version]` (TAXII 2.1 §3.4.2), exactly as the SQLite
    /// backend applies them.
    fn versions(&mut self, filter: &ObjectFilter) {
        // `same_spec` restricts the entries of the same object that count when picking the
        // first or last version.
        // Foreign versions not read count for nothing, not even as the newest version.
        let writer = filter
            .foreign
            .writer()
            .map(|w| format!("{}::text", self.arg(w.to_owned())));
        // For a writer's own view, the node's versions of what it wrote over are shadowed.
        let shadowing = match (&filter.foreign, &writer) {
            (ForeignVersions::Of(_), Some(w)) => Some(w.clone()),
            _ => None,
        };
        // The versions this reader counts, over the entries aliased `alias`: the same rule
        // for the entries returned, the newest spec version and the first or last version.
        let visible = |alias: &str| {
            let mut c = String::new();
            if let Some(w) = &writer {
                c.push_str(&crate::not_foreign(alias, w));
            }
            if let Some(w) = &shadowing {
                c.push_str(&crate::not_shadowed(alias, "$1::text", w));
            }
            c
        };
        self.sql.push_str(&visible("e"));
        let mut same_spec = if filter.spec_versions.is_empty() {
            // Without match[spec_version], only the newest spec version held of each object
            // (of the versions read: one nobody else reads never hides the others).
            self.sql.push_str(&format!(
                " AND e.spec_version = (SELECT MAX(s.spec_version) FROM collection_entries s
                   WHERE s.collection_id = e.collection_id AND s.id = e.id{})",
                visible("s")
            ));
            "x.spec_version = e.spec_version".to_owned()
        } else {
            let p = self.arg(filter.spec_versions.clone());
            self.sql
                .push_str(&format!(" AND e.spec_version = ANY({p}::text[])"));
            format!("x.spec_version = ANY({p}::text[])")
        };
        same_spec.push_str(&visible("x"));
        if let Some(cond) = version_condition(&filter.versions, &same_spec, self) {
            self.sql.push_str(&cond);
        }
    }
}

/// Numbered `$n` parameters: `same_spec` reuses its parameter, nothing to bind again.
impl VersionParams for Query {
    fn same_spec_used(&mut self) {}

    fn version_at(&mut self, key: String) -> String {
        format!("{}::text", self.arg(key))
    }
}

/// The query of one page of entries (TAXII 2.1 §3.4 filters, keyset pagination).
fn entries_sql(
    collection_id: &str,
    filter: &ObjectFilter,
    page: &PageRequest,
    with_body: bool,
) -> (String, Query) {
    let mut q = Query::new(collection_id);
    if let Some(after) = filter.added_after_ns {
        let p = q.arg(after);
        q.sql
            .push_str(&format!(" AND e.date_added_ns > {p}::bigint"));
    }
    q.list("e.id", &filter.ids);
    q.list("e.type", &filter.types);
    q.versions(filter);
    if let Some(c) = &page.after {
        let d = q.arg(c.date_added_ns);
        let i = q.arg(c.id.clone());
        let v = q.arg(c.version_key.clone());
        let s = q.arg(c.seq);
        q.sql.push_str(&format!(
            " AND (e.date_added_ns, e.id, e.version_key, e.seq) > ({d}::bigint, {i}::text, {v}::text, {s}::bigint)"
        ));
    }
    let sql = format!(
        "SELECT e.id, e.date_added_ns, e.version_key, v.modified, e.spec_version, e.type, e.seq, e.vid, {}
         FROM collection_entries e JOIN object_versions v ON v.vid = e.vid
         WHERE {}
         ORDER BY e.date_added_ns, e.id, e.version_key, e.seq
         LIMIT {}",
        if with_body { "v.body" } else { "NULL::text" },
        q.sql,
        page.limit.max(1) + 1
    );
    (sql, q)
}

/// Rows of the audit log as columns, written with one statement (arrays, unnested). The
/// text columns in table order: direction, door, partner, collection_id, object_id,
/// modified, decision, transformations (JSON text), policy_version, prev_hash, hash.
#[derive(Default)]
struct AuditRows {
    seqs: Vec<i64>,
    times: Vec<i64>,
    text: [Vec<String>; 11],
}

impl AuditRows {
    fn push(&mut self, seq: i64, time_ns: i64, text: [String; 11]) {
        self.seqs.push(seq);
        self.times.push(time_ns);
        for (col, v) in self.text.iter_mut().zip(text) {
            col.push(v);
        }
    }

    fn insert(&mut self, tx: &mut impl ::postgres::GenericClient) -> Result<()> {
        if self.seqs.is_empty() {
            return Ok(());
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.seqs, &self.times];
        params.extend(self.text.iter().map(|c| c as &(dyn ToSql + Sync)));
        tx.execute(
            "INSERT INTO audit_log (seq, time_ns, direction, door, partner, collection_id,
             object_id, modified, decision, transformations, policy_version, prev_hash, hash)
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
             $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[],
             $11::TEXT[], $12::TEXT[], $13::TEXT[])",
            &params,
        )?;
        *self = AuditRows::default();
        Ok(())
    }
}

impl PostgresStore {
    /// Opens a write batch on `collection_id`, first creating `create` in its transaction
    /// (under the write lock).
    fn begin(
        &self,
        collection_id: &str,
        create: Option<&Collection>,
    ) -> Result<Box<dyn WriteBatch + '_>> {
        if let Some(c) = create {
            crate::check_alias(c.alias.as_deref().unwrap_or_default())?;
        }
        let mut conn = self.conn()?;
        if let Err(e) = conn.client.batch_execute("BEGIN") {
            self.put_back(conn);
            return Err(e.into());
        }
        let mut batch = PgBatch {
            store: self,
            conn: Some(conn),
            collection_id: collection_id.to_owned(),
            date_added_ns: 0,
            open: true,
            free_vids: Vec::new(),
            versions: Vec::new(),
            entries: Vec::new(),
            pending: HashMap::new(),
            pending_versions: HashMap::new(),
            pending_bytes: 0,
            last_vid: None,
            written: 0,
            added: false,
        };
        // One writer at a time, node-wide (all processes): held until COMMIT or ROLLBACK.
        batch.conn().execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&WRITE_LOCK_CLASS, &self.lock_key],
        )?;
        if let Some(c) = create {
            let alias = c.alias.clone().unwrap_or_default();
            let inserted = batch.conn().client.execute(
                "INSERT INTO collections (id, alias, title, description, created_ns)
                 SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint
                 WHERE NOT EXISTS (SELECT 1 FROM collections
                                   WHERE alias = $2 OR id = $2 OR id = $1)",
                &[&c.id, &c.alias, &c.title, &c.description, &now_ns()],
            );
            match inserted {
                Ok(1) => {}
                Ok(_) => return Err(StoreError::CollectionExists(alias)),
                // Created by another process (without the write lock) since the check.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(StoreError::CollectionExists(alias));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let known: bool = batch
            .conn()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM collections WHERE id = $1)",
                &[&collection_id],
            )?
            .get(0);
        if !known {
            return Err(StoreError::NoSuchCollection(collection_id.to_owned()));
        }
        // date_added only grows, node-wide and in commit order: a page that ended at the
        // newest entry can never be overtaken by an entry dated earlier.
        batch.date_added_ns = batch
            .conn()
            .query_one(
                "UPDATE write_clock SET last_date_added_ns = GREATEST(
                     (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint * 1000,
                     last_date_added_ns + 1000)
                 RETURNING last_date_added_ns",
                &[],
            )?
            .get(0);
        Ok(Box::new(batch))
    }
}

impl PostgresStore {
    /// Removes the entries of `id` that `q` selects (in one transaction, under the write
    /// lock), the version rows no collection holds any more, and keeps the names of removed
    /// rows for the audit log.
    fn delete_entries(&self, collection_id: &str, id: &str, q: Query) -> Result<usize> {
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&WRITE_LOCK_CLASS, &lock_key],
            )?;
            // The names of this id's versions, kept for the audit log if their rows go.
            let names = version_names(&mut tx, &format!("v.vid IN {VIDS_OF_ID}"), &[&id])?;
            let n = tx.execute(
                &format!(
                    "DELETE FROM collection_entries WHERE seq IN
                     (SELECT e.seq FROM collection_entries e WHERE {})",
                    q.sql
                ),
                &q.params(),
            )?;
            tx.execute(
                &format!(
                    "DELETE FROM object_versions v WHERE v.vid IN {VIDS_OF_ID}
                     AND NOT EXISTS (SELECT 1 FROM collection_entries e WHERE e.vid = v.vid)"
                ),
                &[&id],
            )?;
            if n > 0 {
                tx.execute(BUMP_VERSION, &[&collection_id])?;
            }
            for name in names {
                tx.execute(
                    "INSERT INTO audit_version_names (vid, object_id, version, modified)
                     SELECT $1, $2, $3, $4
                     WHERE NOT EXISTS (SELECT 1 FROM object_versions WHERE vid = $1)
                     ON CONFLICT DO NOTHING",
                    &[&name.vid, &name.object_id, &name.version, &name.modified],
                )?;
            }
            tx.commit()?;
            Ok(n as usize)
        })
    }
}

impl Store for PostgresStore {
    fn collections(&self) -> Result<Vec<Collection>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT id, alias, title, description FROM collections
                 ORDER BY alias NULLS FIRST, id",
                &[],
            )?
            .iter()
            .map(row_to_collection)
            .collect())
        })
    }

    fn collection(&self, id_or_alias: &str) -> Result<Option<Collection>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                "SELECT id, alias, title, description FROM collections
                 WHERE id = $1 OR alias = $1 ORDER BY id = $1 DESC LIMIT 1",
                &[&id_or_alias],
            )?
            .as_ref()
            .map(row_to_collection))
        })
    }

    fn create_collection(&self, new: &NewCollection) -> Result<Collection> {
        crate::check_alias(&new.alias)?;
        let c = Collection {
            id: uuid::Uuid::new_v4().to_string(),
            alias: Some(new.alias.clone()),
            title: new.title.clone().unwrap_or_else(|| new.alias.clone()),
            description: new.description.clone(),
        };
        let inserted = self.with_conn(|conn| {
            let st = conn.prepare(
                "INSERT INTO collections (id, alias, title, description, created_ns)
                 SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint
                 WHERE NOT EXISTS (SELECT 1 FROM collections WHERE alias = $2 OR id = $2)",
            )?;
            match conn
                .client
                .execute(&st, &[&c.id, &c.alias, &c.title, &c.description, &now_ns()])
            {
                Ok(n) => Ok(n == 1),
                // Another process created it between the check and the insert.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })?;
        if !inserted {
            return Err(StoreError::CollectionExists(new.alias.clone()));
        }
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
        let (sql, q) = entries_sql(collection_id, filter, page, with_body);
        let limit = page.limit.max(1);
        let rows = self.with_conn(|c| c.query(&sql, &q.params()))?;
        let mut entries: Vec<Entry> = rows
            .iter()
            .map(|r| Entry {
                id: r.get(0),
                date_added_ns: r.get(1),
                version_key: r.get(2),
                version_text: r.get(3),
                spec_version: r.get(4),
                object_type: r.get(5),
                seq: r.get(6),
                vid: r.get(7),
                body: r.get(8),
            })
            .collect();
        let more = entries.len() > limit;
        entries.truncate(limit);
        Ok(Page { entries, more })
    }

    fn delete_object(&self, collection_id: &str, id: &str, filter: &ObjectFilter) -> Result<usize> {
        let mut q = Query::new(collection_id);
        q.list("e.id", &[id.to_owned()]);
        q.versions(filter);
        self.delete_entries(collection_id, id, q)
    }

    fn delete_versions(&self, collection_id: &str, id: &str, vids: &[i64]) -> Result<usize> {
        if vids.is_empty() {
            return Ok(0);
        }
        let mut q = Query::new(collection_id);
        q.list("e.id", &[id.to_owned()]);
        let p = q.arg(vids.to_vec());
        q.sql.push_str(&format!(" AND e.vid = ANY({p})"));
        self.delete_entries(collection_id, id, q)
    }

    fn count(&self, collection_id: &str) -> Result<u64> {
        self.with_conn(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM collection_entries WHERE collection_id = $1",
                    &[&collection_id],
                )?
                .get(0);
            Ok(n as u64)
        })
    }

    fn last_added(&self, collection_id: &str) -> Result<Option<i64>> {
        self.with_conn(|c| {
            Ok(c.query_one(
                "SELECT MAX(date_added_ns) FROM collection_entries WHERE collection_id = $1",
                &[&collection_id],
            )?
            .get(0))
        })
    }

    fn collection_version(&self, collection_id: &str) -> Result<i64> {
        self.with_conn(|c| {
            c.query_opt(
                "SELECT version FROM collections WHERE id = $1",
                &[&collection_id],
            )?
            .map(|r| r.get::<_, i64>(0))
            .ok_or_else(|| StoreError::NoSuchCollection(collection_id.to_owned()))
        })
    }

    fn put_status(&self, id: &str, body: &str) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO status_resources (id, created_ns, body) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET created_ns = excluded.created_ns, body = excluded.body",
                &[&id, &now_ns(), &body],
            )?;
            Ok(())
        })
    }

    fn status(&self, id: &str) -> Result<Option<String>> {
        self.with_conn(|c| {
            Ok(
                c.query_opt("SELECT body FROM status_resources WHERE id = $1", &[&id])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with_conn(|c| {
            Ok(
                c.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }

    fn try_lease(&self, key: &str, holder: &str, now_ns: i64, until_ns: i64) -> Result<bool> {
        let value = crate::lease_value(holder, until_ns);
        let now = crate::lease_value("", now_ns)[..20].to_owned();
        self.with_conn(|c| {
            // The unique key serialises racing processes; the WHERE of the update decides.
            let changed = c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE substr(settings.value, 1, 20) COLLATE \"C\" < $3
                    OR substr(settings.value, 22) = $4",
                &[&key, &value, &now, &holder],
            )?;
            Ok(changed == 1)
        })
    }

    fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT key, value FROM settings WHERE left(key, length($1)) = $1
                 ORDER BY key COLLATE \"C\"",
                &[&prefix],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })
    }

    fn ever_held(&self, object_id: &str) -> Result<bool> {
        self.with_conn(|c| {
            Ok(c.query_one(
                "SELECT EXISTS(SELECT 1 FROM object_versions WHERE id = $1 AND modified_key IS NOT NULL)
                     OR EXISTS(SELECT 1 FROM object_versions WHERE id = $1 AND modified_key IS NULL)
                     OR EXISTS(SELECT 1 FROM audit_version_names WHERE object_id = $1)",
                &[&object_id],
            )?
            .get(0))
        })
    }

    fn creators(&self, object_id: &str) -> Result<Vec<String>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT DISTINCT peer COLLATE \"C\" FROM provenance
                 WHERE object_id = $1 AND first ORDER BY 1",
                &[&object_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn received_from(&self, object_id: &str, version: Option<&str>) -> Result<Vec<String>> {
        self.with_conn(|c| {
            Ok(c.query(
                "SELECT DISTINCT peer COLLATE \"C\" FROM provenance
                 WHERE object_id = $1 AND ($2::TEXT IS NULL OR version = $2)
                 ORDER BY 1",
                &[&object_id, &version],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        if let Some(v) = self.setting(key)? {
            return Ok(v);
        }
        self.with_conn(|c| {
            // The unique key orders racing processes; the loser's insert does nothing and its
            // read returns the winner's value (read committed sees the committed insert).
            c.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )?;
            let row = c.query_one("SELECT value FROM settings WHERE key = $1", &[&key])?;
            Ok(row.get(0))
        })
    }

    fn package_chain(
        &self,
        direction: PackageDirection,
        node: &str,
        partner: &str,
    ) -> Result<Option<PackageLink>> {
        self.with_conn(|c| {
            Ok(c.client
                .query_opt(
                    "SELECT sequence, digest FROM package_chains
                     WHERE direction = $1 AND node = $2 AND partner = $3",
                    &[&direction.as_str(), &node, &partner],
                )?
                .map(|r| PackageLink {
                    sequence: r.get(0),
                    digest: r.get(1),
                }))
        })
    }

    fn package_cursor(&self, partner: &str, collection_id: &str) -> Result<Option<Cursor>> {
        self.with_conn(|c| {
            Ok(c.client
                .query_opt(
                    "SELECT date_added_ns, object_id, version_key, seq FROM package_cursors
                     WHERE partner = $1 AND collection_id = $2",
                    &[&partner, &collection_id],
                )?
                .map(|r| Cursor {
                    date_added_ns: r.get(0),
                    id: r.get(1),
                    version_key: r.get(2),
                    seq: r.get(3),
                }))
        })
    }

    fn reserve_package_out(&self, partner: &str) -> Result<(i64, Option<PackageLink>)> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // The chain's row is locked first, so a recording in flight is seen whole.
            let last = tx
                .query_opt(
                    "SELECT sequence, digest FROM package_chains
                     WHERE direction = 'out' AND node = '' AND partner = $1 FOR UPDATE",
                    &[&partner],
                )?
                .map(|r| PackageLink {
                    sequence: r.get(0),
                    digest: r.get(1),
                });
            let recorded = last.as_ref().map_or(0, |l| l.sequence);
            let sequence: i64 = tx
                .query_one(
                    "INSERT INTO package_reservations (partner, sequence, updated_ns)
                     VALUES ($1, $2::BIGINT + 1, $3)
                     ON CONFLICT (partner) DO UPDATE SET
                       sequence = GREATEST(package_reservations.sequence, $2::BIGINT) + 1,
                       updated_ns = excluded.updated_ns
                     RETURNING sequence",
                    &[&partner, &recorded, &now_ns()],
                )?
                .get(0);
            tx.commit()?;
            Ok((sequence, last))
        })
    }

    fn package_imports(
        &self,
        producer: &str,
        partner: &str,
        sequence: i64,
        digest: &str,
    ) -> Result<Vec<PackageLink>> {
        self.with_conn(|c| {
            Ok(c.client
                .query(
                    "SELECT sequence, digest FROM package_imports
                     WHERE node = $1 AND partner = $2 AND (sequence = $3 OR digest = $4)
                     ORDER BY sequence",
                    &[&producer, &partner, &sequence, &digest],
                )?
                .iter()
                .map(|r| PackageLink {
                    sequence: r.get(0),
                    digest: r.get(1),
                })
                .collect())
        })
    }

    fn advance_package_out(
        &self,
        partner: &str,
        collection_id: &str,
        previous: i64,
        link: &PackageLink,
        cursor: Option<&Cursor>,
    ) -> Result<bool> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            if !advance_chain(&mut tx, PackageDirection::Out, "", partner, previous, link)? {
                return Ok(false);
            }
            if let Some(cur) = cursor {
                tx.execute(
                    "INSERT INTO package_cursors
                       (partner, collection_id, date_added_ns, object_id, version_key, seq)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (partner, collection_id) DO UPDATE SET
                       date_added_ns = excluded.date_added_ns, object_id = excluded.object_id,
                       version_key = excluded.version_key, seq = excluded.seq",
                    &[
                        &partner,
                        &collection_id,
                        &cur.date_added_ns,
                        &cur.id,
                        &cur.version_key,
                        &cur.seq,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn partners(&self) -> Result<Vec<Partner>> {
        self.with_conn(|c| {
            c.query("SELECT record FROM partners ORDER BY name", &[])?
                .iter()
                .map(|r| Partner::from_record(&r.get::<_, String>(0)))
                .collect()
        })
    }

    fn partner_by_key_id(&self, key_id: &str) -> Result<Option<Partner>> {
        self.with_conn(|c| {
            c.query_opt("SELECT record FROM partners WHERE key_id = $1", &[&key_id])?
                .map(|r| Partner::from_record(&r.get::<_, String>(0)))
                .transpose()
        })
    }

    fn put_partner(&self, partner: &Partner) -> Result<()> {
        let record = partner.to_record();
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO partners (name, key_id, record) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, record = excluded.record",
                &[&partner.name, &partner.key_id, &record],
            )?;
            Ok(())
        })
    }

    fn remove_partner_with(&self, name: &str, settings: &[SettingChange]) -> Result<bool> {
        let source = crate::partner_provenance(name);
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // The settings before the partner's row, in the order `decide_approval` takes them.
            // On an error the transaction is rolled back: the partner stays.
            apply_setting_changes(&mut tx, settings, "removed")?;
            let removed = tx.execute("DELETE FROM partners WHERE name = $1", &[&name])? == 1;
            if !removed {
                return Ok(false);
            }
            // A partner added later under the same name is another organisation: it creates
            // nothing the removed one created (issue 18).
            tx.execute(
                "UPDATE provenance SET first = FALSE WHERE peer = $1",
                &[&source],
            )?;
            // Its foreign versions are read by nobody (a name with '/' added names no
            // partner).
            tx.execute(
                "UPDATE foreign_versions SET writer = writer || '/removed' WHERE writer = $1",
                &[&source],
            )?;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn admit_partner(&self, partner: &Partner, settings: &[(String, String)]) -> Result<Admission> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            let admitted = admit(&mut tx, partner, settings)?;
            if admitted == Admission::Admitted {
                tx.commit()?;
            }
            Ok(admitted)
        })
    }

    fn put_invitation(&self, i: &InvitationRecord) -> Result<()> {
        self.with_conn(|c| {
            c.client.execute(
                "INSERT INTO invitations (id, partner, secret_sha256, created_ns, expires_ns,
                     used_ns, used_by, offer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &i.id,
                    &i.partner,
                    &i.secret_sha256,
                    &i.created_ns,
                    &i.expires_ns,
                    &i.used_ns,
                    &i.used_by,
                    &i.offer,
                ],
            )?;
            Ok(())
        })
    }

    fn invitation(&self, id: &str) -> Result<Option<InvitationRecord>> {
        self.with_conn(|c| {
            Ok(c.client
                .query_opt(&format!("{INVITATION_COLUMNS} WHERE id = $1"), &[&id])?
                .map(|r| invitation_row(&r)))
        })
    }

    fn invitations(&self) -> Result<Vec<InvitationRecord>> {
        self.with_conn(|c| {
            Ok(c.client
                .query(
                    &format!("{INVITATION_COLUMNS} ORDER BY created_ns DESC, id"),
                    &[],
                )?
                .iter()
                .map(invitation_row)
                .collect())
        })
    }

    fn consume_invitation(
        &self,
        id: &str,
        use_: &InvitationUse,
        partner: &Partner,
        settings: &[(String, String)],
    ) -> Result<Admission> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // FOR UPDATE: a second join with the same invitation waits here for the first
            // to commit, then reads the row as it left it (used).
            let row = tx.query_opt(
                "SELECT used_ns, expires_ns FROM invitations WHERE id = $1 FOR UPDATE",
                &[&id],
            )?;
            match row.map(|r| (r.get::<_, Option<i64>>(0), r.get::<_, i64>(1))) {
                None => return Ok(Admission::Unknown),
                Some((Some(_), _)) => return Ok(Admission::Used),
                Some((None, expires)) if expires <= use_.now_ns => return Ok(Admission::Expired),
                Some(_) => {}
            }
            let admitted = admit(&mut tx, partner, settings)?;
            if admitted != Admission::Admitted {
                return Ok(admitted);
            }
            if tx.execute(
                "UPDATE invitations SET used_ns = $1, used_by = $2, request_sha256 = $3,
                     answer = $4
                 WHERE id = $5 AND used_ns IS NULL",
                &[
                    &use_.now_ns,
                    &use_.used_by,
                    &use_.request_sha256,
                    &use_.answer,
                    &id,
                ],
            )? != 1
            {
                return Ok(Admission::Used);
            }
            tx.commit()?;
            Ok(Admission::Admitted)
        })
    }

    fn users(&self) -> Result<Vec<User>> {
        self.with_conn(|c| {
            Ok(c.query(
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name COLLATE \"C\""),
                &[],
            )?
            .iter()
            .map(user_row)
            .collect())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
                &[&name],
            )?
            .as_ref()
            .map(user_row))
        })
    }

    fn user_by_token_id(&self, token_id: &str) -> Result<Option<User>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE token_id = $1"),
                &[&token_id],
            )?
            .as_ref()
            .map(user_row))
        })
    }

    fn add_user(&self, user: &User) -> Result<bool> {
        self.with_conn(|c| {
            let added = c.execute(
                "INSERT INTO users (name, role, token_id, password_hash, token_hash, totp_secret, created_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
                &[
                    &user.name,
                    &user.role,
                    &user.token_id,
                    &user.password_hash,
                    &user.token_hash,
                    &user.totp_secret,
                    &user.created_ns,
                ],
            )?;
            Ok(added == 1)
        })
    }

    fn reset_user(
        &self,
        name: &str,
        token_id: &str,
        password_hash: &str,
        token_hash: &str,
        totp_secret: Option<&str>,
    ) -> Result<bool> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            let changed = tx.execute(
                "UPDATE users SET token_id = $2, password_hash = $3, token_hash = $4, totp_secret = $5,
                 totp_last_step = 0 WHERE name = $1",
                &[&name, &token_id, &password_hash, &token_hash, &totp_secret],
            )? == 1;
            tx.execute(
                "DELETE FROM web_sessions WHERE kind = 'user' AND subject = $1",
                &[&name],
            )?;
            tx.commit()?;
            Ok(changed)
        })
    }

    fn remove_user(&self, name: &str) -> Result<bool> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            let removed = tx.execute("DELETE FROM users WHERE name = $1", &[&name])? == 1;
            tx.execute(
                "DELETE FROM web_sessions WHERE kind = 'user' AND subject = $1",
                &[&name],
            )?;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool> {
        self.with_conn(|c| {
            let changed = c.execute(
                "UPDATE users SET totp_last_step = $2 WHERE name = $1 AND totp_last_step < $2",
                &[&name, &step],
            )?;
            Ok(changed == 1)
        })
    }

    fn start_session(&self, session: &WebSession, clock: &SessionClock) -> Result<()> {
        self.start_session_audited(session, clock, &[])
    }

    fn start_session_audited(
        &self,
        session: &WebSession,
        clock: &SessionClock,
        audit: &[AuditRecord],
    ) -> Result<()> {
        let (kind, subject) = session.subject.columns();
        let idle_cut = clock.now_ns.saturating_sub(clock.idle_ns);
        let absolute_cut = clock.now_ns.saturating_sub(clock.absolute_ns);
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "DELETE FROM web_sessions WHERE last_seen_ns <= $1 OR created_ns <= $2",
                &[&idle_cut, &absolute_cut],
            )?;
            tx.execute(
                "INSERT INTO web_sessions (id_sha256, kind, subject, created_ns, last_seen_ns)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &session.id_sha256,
                    &kind,
                    &subject,
                    &session.created_ns,
                    &session.last_seen_ns,
                ],
            )?;
            insert_transfers(&mut tx, lock_key, audit, &Default::default(), None)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn begin_oidc_login(
        &self,
        login: &OidcLogin,
        now_ns: i64,
        quota: OidcQuota,
    ) -> Result<OidcBegin> {
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // Pending logins are counted and added under a lock of their own, so that two
            // processes cannot both take the last place (READ COMMITTED would let both
            // count the same rows).
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&OIDC_LOCK_CLASS, &lock_key],
            )?;
            tx.execute("DELETE FROM oidc_logins WHERE expires_ns <= $1", &[&now_ns])?;
            let by_source: i64 = tx
                .query_one(
                    "SELECT count(*) FROM oidc_logins WHERE source = $1",
                    &[&login.source],
                )?
                .get(0);
            if u64::try_from(by_source).unwrap_or(0) >= quota.per_source {
                return Ok(OidcBegin::SourceFull);
            }
            let all: i64 = tx
                .query_one("SELECT count(*) FROM oidc_logins", &[])?
                .get(0);
            if u64::try_from(all).unwrap_or(0) >= quota.total {
                return Ok(OidcBegin::TableFull);
            }
            tx.execute(
                "INSERT INTO oidc_logins (state_sha256, nonce, code_verifier, next_path, source,
                     created_ns, expires_ns)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &login.state_sha256,
                    &login.nonce,
                    &login.code_verifier,
                    &login.next_path,
                    &login.source,
                    &login.created_ns,
                    &login.expires_ns,
                ],
            )?;
            tx.commit()?;
            Ok(OidcBegin::Stored)
        })
    }

    fn take_oidc_login(&self, state_sha256: &str, now_ns: i64) -> Result<Option<OidcLogin>> {
        // One statement: the row is deleted by the callback that reads it, and only by one.
        let found = self.with_conn(|c| {
            Ok(c.query_opt(
                "DELETE FROM oidc_logins WHERE state_sha256 = $1
                 RETURNING state_sha256, nonce, code_verifier, next_path, source, created_ns,
                     expires_ns",
                &[&state_sha256],
            )?
            .map(|r| OidcLogin {
                state_sha256: r.get(0),
                nonce: r.get(1),
                code_verifier: r.get(2),
                next_path: r.get(3),
                source: r.get(4),
                created_ns: r.get(5),
                expires_ns: r.get(6),
            }))
        })?;
        Ok(found.filter(|l| l.expires_ns > now_ns))
    }

    fn touch_session(&self, id_sha256: &str, clock: &SessionClock) -> Result<Option<WebSession>> {
        let found = self.with_conn(|c| {
            Ok(c.query_opt(
                "SELECT kind, subject, created_ns, last_seen_ns FROM web_sessions
                 WHERE id_sha256 = $1",
                &[&id_sha256],
            )?
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, i64>(3),
                )
            }))
        })?;
        let Some((kind, subject, created_ns, last_seen_ns)) = found else {
            return Ok(None);
        };
        if !clock.live(created_ns, last_seen_ns) {
            self.end_session(id_sha256)?;
            return Ok(None);
        }
        let mut last_seen = last_seen_ns;
        if clock.now_ns.saturating_sub(last_seen_ns) >= clock.touch_every_ns {
            // Only forward: another process may have touched it since the read.
            self.with_conn(|c| {
                c.execute(
                    "UPDATE web_sessions SET last_seen_ns = GREATEST(last_seen_ns, $2)
                     WHERE id_sha256 = $1",
                    &[&id_sha256, &clock.now_ns],
                )?;
                Ok(())
            })?;
            last_seen = clock.now_ns;
        }
        Ok(Some(WebSession {
            id_sha256: id_sha256.to_owned(),
            subject: SessionSubject::from_columns(&kind, subject)?,
            created_ns,
            last_seen_ns: last_seen,
        }))
    }

    fn end_session(&self, id_sha256: &str) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "DELETE FROM web_sessions WHERE id_sha256 = $1",
                &[&id_sha256],
            )?;
            Ok(())
        })
    }

    fn end_sessions_of(&self, subject: &SessionSubject) -> Result<usize> {
        let (kind, subject) = subject.columns();
        self.with_conn(|c| {
            let n = c.execute(
                "DELETE FROM web_sessions WHERE kind = $1 AND subject = $2",
                &[&kind, &subject],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn update_partner(&self, was: &Partner, now: &Partner, audit: &[AuditRecord]) -> Result<bool> {
        if was.name != now.name {
            return Ok(false);
        }
        let lock_key = self.lock_key;
        let record = now.to_record();
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // The audit lock first (as every appender takes it), then the partner's row:
            // the comparison and the write see the same record, and the chain cannot fork.
            tx.execute(
                &format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK_CLASS}, {lock_key})"),
                &[],
            )?;
            let stored = tx.query_opt(
                "SELECT record FROM partners WHERE name = $1 FOR UPDATE",
                &[&was.name],
            )?;
            match stored {
                Some(r) if Partner::from_record(r.get(0))? == *was => {}
                _ => return Ok(false),
            }
            tx.execute(
                "UPDATE partners SET key_id = $2, record = $3 WHERE name = $1",
                &[&now.name, &now.key_id, &record],
            )?;
            if !audit.is_empty() {
                let head = head(&mut tx)?;
                let mut pending = group_records(audit, None);
                let held = name_keys(&mut tx, &pending_vids(&pending))?;
                crate::audit::name_transfers(&mut pending, &Default::default(), &held);
                chain_transfers(head, now_ns(), &mut pending);
                let st = tx.prepare(&insert_transfer_sql())?;
                for p in &pending {
                    insert_pending(&mut tx, &st, p)?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn last_activity(&self, partner: &str) -> Result<Option<i64>> {
        self.with_conn(|c| {
            Ok(c.query_one(
                "SELECT MAX(time_ns) FROM audit_entries WHERE partner = $1",
                &[&partner],
            )?
            .get(0))
        })
    }

    fn add_approval(&self, a: &Approval) -> Result<()> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO approvals
                     (id, kind, target, change, summary, requested_by, requested_ns, request)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &a.id,
                    &a.kind,
                    &a.target,
                    &a.change,
                    &a.summary,
                    &a.requested_by,
                    &a.requested_ns,
                    &a.request,
                ],
            )?;
            Ok(())
        })
    }

    fn approvals(&self, status: Option<&str>, limit: usize) -> Result<Vec<Approval>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals
                     WHERE $1::TEXT IS NULL OR status = $1
                     ORDER BY requested_ns, id LIMIT $2"
                ),
                &[&status, &limit],
            )?;
            Ok(rows.iter().map(approval_row).collect())
        })
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>> {
        self.with_conn(|c| {
            Ok(c.query_opt(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"),
                &[&id],
            )?
            .as_ref()
            .map(approval_row))
        })
    }

    fn decide_approval(
        &self,
        id: &str,
        d: &ApprovalDecision,
        settings: &[SettingChange],
        partners: &[PartnerSwap],
        audit: &[AuditRecord],
    ) -> Result<bool> {
        let lock_key = self.lock_key;
        let status = if d.approve { "approved" } else { "rejected" };
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            // The row's update is the compare-and-set: a second process deciding at once
            // waits for this row's lock, then finds it decided and changes nothing.
            let changed = tx.execute(
                "UPDATE approvals SET status = $2, decided_by = $3, decided_ns = $4, reason = $5
                 WHERE id = $1 AND status = 'pending'",
                &[&id, &status, &d.by, &d.at_ns, &d.reason],
            )?;
            if changed != 1 {
                return Ok(false);
            }
            if d.approve {
                // On an error the transaction is rolled back: the approval stays pending.
                apply_setting_changes(&mut tx, settings, "applied")?;
                if !partners.is_empty() {
                    // The audit lock before the partners' rows, in the order
                    // `update_partner` takes them, so that the two cannot deadlock.
                    tx.execute(
                        "SELECT pg_advisory_xact_lock($1, $2)",
                        &[&AUDIT_LOCK_CLASS, &lock_key],
                    )?;
                }
                for p in partners {
                    // The row's lock until commit, as `update_partner` takes it: a change
                    // of the partner waits for this transaction, one made before is seen.
                    let stored = tx.query_opt(
                        "SELECT record FROM partners WHERE name = $1 FOR UPDATE",
                        &[&p.was.name],
                    )?;
                    let same = match &stored {
                        Some(r) => Partner::from_record(r.get(0))? == p.was,
                        None => false,
                    };
                    if !same || p.was.name != p.now.name {
                        // Dropped uncommitted (rolled back): the approval stays pending.
                        return Err(StoreError::Superseded(format!(
                            "partner {} changed meanwhile; nothing was applied",
                            p.was.name
                        )));
                    }
                    tx.execute(
                        "UPDATE partners SET key_id = $2, record = $3 WHERE name = $1",
                        &[&p.now.name, &p.now.key_id, &p.now.to_record()],
                    )?;
                }
                insert_transfers(&mut tx, lock_key, audit, &Default::default(), None)?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn append_named_transfer(
        &self,
        records: &[AuditRecord],
        given: &crate::audit::RowNames,
        digest: Option<Hash>,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            // Committed before anything leaves, flushed by the WAL writer (within about
            // 3 × wal_writer_delay) instead of at commit: a read must not wait for a disk
            // flush (issue 17; the SQLite backend does the same). Four round trips, with
            // statements prepared once per connection: BEGIN + lock, head, insert, COMMIT.
            c.client.batch_execute(&format!(
                "BEGIN; SET LOCAL synchronous_commit = off;
                 SELECT pg_advisory_xact_lock({AUDIT_LOCK_CLASS}, {lock_key})"
            ))?;
            let result = (|| {
                let head = match c.query_opt(
                    "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1",
                    &[],
                )? {
                    Some(r) => (r.get(0), h32(r.get(1))),
                    None => head(&mut c.client)?,
                };
                let mut pending = group_records(records, digest);
                let held = name_keys(&mut c.client, &crate::audit::unnamed_vids(&pending, given))?;
                crate::audit::name_transfers(&mut pending, given, &held);
                chain_transfers(head, now_ns(), &mut pending);
                let st = c.prepare(&insert_transfer_sql())?;
                for p in &pending {
                    insert_pending(&mut c.client, &st, p)?;
                }
                Ok(())
            })();
            match result {
                Ok(()) => {
                    c.client.batch_execute("COMMIT")?;
                    Ok(())
                }
                Err(e) => {
                    let _ = c.client.batch_execute("ROLLBACK");
                    Err(e)
                }
            }
        })
    }

    fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<TransferEntry>> {
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let before = q.before_seq.unwrap_or(i64::MAX);
        let order = if q.newest_first { "DESC" } else { "ASC" };
        let vids = (!q.vids.is_empty()).then_some(&q.vids);
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM audit_entries
             WHERE seq > $1 AND seq < $2 AND ($3::TEXT IS NULL OR partner = $3)
               AND ($4::BIGINT[] IS NULL OR vids && $4)
             ORDER BY seq {order} LIMIT $5"
        );
        self.with_conn(|c| {
            let rows = c.query(&sql, &[&q.after_seq, &before, &q.partner, &vids, &limit])?;
            Ok(rows.iter().map(transfer_row).collect())
        })
    }

    fn audit_window(&self, w: &AuditWindow) -> Result<Vec<TransferEntry>> {
        let limit = i64::try_from(w.limit).unwrap_or(i64::MAX);
        // Two statements rather than `($3 IS NULL OR partner = $3)`: a generic plan of the
        // latter cannot choose the (partner, time_ns) index.
        let by_partner = if w.partner.is_some() {
            "AND partner = $5"
        } else {
            "AND $5::TEXT IS NULL"
        };
        let sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM audit_entries
             WHERE time_ns >= $1 AND time_ns < $2 AND ($3::TEXT IS NULL OR direction = $3)
               {by_partner}
             ORDER BY time_ns DESC, seq DESC LIMIT $4"
        );
        self.with_conn(|c| {
            let rows = c.query(
                &sql,
                &[&w.since_ns, &w.until_ns, &w.direction, &limit, &w.partner],
            )?;
            Ok(rows.iter().map(transfer_row).collect())
        })
    }

    fn audit_unindexed(&self, entries: &[TransferEntry]) -> Result<Option<(i64, i64)>> {
        let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
        let indexed: std::collections::HashMap<i64, Vec<i64>> = self.with_conn(|c| {
            let rows = c.query(
                "SELECT seq, vids FROM audit_entries WHERE seq = ANY($1)",
                &[&seqs],
            )?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<i64>>(1)))
                .collect())
        })?;
        for e in entries {
            let Some(held) = indexed.get(&e.seq) else {
                continue; // not in the table: the chain's finding
            };
            // `vids` is kept sorted, without repeats.
            if let Some(vid) = e
                .vids()
                .into_iter()
                .find(|v| held.binary_search(v).is_err())
            {
                return Ok(Some((e.seq, vid)));
            }
        }
        Ok(None)
    }

    fn audit_names(&self, vids: &[i64]) -> Result<Vec<VersionName>> {
        let vids = vids.to_vec();
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            let mut out = version_names(&mut tx, "v.vid = ANY($1)", &[&vids])?;
            out.extend(deleted_names(&mut tx, "vid = ANY($1)", &[&vids])?);
            tx.commit()?;
            out.sort_by_key(|n| n.vid);
            Ok(out)
        })
    }

    fn audit_versions_of(&self, object_id: &str) -> Result<Vec<VersionName>> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            let mut out = version_names(&mut tx, &format!("v.vid IN {VIDS_OF_ID}"), &[&object_id])?;
            out.extend(deleted_names(&mut tx, "object_id = $1", &[&object_id])?);
            tx.commit()?;
            out.sort_by_key(|n| n.vid);
            Ok(out)
        })
    }

    fn audit_head(&self) -> Result<(i64, Hash)> {
        self.with_conn(|c| head(&mut c.client))
    }

    fn add_audit_checkpoint(&self, sign: &mut crate::audit::SignHead<'_>) -> Result<Checkpoint> {
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&AUDIT_LOCK_CLASS, &lock_key],
            )?;
            let last = last_checkpoint(&mut tx)?;
            let h = head(&mut tx)?;
            let cp = sign(last.as_ref(), h);
            tx.execute(
                "INSERT INTO audit_checkpoints (no, entry_seq, entry_hash, time_ns, prev, key, signature)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &cp.no,
                    &cp.entry_seq,
                    &&cp.entry_hash[..],
                    &cp.time_ns,
                    &&cp.prev[..],
                    &&cp.key[..],
                    &&cp.signature[..],
                ],
            )?;
            tx.commit()?;
            Ok(cp)
        })
    }

    fn audit_checkpoints(&self, after_no: i64, limit: usize) -> Result<Vec<Checkpoint>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE no > $1 ORDER BY no LIMIT $2"
                ),
                &[&after_no, &limit],
            )?;
            Ok(rows.iter().map(checkpoint_row).collect())
        })
    }

    fn audit_checkpoints_covering(&self, first_seq: i64, last_seq: i64) -> Result<Vec<Checkpoint>> {
        self.with_conn(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints
                     WHERE entry_seq BETWEEN $1 AND $2 ORDER BY no"
                ),
                &[&first_seq, &last_seq],
            )?;
            Ok(rows.iter().map(checkpoint_row).collect())
        })
    }

    fn last_audit_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.with_conn(|c| last_checkpoint(&mut c.client))
    }

    fn audit_boundary(&self) -> Result<Option<ArchiveBoundary>> {
        self.with_conn(|c| boundary(&mut c.client))
    }

    fn archive_audit(&self, b: &ArchiveBoundary) -> Result<()> {
        let lock_key = self.lock_key;
        self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&AUDIT_LOCK_CLASS, &lock_key],
            )?;
            let at: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT hash FROM audit_entries WHERE seq = $1",
                    &[&b.through_seq],
                )?
                .map(|r| r.get(0));
            let legacy: Option<(i64, String)> = tx
                .query_opt(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    &[],
                )?
                .map(|r| (r.get(0), r.get(1)));
            let old = boundary(&mut tx)?;
            crate::audit::check_boundary(
                b,
                old.as_ref(),
                at.map(h32),
                legacy.as_ref().map(|(seq, h)| (*seq, h.as_str())),
            )?;
            tx.execute(
                "INSERT INTO audit_archives (through_seq, through_hash, checkpoint_no, time_ns, file,
                 legacy_through) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &b.through_seq,
                    &&b.through_hash[..],
                    &b.checkpoint_no,
                    &b.time_ns,
                    &b.file,
                    &b.legacy_through,
                ],
            )?;
            tx.execute(
                "DELETE FROM audit_entries WHERE seq <= $1",
                &[&b.through_seq],
            )?;
            if let Some(l) = b.legacy_through {
                tx.execute("DELETE FROM audit_log WHERE seq <= $1", &[&l])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn audit(
        &self,
        after_seq: i64,
        limit: usize,
        partner: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let rows = c.query(
                "SELECT seq, time_ns, direction, door, partner, collection_id, object_id,
                 modified, decision, transformations, policy_version, prev_hash, hash
                 FROM audit_log WHERE seq > $1 AND ($2::TEXT IS NULL OR partner = $2)
                 ORDER BY seq LIMIT $3",
                &[&after_seq, &partner, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    seq: r.get(0),
                    time_ns: r.get(1),
                    record: AuditRecord {
                        direction: r.get(2),
                        door: r.get(3),
                        partner: r.get(4),
                        person: None,
                        collection: r.get(5),
                        object_id: r.get(6),
                        modified: r.get(7),
                        decision: r.get(8),
                        transformations: parse_transformations(r.get(9)),
                        policy_version: r.get(10),
                        vid: 0,
                    },
                    prev_hash: r.get(11),
                    hash: r.get(12),
                })
                .collect())
        })
    }
}

/// A schema of its own in an existing database, dropped with everything in it at drop: what
/// tests and benchmarks use, so that many can share one database in parallel.
pub struct ScratchSchema {
    base_url: String,
    name: String,
    url: String,
}

impl ScratchSchema {
    /// Creates a schema with a fresh random name in the database at `base_url`.
    pub fn create(base_url: &str) -> Result<ScratchSchema> {
        let name = format!("concord_t_{}", uuid::Uuid::new_v4().simple());
        let mut client = Client::connect(base_url, NoTls)?;
        client.batch_execute(&format!("CREATE SCHEMA {name}"))?;
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{sep}options=-c%20search_path%3D{name}");
        Ok(ScratchSchema {
            base_url: base_url.to_owned(),
            name,
            url,
        })
    }

    /// A URL whose connections use this schema (`search_path`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let base = self.base_url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // On a thread of its own: the client's runtime must not run inside an async context.
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = Client::connect(&base, NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// What a store holds, as `concord migrate-store` compares it on both sides: counts, and a
/// SHA-256 over every collection, object version (with its body), collection entry (with its
/// `date_added`), status resource and setting, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSummary {
    /// Collections.
    pub collections: u64,
    /// Object versions (each stored once, whatever the collections that hold it).
    pub object_versions: u64,
    /// Collection entries (object versions in collections, with `date_added`).
    pub entries: u64,
    /// Status resources.
    pub status_resources: u64,
    /// Settings.
    pub settings: u64,
    /// Partners (with their credentials' hashes).
    pub partners: u64,
    /// Hex SHA-256 of the content.
    pub checksum: String,
}

/// Feeds typed fields into the checksum, each length-prefixed so that fields cannot run into
/// one another.
struct Summer {
    hash: sha2::Sha256,
}

impl Summer {
    fn text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.hash.update([1]);
                self.hash.update((s.len() as u64).to_be_bytes());
                self.hash.update(s.as_bytes());
            }
            None => self.hash.update([0]),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.hash.update((b.len() as u64).to_be_bytes());
        self.hash.update(b);
    }
    fn int(&mut self, i: Option<i64>) {
        match i {
            Some(i) => {
                self.hash.update([1]);
                self.hash.update(i.to_be_bytes());
            }
            None => self.hash.update([0]),
        }
    }
    fn section(&mut self, name: &str) {
        self.hash.update(b"\n#");
        self.hash.update(name.as_bytes());
    }
}

/// The queries of the summary; the same text runs on both backends (ordering by byte order:
/// SQLite compares text with memcmp, the PostgreSQL columns use the "C" collation).
const SUMMARY_COLLECTIONS: &str =
    "SELECT id, alias, title, description FROM collections ORDER BY id";
const SUMMARY_VERSIONS: &str =
    "SELECT id, type, spec_version, modified_key, modified, content_hash, body
     FROM object_versions ORDER BY id, modified_key NULLS FIRST, content_hash";
const SUMMARY_ENTRIES: &str =
    "SELECT e.collection_id, e.date_added_ns, e.id, e.type, e.spec_version, e.version_key,
            v.content_hash
     FROM collection_entries e JOIN object_versions v ON v.vid = e.vid
     ORDER BY e.collection_id, e.date_added_ns, e.id, e.version_key, e.seq";
const SUMMARY_STATUS: &str = "SELECT id, body FROM status_resources ORDER BY id";
const SUMMARY_SETTINGS: &str = "SELECT key, value FROM settings ORDER BY key";
const SUMMARY_PARTNERS_SQLITE: &str =
    "SELECT name, key_id || ':' || record FROM partners ORDER BY name";
const SUMMARY_PARTNERS_PG: &str =
    "SELECT name, key_id || ':' || record FROM partners ORDER BY name COLLATE \"C\"";

/// The summary of an SQLite store (a file written by [`crate::SqliteStore`]).
pub fn summarize_sqlite(path: &Path) -> Result<StoreSummary> {
    let db = crate::sqlite::open_read_only(path)?;
    // One read transaction: a consistent view even while a server writes.
    db.execute_batch("BEGIN")?;
    let mut s = Summer {
        hash: sha2::Sha256::new(),
    };
    let mut counts = [0u64; 6];
    s.section("collections");
    let mut st = db.prepare(SUMMARY_COLLECTIONS)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        counts[0] += 1;
        for i in 0..4 {
            s.text(r.get::<_, Option<String>>(i)?.as_deref());
        }
    }
    s.section("object_versions");
    let mut st = db.prepare(SUMMARY_VERSIONS)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        counts[1] += 1;
        s.text(Some(&r.get::<_, String>(0)?));
        s.text(Some(&r.get::<_, String>(1)?));
        s.text(Some(&r.get::<_, String>(2)?));
        s.text(r.get::<_, Option<String>>(3)?.as_deref());
        s.text(r.get::<_, Option<String>>(4)?.as_deref());
        s.bytes(&r.get::<_, Vec<u8>>(5)?);
        s.bytes(&sha2::Sha256::digest(r.get::<_, String>(6)?.as_bytes()));
    }
    s.section("entries");
    let mut st = db.prepare(SUMMARY_ENTRIES)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        counts[2] += 1;
        s.text(Some(&r.get::<_, String>(0)?));
        s.int(Some(r.get(1)?));
        s.text(Some(&r.get::<_, String>(2)?));
        s.text(Some(&r.get::<_, String>(3)?));
        s.text(Some(&r.get::<_, String>(4)?));
        s.text(Some(&r.get::<_, String>(5)?));
        s.bytes(&r.get::<_, Vec<u8>>(6)?);
    }
    for (i, (name, sql)) in [
        ("status_resources", SUMMARY_STATUS),
        ("settings", SUMMARY_SETTINGS),
        ("partners", SUMMARY_PARTNERS_SQLITE),
    ]
    .into_iter()
    .enumerate()
    {
        s.section(name);
        let mut st = db.prepare(sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            counts[3 + i] += 1;
            s.text(Some(&r.get::<_, String>(0)?));
            s.text(Some(&r.get::<_, String>(1)?));
        }
    }
    db.execute_batch("COMMIT")?;
    Ok(finish_summary(s, counts))
}

fn finish_summary(s: Summer, counts: [u64; 6]) -> StoreSummary {
    StoreSummary {
        collections: counts[0],
        object_versions: counts[1],
        entries: counts[2],
        status_resources: counts[3],
        settings: counts[4],
        partners: counts[5],
        checksum: s
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

fn no_params() -> std::iter::Empty<&'static (dyn ToSql + Sync)> {
    std::iter::empty()
}

impl PostgresStore {
    /// The summary of this store, computed as [`summarize_sqlite`] computes it.
    pub fn summary(&self) -> Result<StoreSummary> {
        self.with_conn(|c| {
            let mut tx = c
                .client
                .build_transaction()
                .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut s = Summer {
                hash: sha2::Sha256::new(),
            };
            let mut counts = [0u64; 6];
            s.section("collections");
            let mut rows = tx.query_raw(SUMMARY_COLLECTIONS, no_params())?;
            while let Some(r) = rows.next()? {
                counts[0] += 1;
                for i in 0..4 {
                    s.text(r.get::<_, Option<&str>>(i));
                }
            }
            drop(rows);
            s.section("object_versions");
            let mut rows = tx.query_raw(SUMMARY_VERSIONS, no_params())?;
            while let Some(r) = rows.next()? {
                counts[1] += 1;
                s.text(Some(r.get(0)));
                s.text(Some(r.get(1)));
                s.text(Some(r.get(2)));
                s.text(r.get(3));
                s.text(r.get(4));
                s.bytes(r.get(5));
                s.bytes(&sha2::Sha256::digest(r.get::<_, &str>(6).as_bytes()));
            }
            drop(rows);
            s.section("entries");
            let mut rows = tx.query_raw(SUMMARY_ENTRIES, no_params())?;
            while let Some(r) = rows.next()? {
                counts[2] += 1;
                s.text(Some(r.get(0)));
                s.int(Some(r.get(1)));
                s.text(Some(r.get(2)));
                s.text(Some(r.get(3)));
                s.text(Some(r.get(4)));
                s.text(Some(r.get(5)));
                s.bytes(r.get(6));
            }
            drop(rows);
            for (i, (name, sql)) in [
                ("status_resources", SUMMARY_STATUS),
                ("settings", SUMMARY_SETTINGS),
                ("partners", SUMMARY_PARTNERS_PG),
            ]
            .into_iter()
            .enumerate()
            {
                s.section(name);
                let mut rows = tx.query_raw(sql, no_params())?;
                while let Some(r) = rows.next()? {
                    counts[3 + i] += 1;
                    s.text(Some(r.get(0)));
                    s.text(Some(r.get(1)));
                }
            }
            tx.commit()?;
            Ok(finish_summary(s, counts))
        })
    }

    /// Copies everything an SQLite store holds — collections, object versions, collection
    /// entries with their `date_added` and order, status resources, settings, partners — into this
    /// store, in one transaction under the write lock, calling `progress(rows)` as it goes.
    /// Settings already present are overwritten. Returns the number of rows copied.
    ///
    /// Errors: [`StoreError::CollectionExists`] when this store already holds a collection
    /// (the target must be empty; see [`PostgresStore::is_empty`]).
    pub fn copy_from_sqlite(&self, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        // With the audit log's file attached (schema 26 keeps the log there).
        let src = crate::sqlite::open_read_only(path)?;
        src.execute_batch("BEGIN")?;
        let lock_key = self.lock_key;
        let n = self.with_conn(|c| {
            let mut tx = c.client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&WRITE_LOCK_CLASS, &lock_key],
            )?;
            if let Some(r) = tx.query_opt("SELECT alias, id FROM collections LIMIT 1", &[])? {
                let name: Option<String> = r.get(0);
                return Err(StoreError::CollectionExists(
                    name.unwrap_or_else(|| r.get(1)),
                ));
            }
            let mut n = 0u64;
            let mut st = src.prepare(
                "SELECT id, alias, title, description, created_ns FROM collections ORDER BY id",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO collections (id, alias, title, description, created_ns)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &r.get::<_, String>(0)?,
                        &r.get::<_, Option<String>>(1)?,
                        &r.get::<_, String>(2)?,
                        &r.get::<_, Option<String>>(3)?,
                        &r.get::<_, i64>(4)?,
                    ],
                )?;
                n += 1;
            }
            progress(n);
            copy_rows(
                &src,
                &mut tx,
                "SELECT vid, id, type, spec_version, modified_key, modified, content_hash, body
                 FROM object_versions ORDER BY vid",
                "COPY object_versions
                 (vid, id, type, spec_version, modified_key, modified, content_hash, body)
                 FROM STDIN (FORMAT binary)",
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::BYTEA,
                    Type::TEXT,
                ],
                &mut n,
                progress,
            )?;
            // Entries keep their seq: the order of entries that share a date_added stays.
            copy_rows(
                &src,
                &mut tx,
                "SELECT seq, collection_id, vid, date_added_ns, id, type, spec_version, version_key
                 FROM collection_entries ORDER BY seq",
                "COPY collection_entries
                 (seq, collection_id, vid, date_added_ns, id, type, spec_version, version_key)
                 FROM STDIN (FORMAT binary)",
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                ],
                &mut n,
                progress,
            )?;
            let mut st = src.prepare("SELECT id, created_ns, body FROM status_resources")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO status_resources (id, created_ns, body) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET created_ns = excluded.created_ns,
                                                    body = excluded.body",
                    &[
                        &r.get::<_, String>(0)?,
                        &r.get::<_, i64>(1)?,
                        &r.get::<_, String>(2)?,
                    ],
                )?;
                n += 1;
            }
            let mut st = src.prepare("SELECT key, value FROM settings")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&r.get::<_, String>(0)?, &r.get::<_, String>(1)?],
                )?;
                n += 1;
            }
            // With `first`: who created an object here decides who versions it (issue 18).
            let mut st =
                src.prepare("SELECT object_id, version, peer, received_ns, first FROM provenance")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO provenance (object_id, version, peer, received_ns, first)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &r.get::<_, String>(0)?,
                        &r.get::<_, String>(1)?,
                        &r.get::<_, String>(2)?,
                        &r.get::<_, i64>(3)?,
                        &r.get::<_, bool>(4)?,
                    ],
                )?;
                n += 1;
            }
            // Partners' foreign versions stay theirs alone: copied as everyone's, a version a
            // partner wrote of an object it did not create would be everyone's newest.
            let mut st =
                src.prepare("SELECT collection_id, vid, writer, shadows FROM foreign_versions")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO foreign_versions (collection_id, vid, writer, shadows)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &r.get::<_, String>(0)?,
                        &r.get::<_, i64>(1)?,
                        &r.get::<_, String>(2)?,
                        &r.get::<_, bool>(3)?,
                    ],
                )?;
                n += 1;
            }
            let mut st = src.prepare("SELECT name, key_id, record FROM partners")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                tx.execute(
                    "INSERT INTO partners (name, key_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id,
                                                      record = excluded.record",
                    &[
                        &r.get::<_, String>(0)?,
                        &r.get::<_, String>(1)?,
                        &r.get::<_, String>(2)?,
                    ],
                )?;
                n += 1;
            }
            // The audit log, row for row (the chain is over these very values).
            let has_audit = crate::sqlite::has_table(&src, "audit_log")?;
            if has_audit {
                let mut st = src.prepare(
                    "SELECT seq, time_ns, direction, door, partner, collection_id, object_id,
                     modified, decision, transformations, policy_version, prev_hash, hash
                     FROM audit_log ORDER BY seq",
                )?;
                let mut rows = st.query([])?;
                let mut batch = AuditRows::default();
                while let Some(r) = rows.next()? {
                    let mut text: [String; 11] = Default::default();
                    for (i, t) in text.iter_mut().enumerate() {
                        *t = r.get(i + 2)?;
                    }
                    batch.push(r.get(0)?, r.get(1)?, text);
                    if batch.seqs.len() == FLUSH_ROWS {
                        batch.insert(&mut tx)?;
                    }
                }
                batch.insert(&mut tx)?;
            }
            // The transfer log (schema 7), its names, checkpoints and archive boundaries, row
            // for row; the posting index (`vids`) is rebuilt from the items.
            let has_transfers = crate::sqlite::has_table(&src, "audit_entries")?;
            if has_transfers {
                copy_audit_tables(&src, &mut tx, &mut n)?;
            }
            // The sequences continue after the copied ids; the clock after the newest
            // date_added, so that new batches are dated after every copied entry.
            tx.batch_execute(
                "SELECT setval('object_versions_vid_seq',
                               GREATEST((SELECT MAX(vid) FROM object_versions),
                                        (SELECT MAX(vid) FROM audit_version_names), 1));
                 SELECT setval('collection_entries_seq_seq',
                               GREATEST((SELECT MAX(seq) FROM collection_entries), 1));
                 UPDATE write_clock SET last_date_added_ns = GREATEST(last_date_added_ns,
                     COALESCE((SELECT MAX(date_added_ns) FROM collection_entries), 0));
                 ANALYZE collections; ANALYZE object_versions; ANALYZE collection_entries;",
            )?;
            tx.commit()?;
            Ok(n)
        })?;
        src.execute_batch("COMMIT")?;
        progress(n);
        Ok(n)
    }
}

/// The columns of a transfer entry, in [`transfer_row`]'s order (without `vids`).
const TRANSFER_COLUMNS: &str = "seq, time_ns, direction, door, partner, person, collection_id, \
     policy_version, count, dictionary, items, digest, prev_hash, hash, names";

/// The columns of a checkpoint, in [`checkpoint_row`]'s order.
const CHECKPOINT_COLUMNS: &str = "no, entry_seq, entry_hash, time_ns, prev, key, signature";

/// A 32-byte BYTEA; another length (a damaged row) becomes its SHA-256, which never matches.
fn h32(v: Vec<u8>) -> Hash {
    use sha2::Digest;
    v.as_slice()
        .try_into()
        .unwrap_or_else(|_| sha2::Sha256::digest(&v).into())
}

fn transfer_row(r: &Row) -> TransferEntry {
    TransferEntry {
        seq: r.get(0),
        time_ns: r.get(1),
        direction: r.get(2),
        door: r.get(3),
        partner: r.get(4),
        person: r.get(5),
        collection: r.get(6),
        policy_version: r.get(7),
        count: r.get(8),
        dictionary: parse_transformations(r.get(9)),
        items: r.get(10),
        digest: r.get::<_, Option<Vec<u8>>>(11).map(h32),
        prev_hash: h32(r.get(12)),
        hash: h32(r.get(13)),
        names: r.get::<_, Option<Vec<u8>>>(14).map(h32),
    }
}

fn checkpoint_row(r: &Row) -> Checkpoint {
    let sig: Vec<u8> = r.get(6);
    Checkpoint {
        no: r.get(0),
        entry_seq: r.get(1),
        entry_hash: h32(r.get(2)),
        time_ns: r.get(3),
        prev: h32(r.get(4)),
        key: h32(r.get(5)),
        signature: sig.try_into().unwrap_or([0; 64]),
    }
}

fn last_checkpoint(c: &mut impl ::postgres::GenericClient) -> Result<Option<Checkpoint>> {
    Ok(c.query_opt(
        &format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY no DESC LIMIT 1"),
        &[],
    )?
    .as_ref()
    .map(checkpoint_row))
}

fn boundary(c: &mut impl ::postgres::GenericClient) -> Result<Option<ArchiveBoundary>> {
    Ok(c.query_opt(
        "SELECT through_seq, through_hash, checkpoint_no, time_ns, file, legacy_through
             FROM audit_archives ORDER BY through_seq DESC LIMIT 1",
        &[],
    )?
    .map(|r| ArchiveBoundary {
        through_seq: r.get(0),
        through_hash: h32(r.get(1)),
        checkpoint_no: r.get(2),
        time_ns: r.get(3),
        file: r.get(4),
        legacy_through: r.get(5),
    }))
}

/// The head the next transfer links to (see [`Store::audit_head`]).
fn head(c: &mut impl ::postgres::GenericClient) -> Result<(i64, Hash)> {
    if let Some(r) = c.query_opt(
        "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1",
        &[],
    )? {
        return Ok((r.get(0), h32(r.get(1))));
    }
    if let Some(b) = boundary(c)? {
        return Ok((b.through_seq, b.through_hash));
    }
    Ok(c.query_opt(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )?
    .map_or((0, GENESIS), |r| {
        crate::audit::legacy_head(r.get(0), r.get::<_, &str>(1))
    }))
}

/// Names of held version rows that pass `condition` (over `object_versions v`).
fn version_names(
    c: &mut impl ::postgres::GenericClient,
    condition: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<VersionName>> {
    let rows = c.query(
        &format!(
            "SELECT v.vid, v.id, v.modified,
                    (SELECT MIN(e.date_added_ns) FROM collection_entries e WHERE e.vid = v.vid)
             FROM object_versions v WHERE {condition}"
        ),
        params,
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let modified: Option<String> = r.get(2);
            VersionName {
                vid: r.get(0),
                object_id: r.get(1),
                version: crate::audit::version_text(modified.clone(), r.get(3)),
                deleted: false,
                modified,
            }
        })
        .collect())
}

/// Names kept of deleted version rows that pass `condition`.
fn deleted_names(
    c: &mut impl ::postgres::GenericClient,
    condition: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<VersionName>> {
    let rows = c.query(
        &format!(
            "SELECT vid, object_id, version, modified FROM audit_version_names WHERE {condition}"
        ),
        params,
    )?;
    Ok(rows
        .iter()
        .map(|r| VersionName {
            vid: r.get(0),
            object_id: r.get(1),
            // Shown as its `modified` when it has one (what the names digest binds).
            version: r.get::<_, Option<String>>(3).unwrap_or_else(|| r.get(2)),
            deleted: true,
            modified: r.get(3),
        })
        .collect())
}

/// The names of version rows `vids` (object id, `modified`), held or kept at deletion: one
/// round trip.
fn name_keys(
    c: &mut impl ::postgres::GenericClient,
    vids: &[i64],
) -> Result<crate::audit::NameKeys> {
    if vids.is_empty() {
        return Ok(Default::default());
    }
    let rows = c.query(
        "SELECT vid, id, modified FROM object_versions WHERE vid = ANY($1)
         UNION ALL
         SELECT vid, object_id, modified FROM audit_version_names WHERE vid = ANY($1)",
        &[&vids],
    )?;
    let mut out = crate::audit::NameKeys::with_capacity(vids.len());
    for r in rows {
        // A held row wins over a kept name (vids are never reused, so both cannot differ).
        out.entry(r.get(0)).or_insert_with(|| (r.get(1), r.get(2)));
    }
    Ok(out)
}

/// Appends the transfers of `records` after the head, inside the caller's transaction: takes
/// the audit advisory lock (held to the end of that transaction), so appends from any process
/// form one chain.
/// The columns of an [`Approval`], in the order [`approval_row`] reads them.
const APPROVAL_COLUMNS: &str = "id, kind, target, change, summary, requested_by, requested_ns, \
     status, decided_by, decided_ns, reason, request";

fn approval_row(r: &Row) -> Approval {
    Approval {
        id: r.get(0),
        kind: r.get(1),
        target: r.get(2),
        change: r.get(3),
        summary: r.get(4),
        requested_by: r.get(5),
        requested_ns: r.get(6),
        status: r.get(7),
        decided_by: r.get(8),
        decided_ns: r.get(9),
        reason: r.get(10),
        request: r.get(11),
    }
}

fn insert_transfers(
    client: &mut impl ::postgres::GenericClient,
    lock_key: i32,
    records: &[AuditRecord],
    given: &crate::audit::RowNames,
    digest: Option<Hash>,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    client.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&AUDIT_LOCK_CLASS, &lock_key],
    )?;
    let mut pending = group_records(records, digest);
    let held = name_keys(client, &crate::audit::unnamed_vids(&pending, given))?;
    crate::audit::name_transfers(&mut pending, given, &held);
    chain_transfers(head(client)?, now_ns(), &mut pending);
    let sql = insert_transfer_sql();
    for p in &pending {
        insert_pending(client, sql.as_str(), p)?;
    }
    Ok(())
}

/// The one INSERT of a transfer entry (`$1`–`$15`: [`TRANSFER_COLUMNS`], `$16`: its vids).
fn insert_transfer_sql() -> String {
    format!(
        "INSERT INTO audit_entries ({TRANSFER_COLUMNS}, vids)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    )
}

/// Inserts one chained transfer entry with `statement` ([`insert_transfer_sql`], prepared
/// or not).
fn insert_pending<T>(
    client: &mut impl ::postgres::GenericClient,
    statement: &T,
    p: &crate::audit::PendingTransfer,
) -> Result<()>
where
    T: ?Sized + ::postgres::ToStatement,
{
    let e = &p.entry;
    let dictionary = serde_json::to_string(&e.dictionary).unwrap_or_default();
    let digest = e.digest.as_ref().map(|d| &d[..]);
    let names = e.names.as_ref().map(|d| &d[..]);
    client.execute(
        statement,
        &[
            &e.seq,
            &e.time_ns,
            &e.direction,
            &e.door,
            &e.partner,
            &e.person,
            &e.collection,
            &e.policy_version,
            &e.count,
            &dictionary,
            &e.items,
            &digest,
            &&e.prev_hash[..],
            &&e.hash[..],
            &names,
            &p.vids,
        ],
    )?;
    Ok(())
}

/// Appends legacy per-object rows (schema 3) after the legacy log's last row: what tests use
/// to make an old-format log.
#[doc(hidden)]
pub fn insert_legacy_audit(
    client: &mut impl ::postgres::GenericClient,
    records: &[AuditRecord],
) -> Result<()> {
    let last = client
        .query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )?
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
    let mut rows = AuditRows::default();
    for e in chain_after(last, now_ns(), records) {
        let r = e.record;
        let transformations = serde_json::to_string(&r.transformations).unwrap_or_default();
        rows.push(
            e.seq,
            e.time_ns,
            [
                r.direction,
                r.door,
                r.partner,
                r.collection,
                r.object_id,
                r.modified,
                r.decision,
                transformations,
                r.policy_version,
                e.prev_hash,
                e.hash,
            ],
        );
    }
    rows.insert(client)
}

/// Copies the schema 7 audit tables of an SQLite file (see
/// [`PostgresStore::copy_from_sqlite`]).
fn copy_audit_tables(
    src: &rusqlite::Connection,
    tx: &mut ::postgres::Transaction<'_>,
    n: &mut u64,
) -> Result<()> {
    let mut st = src.prepare(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM audit_entries ORDER BY seq"
    ))?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let items: Vec<u8> = r.get(10)?;
        let mut vids: Vec<i64> = crate::audit::decode_items(&items)
            .unwrap_or_default()
            .iter()
            .map(|i| i.vid)
            .collect();
        vids.sort_unstable();
        vids.dedup();
        tx.execute(
            &insert_transfer_sql(),
            &[
                &r.get::<_, i64>(0)?,
                &r.get::<_, i64>(1)?,
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
                &r.get::<_, String>(4)?,
                &r.get::<_, Option<String>>(5)?,
                &r.get::<_, String>(6)?,
                &r.get::<_, String>(7)?,
                &r.get::<_, i64>(8)?,
                &r.get::<_, String>(9)?,
                &items,
                &r.get::<_, Option<Vec<u8>>>(11)?,
                &r.get::<_, Vec<u8>>(12)?,
                &r.get::<_, Vec<u8>>(13)?,
                &r.get::<_, Option<Vec<u8>>>(14)?,
                &vids,
            ],
        )?;
        *n += 1;
    }
    let mut st =
        src.prepare("SELECT vid, object_id, version, modified FROM audit_version_names")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        tx.execute(
            "INSERT INTO audit_version_names (vid, object_id, version, modified)
             VALUES ($1, $2, $3, $4)",
            &[
                &r.get::<_, i64>(0)?,
                &r.get::<_, String>(1)?,
                &r.get::<_, String>(2)?,
                &r.get::<_, Option<String>>(3)?,
            ],
        )?;
        *n += 1;
    }
    let mut st = src.prepare(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY no"
    ))?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        tx.execute(
            &format!(
                "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &r.get::<_, i64>(0)?,
                &r.get::<_, i64>(1)?,
                &r.get::<_, Vec<u8>>(2)?,
                &r.get::<_, i64>(3)?,
                &r.get::<_, Vec<u8>>(4)?,
                &r.get::<_, Vec<u8>>(5)?,
                &r.get::<_, Vec<u8>>(6)?,
            ],
        )?;
        *n += 1;
    }
    // How far an archive took the legacy log (schema 24); a file of an older schema has no
    // such column: its archives took none.
    let has_legacy_through: bool = src.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('audit_archives')
                       WHERE name = 'legacy_through')",
        [],
        |r| r.get(0),
    )?;
    let mut st = src.prepare(if has_legacy_through {
        "SELECT through_seq, through_hash, checkpoint_no, time_ns, file, legacy_through
         FROM audit_archives"
    } else {
        "SELECT through_seq, through_hash, checkpoint_no, time_ns, file, NULL FROM audit_archives"
    })?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        tx.execute(
            "INSERT INTO audit_archives (through_seq, through_hash, checkpoint_no, time_ns, file,
             legacy_through) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &r.get::<_, i64>(0)?,
                &r.get::<_, Vec<u8>>(1)?,
                &r.get::<_, i64>(2)?,
                &r.get::<_, i64>(3)?,
                &r.get::<_, String>(4)?,
                &r.get::<_, Option<i64>>(5)?,
            ],
        )?;
        *n += 1;
    }
    Ok(())
}

/// Copies every row of an SQLite `select` into PostgreSQL with binary `copy`, column by column
/// as `types` declares them (INT8, TEXT or BYTEA; NULLs kept), counting rows into `n` and
/// calling `progress` every 10,000.
fn copy_rows(
    src: &rusqlite::Connection,
    tx: &mut ::postgres::Transaction<'_>,
    select: &str,
    copy: &str,
    types: &[Type],
    n: &mut u64,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut w = BinaryCopyInWriter::new(tx.copy_in(copy)?, types);
    let mut st = src.prepare(select)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(types.len());
        for (i, t) in types.iter().enumerate() {
            values.push(match *t {
                Type::INT8 => Box::new(r.get::<_, Option<i64>>(i)?),
                Type::BYTEA => Box::new(r.get::<_, Option<Vec<u8>>>(i)?),
                _ => Box::new(r.get::<_, Option<String>>(i)?),
            });
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        w.write(&refs)?;
        *n += 1;
        if n.is_multiple_of(10_000) {
            progress(*n);
        }
    }
    w.finish()?;
    Ok(())
}

/// The columns of [`InvitationRecord`], in [`invitation_row`]'s order.
const INVITATION_COLUMNS: &str = "SELECT id, partner, secret_sha256, created_ns, expires_ns, \
     used_ns, used_by, offer, request_sha256, answer FROM invitations";

fn invitation_row(r: &Row) -> InvitationRecord {
    InvitationRecord {
        id: r.get(0),
        partner: r.get(1),
        secret_sha256: r.get(2),
        created_ns: r.get(3),
        expires_ns: r.get(4),
        used_ns: r.get(5),
        used_by: r.get(6),
        offer: r.get(7),
        request_sha256: r.get(8),
        answer: r.get(9),
    }
}

/// Inserts `partner` and `settings` in `tx` unless one of them exists ([`Admission`]); the
/// caller commits only on [`Admission::Admitted`] (a dropped transaction rolls back).
fn admit(
    tx: &mut ::postgres::Transaction<'_>,
    partner: &Partner,
    settings: &[(String, String)],
) -> Result<Admission> {
    let record = partner.to_record();
    if tx.execute(
        "INSERT INTO partners (name, key_id, record) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING",
        &[&partner.name, &partner.key_id, &record],
    )? != 1
    {
        return Ok(Admission::NameTaken(format!("partner {:?}", partner.name)));
    }
    for (key, value) in settings {
        // An empty value is a removed record (a removed peer): it may be taken again.
        if tx.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE settings.value = ''",
            &[key, value],
        )? != 1
        {
            return Ok(Admission::NameTaken(format!("setting {key:?}")));
        }
    }
    Ok(Admission::Admitted)
}

/// Sets each of `changes` in the caller's transaction, provided it still holds its
/// `expected` value; each setting's row stays locked until commit (`FOR UPDATE`), so a change
/// of it waits for this transaction and one made before is seen here. Errors:
/// [`StoreError::Superseded`] naming the first that does not ("…; nothing was {done}"): the
/// caller's transaction is rolled back.
fn apply_setting_changes(
    tx: &mut ::postgres::Transaction<'_>,
    changes: &[SettingChange],
    done: &str,
) -> Result<()> {
    for s in changes {
        let now: Option<String> = tx
            .query_opt(
                "SELECT value FROM settings WHERE key = $1 FOR UPDATE",
                &[&s.key],
            )?
            .map(|r| r.get(0));
        if now != s.expected {
            return Err(StoreError::Superseded(format!(
                "setting {} changed meanwhile; nothing was {done}",
                s.key
            )));
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&s.key, &s.value],
        )?;
    }
    Ok(())
}
