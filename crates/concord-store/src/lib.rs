//! # concord-store: where object versions live
//!
//! One storage trait, [`Store`], whose operations are named after what TAXII 2.1 and the
//! importer need — not after HTTP. Filters and pages are Concord types ([`ObjectFilter`],
//! [`PageRequest`], [`Cursor`]); the HTTP layer translates query strings into them, so no
//! backend ever sees a query string (the opposite of medallion's backends).
//!
//! The model (DESIGN.md, "Storage"):
//! - an **object version** is `(id, modified)` and is stored once, with the producer's bytes;
//!   objects without `modified`/`created` (most SCOs) are versioned by content;
//! - a **collection** holds versions, each with its `date_added`;
//! - TAXII pagination is keyset pagination on `(date_added, id, version, seq)`: it never
//!   skips or repeats an entry, even when thousands share one `date_added` and while others
//!   write, because `date_added` only grows (each write batch takes a `date_added` strictly
//!   later than any before it) and the key is unique.
//! - one write batch ([`WriteBatch`]) is one transaction: all of it is durable when
//!   [`WriteBatch::commit`] returns, none of it when it is dropped uncommitted.
//!
//! Backends: [`sqlite::SqliteStore`] (default, embedded, WAL) and
//! [`postgres::PostgresStore`] (scale: several `concord serve` processes on one database);
//! [`open`] picks one from a location. Only this crate knows SQL.

use std::fmt;

pub mod audit;

/// Records the use of a backend's connection pool (issue 23, `/metrics`): the gauge
/// `concord_store_connections` with labels `backend` (`sqlite`: the reader connections;
/// `postgres`: all connections) and `state` (`in_use`: lent out now; `idle`: kept open for
/// the next request). Through the `metrics` facade: nothing is recorded without a recorder.
fn record_pool(backend: &'static str, in_use: usize, idle: usize) {
    metrics::gauge!("concord_store_connections", "backend" => backend, "state" => "in_use")
        .set(in_use as f64);
    metrics::gauge!("concord_store_connections", "backend" => backend, "state" => "idle")
        .set(idle as f64);
}
#[cfg(feature = "bench-stub-audit")]
pub mod bench_stub;
pub mod node_key;
pub mod people;
pub mod postgres;
pub mod sqlite;

pub use audit::{
    ArchiveBoundary, AuditEntry, AuditError, AuditRecord, Checkpoint, Decision, TransferEntry,
    verify_chain, verify_chain_after,
};
pub use concord_stix::{ObjectHeader, Timestamp};
pub use people::{
    Approval, ApprovalDecision, OidcBegin, OidcLogin, OidcQuota, PartnerSwap, SessionClock,
    SessionSubject, SettingChange, User, WebSession,
};
pub use postgres::{MigrationReport, PostgresStore};
pub use sqlite::SqliteStore;

/// How a store is sized for its node (issue 16, item 3): the memory its readers may hold,
/// whatever the clients do. From the `[limits]` section of `concord.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// SQLite: reader connections kept open between reads (more are opened while many read
    /// at once and closed after). Default 4.
    pub sqlite_readers: usize,
    /// SQLite: page cache of each connection, in bytes (`PRAGMA cache_size`); the node's
    /// reader cache is at most `sqlite_readers` times this. Default 8 MiB.
    pub sqlite_cache_bytes: u64,
    /// PostgreSQL: most connections one process opens, reads and writes together (more
    /// callers wait for one). Default 10; at least 1.
    pub postgres_max_connections: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_readers: 4,
            sqlite_cache_bytes: 8 << 20,
            postgres_max_connections: 10,
        }
    }
}

/// Opens the store a location names (DESIGN.md, "Storage"): a `postgres://` or
/// `postgresql://` URL opens [`PostgresStore`]; `sqlite:PATH` or a plain path opens
/// [`SqliteStore`]. Pending migrations are applied either way.
pub fn open(location: &str) -> Result<Box<dyn Store>> {
    open_with(location, &StoreOptions::default())
}

/// [`open`], sized by `options` ([`StoreOptions`]).
pub fn open_with(location: &str, options: &StoreOptions) -> Result<Box<dyn Store>> {
    if postgres::is_url(location) {
        Ok(Box::new(PostgresStore::open_with(location, options)?))
    } else {
        let path = location.strip_prefix("sqlite:").unwrap_or(location);
        Ok(Box::new(SqliteStore::open_with(
            std::path::Path::new(path),
            options,
        )?))
    }
}

/// Applies the pending migrations of the store a location names (as [`open`] does) and says
/// which ran: what `concord migrate` reports.
pub fn migrate(location: &str) -> Result<MigrationReport> {
    if postgres::is_url(location) {
        return Ok(PostgresStore::open(location)?.migration_report().clone());
    }
    let path = std::path::Path::new(location.strip_prefix("sqlite:").unwrap_or(location));
    let version = || -> Result<i64> {
        let c = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
    };
    let from = if path.exists() { version()? } else { 0 };
    drop(SqliteStore::open(path)?);
    let to = version()?;
    Ok(MigrationReport {
        from,
        to,
        applied: (from + 1..=to).map(|v| format!("sqlite {v:04}")).collect(),
    })
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no (I/O, corruption, locked beyond the busy timeout…).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL said no (connection refused, SQL error, serialisation failure…).
    #[error("PostgreSQL error: {}", postgres::describe(.0))]
    Postgres(::postgres::Error),
    /// The database file was written by a newer Concord.
    #[error("database schema version {found} is newer than this program knows ({known})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A collection with this alias already exists.
    #[error("a collection named {0:?} already exists")]
    CollectionExists(String),
    /// No collection with this id or alias.
    #[error("no collection {0:?}")]
    NoSuchCollection(String),
    /// A new collection's alias breaks the rule of [`check_alias`]; the string shows the
    /// alias (cut after 40 characters).
    #[error(
        "collection alias {0}: must be 1 to 64 characters, each a letter (A-Z, a-z), a digit, \
         '.', '_' or '-', and not \".\" or \"..\" (the alias is a segment of TAXII and web UI URLs)"
    )]
    InvalidAlias(String),
    /// Stored data that cannot be read back (a bug or a damaged file).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Another writer changed what this write was based on first (e.g. two imports of the
    /// same transfer package at once); nothing was written. The string explains.
    #[error("{0}")]
    Superseded(String),
    /// An audit archive that cannot be cut where asked (e.g. a checkpoint inside the legacy
    /// per-object log, which goes whole: [`audit::write_archive`]); nothing was written or
    /// removed. The string names the checkpoint, the entries and the rule.
    #[error("audit archive refused: {0}")]
    ArchiveRefused(String),
    /// The SQLite store's audit log file ([`sqlite::audit_path`]) is missing, not the one
    /// made with the main file, or does not hold the log it was to receive; the string names
    /// the files.
    #[error("audit log file: {0}")]
    AuditFile(String),
    /// A file beside the database could not be read, written, synced, renamed or locked
    /// (the SQLite store's audit log file while it is moved, the migration lock); the string
    /// names the file and the operation.
    #[error("{0}")]
    Io(String),
}

/// The rule for the alias of a new collection, the same for every way a collection is made
/// (`concord import`, `concord collection create`, sync mappings, the web UI's import):
/// 1 to 64 of `A-Z a-z 0-9 . _ -`, and neither `.` nor `..`, because the alias is a path segment of TAXII and UI URLs
/// (`/taxii2/api/collections/{alias}/objects/`) and is typed on command lines. Existing
/// collections are found by any alias they already have.
///
/// Errors: [`StoreError::InvalidAlias`], naming the alias (quoted, cut after 40 characters,
/// with its length when cut).
pub fn check_alias(alias: &str) -> Result<()> {
    // "." and ".." are path segments of their own: a URL naming them is normalised away
    // by clients and proxies (RFC 3986 §5.2.4), so they cannot name a collection.
    let ok = alias != "."
        && alias != ".."
        && (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        return Ok(());
    }
    let chars = alias.chars().count();
    let shown = if chars > 40 {
        let head: String = alias.chars().take(40).collect();
        format!("{head:?}… ({chars} characters)")
    } else {
        format!("{alias:?}")
    };
    Err(StoreError::InvalidAlias(shown))
}

/// The provenance name ([`WriteBatch::add_provenance`]) of what partner `name` wrote by
/// TAXII POST (TAXII 2.1 §5.5): `partner/NAME`. Peer names refuse `/`, so it never names a
/// peer; sync reads it as the peer whose partner is `name` (a request pushed by a node is
/// that node's, and its answer goes home to it, whichever side carried the request).
pub fn partner_provenance(name: &str) -> String {
    format!("partner/{name}")
}

/// Whether `c` is a Unicode format character (general category Cf, Unicode 15.1): bidi
/// embeddings, overrides and isolates (U+202A–202E, U+2066–2069), zero-width characters,
/// the soft hyphen, tags and the like. They change how the text around them is shown
/// without being seen, so a name holding one can pass for another name (`"bsi\u{202e}"`
/// shows as `bsi`); names of partners and peers refuse them.
pub fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A TAXII collection (TAXII 2.1 §5.2), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// Identifier used in URLs (a UUID).
    pub id: String,
    /// Human-readable alias, unique on the node; also accepted in URLs in place of `id`.
    pub alias: Option<String>,
    /// Title shown to clients.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
}

impl NewCollection {
    /// The collection this would create, with a new random (v4) UUID as its id: what
    /// [`Store::create_collection`] makes, for [`Store::begin_write_creating`].
    pub fn with_new_id(&self) -> Collection {
        Collection {
            id: uuid::Uuid::new_v4().to_string(),
            alias: Some(self.alias.clone()),
            title: self.title.clone().unwrap_or_else(|| self.alias.clone()),
            description: self.description.clone(),
        }
    }
}

/// What is needed to create a collection.
#[derive(Clone, Debug, Default)]
pub struct NewCollection {
    /// Alias (unique); also used as title when `title` is `None`.
    pub alias: String,
    /// Title; defaults to the alias.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// One validated object, ready to be stored.
pub struct NewObject<'a> {
    /// Its header, from [`concord_stix::validate_object`].
    pub header: &'a ObjectHeader,
    /// The producer's bytes of this one object (stored and served verbatim).
    pub body: &'a str,
    /// The same object, parsed (used to tell a re-delivery from a conflicting version).
    pub value: &'a serde_json::Value,
}

/// What happened to one object of a write batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new entry in the collection.
    Added,
    /// The same version with the same content was already in the collection.
    AlreadyPresent,
    /// This collection already holds another object with this `(id, modified)` but different
    /// content, or the version changes `created` or `created_by_ref` of the versions this
    /// collection holds (STIX 2.1 §3.6); nothing was written. The string explains. Only this
    /// collection is consulted, so the answer never tells what other collections hold.
    Conflict(String),
}

/// A transaction that adds objects to one collection. Dropping it without
/// [`WriteBatch::commit`] rolls everything back.
pub trait WriteBatch {
    /// The `date_added` that every entry of this batch gets (nanoseconds since the epoch).
    fn date_added_ns(&self) -> i64;
    /// Adds one object version to the collection.
    fn add(&mut self, object: &NewObject<'_>) -> Result<AddOutcome> {
        self.add_unseen(object, &[])
    }
    /// [`WriteBatch::add`] for a writer that does not receive every version the collection
    /// holds (a partner, issue 15): the versions whose rows (`vid`) are in `unseen` count as
    /// absent. A version that conflicts only with unseen ones (another content under the
    /// same `(id, modified)`, another `created` or `created_by_ref`) is added beside them,
    /// as it would be if they did not exist, so that the writer's answer, and what it reads
    /// afterwards, never tells that they do; the same content is the same row, already
    /// present. Both versions are then in the collection (TAXII `versions` lists the
    /// `modified` twice to those who receive both); the audit log names both rows.
    fn add_unseen(&mut self, object: &NewObject<'_>, unseen: &[i64]) -> Result<AddOutcome>;
    /// Appends audit records in the batch's own transaction: they become durable and visible
    /// with the objects they describe, or not at all. The chain is the same as
    /// [`Store::append_audit`]'s.
    fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()>;
    /// The version row (`object_versions.vid`) that the last [`WriteBatch::add`] stored or
    /// found; `None` before any add or after a conflict. What ingress audit records name.
    fn last_vid(&self) -> Option<i64>;
    /// Records that the version `version` ([`Entry::version`]'s text) of `object_id` was
    /// received from the peer `peer`, in the batch's transaction (issue 7: no echoes);
    /// `first`: the object's id was new to the node, so `peer` is its creator here
    /// ([`Store::creators`]). Recording it twice is not an error, and a creator stays one.
    fn add_provenance(
        &mut self,
        object_id: &str,
        version: &str,
        peer: &str,
        first: bool,
    ) -> Result<()>;
    /// Marks the version row `vid` of the batch's collection as written by `writer` (a
    /// provenance name, [`partner_provenance`]) of an object it did not create (issue 18,
    /// STIX 2.1 §3.6), in the batch's transaction: reads leave it out unless
    /// [`ObjectFilter::foreign`] asks for it.
    fn mark_foreign(&mut self, vid: i64, writer: &str) -> Result<()>;
    /// Makes the version row `vid` of the batch's collection nobody's foreign version: the
    /// operator (or a sync pull) added the very same bytes a partner had written as foreign,
    /// and what the operator adds is read by everyone (issue 18).
    fn adopt_foreign(&mut self, vid: i64) -> Result<()>;
    /// The version rows of `id` in the batch's collection that are foreign versions
    /// ([`WriteBatch::mark_foreign`]) of any writer: absent for what the operator adds.
    fn foreign_of(&mut self, id: &str) -> Result<Vec<i64>>;
    /// The operator takes over `id` in the batch's collection when partners created it here
    /// ([`Store::creators`]): their versions of it in the collection become their foreign
    /// versions, and they are its creators no more (issue 18: a partner that wrote a
    /// predictable id first — an IOC list's, a MISP event's, a public bundle's — never
    /// outranks the operator's import of it). Returns the version rows of `id` in the
    /// collection that are now foreign (absent for what the operator adds), or `None` when
    /// no partner created it (nothing changed).
    /// `keep`: the row the operator's write just added or found (never made foreign).
    fn take_over(&mut self, id: &str, keep: Option<i64>) -> Result<Option<Vec<i64>>>;
    /// Whether the node holds or ever held (a deleted version whose name the audit log
    /// keeps) any version of `id`, in any collection, this batch's writes included: a write
    /// of an id it never held makes its source the creator. See [`Store::ever_held`].
    fn holds_id(&mut self, id: &str) -> Result<bool>;
    /// Sets a node setting in the batch's transaction: a sync cursor becomes durable with the
    /// objects it covers, or not at all.
    fn set_setting(&mut self, key: &str, value: &str) -> Result<()>;
    /// Records `link` as imported from `producer` (its public key, hex) for `partner` (the
    /// partner named in the package's manifest), in the batch's transaction: the package's
    /// objects and its record are stored together or not at all. The incoming chain
    /// ([`Store::package_chain`]) moves to `link` when its sequence is higher than the last
    /// one's. `false` when a package of that sequence or digest was already imported (by
    /// another process meanwhile: nothing is changed).
    fn advance_package_in(
        &mut self,
        producer: &str,
        partner: &str,
        link: &PackageLink,
    ) -> Result<bool>;
    /// Makes the batch durable (fsync) and visible to readers.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Which way a chain of transfer packages (issue 22) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageDirection {
    /// Packages this node wrote for a partner.
    Out,
    /// Packages this node imported from a producer.
    In,
}

impl PackageDirection {
    /// The stored form: `out` or `in`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageDirection::Out => "out",
            PackageDirection::In => "in",
        }
    }
}

/// The last link of a chain of transfer packages (issue 22): each package names the digest
/// of the one before it, so a chain proves that none is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageLink {
    /// Sequence number of the last package (the first is 1).
    pub sequence: i64,
    /// SHA-256 of its `manifest.json`, 64 lower-case hex digits.
    pub digest: String,
}

/// Which versions of each object to return: TAXII 2.1 §3.4.2 `match[version]`. Several
/// selectors are ORed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    /// The oldest version.
    First,
    /// The newest version (the default).
    Last,
    /// Every version.
    All,
    /// The version whose `modified` (or, without it, `created` / `date_added`) is this
    /// instant (any year 0001–9999, a leap second included; compared as instants, so
    /// `…00Z` selects a version written `…00.000Z`).
    At(Timestamp),
}

/// Filters of TAXII 2.1 §3.4.2, as the store applies them. Empty lists mean "no filter".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    /// `added_after`: only entries whose `date_added` is strictly later (nanoseconds since
    /// the epoch). A TAXII `added_after` of any year converts exactly with
    /// [`Timestamp::unix_nanos`]: `date_added` is the node's own clock, an `i64` inside
    /// 1677–2262 and never in a leap second, and the clamping and the leap-second rule of
    /// `unix_nanos` keep every such comparison right.
    pub added_after_ns: Option<i64>,
    /// `match[id]`.
    pub ids: Vec<String>,
    /// `match[type]`.
    pub types: Vec<String>,
    /// `match[version]`; empty means `last`.
    pub versions: Vec<VersionSelector>,
    /// `match[spec_version]`; empty means "only the newest spec version held of each object".
    pub spec_versions: Vec<String>,
    /// Which foreign versions ([`WriteBatch::mark_foreign`]) are read; by default none, so
    /// that no reader but their writer ever sees them, nor takes one for the newest version.
    pub foreign: ForeignVersions,
}

/// How a partner's write of one object is taken (issue 15: the conflict oracle; issue 18:
/// only an object's creator versions it, STIX 2.1 §3.6), decided before it is added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterView {
    /// The version rows (`vid`) of the object in the collection that the writer does not
    /// receive: they count as absent ([`WriteBatch::add_unseen`]).
    pub unseen: Vec<i64>,
    /// Refused with this reason: the node holds the object, the writer is not its creator,
    /// it receives others' versions of it here, and the version it writes is a new one.
    pub refused: Option<String>,
    /// The writer's provenance name when the node holds the object, the writer is not its
    /// creator and the write is not refused: the version it adds is foreign
    /// ([`WriteBatch::mark_foreign`]), read back by the writer alone, as a new object's
    /// would be.
    pub foreign: Option<String>,
}

/// The versions a partner wrote of an object it did not create ([`WriteBatch::mark_foreign`],
/// STIX 2.1 §3.6) that a read of the store includes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ForeignVersions {
    /// None of them: the operator's reads, sync, and every partner but their writer.
    #[default]
    Hidden,
    /// Those of this writer (a provenance name, [`partner_provenance`]): the writer's own
    /// view, where its write reads back as a new object's would.
    Of(String),
    /// Every one (a writer's check of which versions it does not receive).
    All,
}

impl ForeignVersions {
    /// The writer a foreign version must have to be read: `None` when every one is read, the
    /// empty string (no writer) when none is.
    pub(crate) fn writer(&self) -> Option<&str> {
        match self {
            ForeignVersions::Hidden => Some(""),
            ForeignVersions::Of(w) => Some(w),
            ForeignVersions::All => None,
        }
    }
}

/// A position in the `(date_added, id, version, seq)` order of a collection: the last entry
/// a page returned. Pages resume strictly after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `date_added` in nanoseconds.
    pub date_added_ns: i64,
    /// Object id.
    pub id: String,
    /// The version's [`Timestamp::sort_key`].
    pub version_key: String,
    /// Entry sequence number (ties between two unversioned SCO versions of one batch).
    pub seq: i64,
}

/// A page request: at most `limit` entries after `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Maximum number of entries (≥ 1).
    pub limit: usize,
    /// Resume after this entry.
    pub after: Option<Cursor>,
}

/// One entry of a collection: an object version with its `date_added`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Object id.
    pub id: String,
    /// `date_added`, nanoseconds since the epoch.
    pub date_added_ns: i64,
    /// The version as TAXII defines it (modified, else created, else date_added), as its
    /// [`Timestamp::sort_key`] (`20161231T235960.500000000Z`): exact over 0001–9999.
    pub version_key: String,
    /// The version as the producer wrote it (`modified`/`created`), or `None` when the
    /// version is the `date_added`.
    pub version_text: Option<String>,
    /// `"2.1"` or `"2.0"`.
    pub spec_version: String,
    /// Object type.
    pub object_type: String,
    /// The producer's bytes, when asked for.
    pub body: Option<String>,
    /// Entry sequence number.
    pub seq: i64,
    /// The version row (`object_versions.vid`): what the audit log records.
    pub vid: i64,
}

impl Entry {
    /// The cursor that resumes after this entry.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            date_added_ns: self.date_added_ns,
            id: self.id.clone(),
            version_key: self.version_key.clone(),
            seq: self.seq,
        }
    }

    /// The version as text: what the producer wrote (byte for byte), or the `date_added`
    /// (microseconds).
    pub fn version(&self) -> String {
        match &self.version_text {
            Some(t) => t.clone(),
            None => Timestamp::from_unix_nanos(self.date_added_ns, 6).to_string(),
        }
    }
}

/// A page of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The entries, in `(date_added, id, version)` order.
    pub entries: Vec<Entry>,
    /// Whether more entries follow.
    pub more: bool,
}

/// The storage of a node. Implementations are shared between threads; every method is
/// blocking (async callers use `spawn_blocking`).
pub trait Store: Send + Sync + fmt::Debug {
    /// All collections, ordered by alias.
    fn collections(&self) -> Result<Vec<Collection>>;
    /// The collection with this id or alias.
    fn collection(&self, id_or_alias: &str) -> Result<Option<Collection>>;
    /// Creates a collection with a new UUID. Errors: [`StoreError::InvalidAlias`] (see
    /// [`check_alias`]), [`StoreError::CollectionExists`].
    fn create_collection(&self, new: &NewCollection) -> Result<Collection>;
    /// Starts a write batch on a collection (by id). Blocks while another batch is open.
    fn begin_write(&self, collection_id: &str) -> Result<Box<dyn WriteBatch + '_>>;
    /// Starts a write batch on a collection that does not exist yet: `collection` (its id,
    /// alias, title and description as given) is created in the batch's own transaction, so
    /// it exists only if the batch commits. An import that fails therefore leaves no empty
    /// collection behind. Errors: [`StoreError::InvalidAlias`] (see [`check_alias`]),
    /// [`StoreError::CollectionExists`] when the alias or id is taken.
    fn begin_write_creating(&self, collection: &Collection) -> Result<Box<dyn WriteBatch + '_>>;
    /// Entries of a collection that pass `filter`, paged. `with_body` also loads the objects.
    fn entries(
        &self,
        collection_id: &str,
        filter: &ObjectFilter,
        page: &PageRequest,
        with_body: bool,
    ) -> Result<Page>;
    /// Removes from a collection the entries of object `id` that pass the version and spec
    /// version parts of `filter`; returns how many were removed. Object versions that no
    /// collection holds any more are deleted.
    fn delete_object(&self, collection_id: &str, id: &str, filter: &ObjectFilter) -> Result<usize>;
    /// Removes from a collection the entries of object `id` whose version rows (`vid`) are
    /// in `vids`, and nothing else (two entries may share an `(id, modified)`: see
    /// [`WriteBatch::add_unseen`]); returns how many were removed. As
    /// [`Store::delete_object`] otherwise.
    fn delete_versions(&self, collection_id: &str, id: &str, vids: &[i64]) -> Result<usize>;
    /// Number of entries in a collection.
    fn count(&self, collection_id: &str) -> Result<u64>;
    /// The latest `date_added` of a collection (nanoseconds), `None` when empty: grows with
    /// every write batch that adds to it, so a cache of decisions on a collection's objects
    /// is stale when it changed. One index look-up.
    fn last_added(&self, collection_id: &str) -> Result<Option<i64>>;
    /// The version counter of a collection (by id): 0 when created, and grown by one in the
    /// transaction of every write batch that adds an entry to it and of every
    /// [`Store::delete_object`] that removes one. It is stored in the database, so it moves
    /// for every process on it: a cache of what was computed from a collection's entries
    /// (the compiled indicator sets of `POST /api/match`) is valid exactly while it is
    /// unchanged. One primary-key look-up. Errors: [`StoreError::NoSuchCollection`].
    fn collection_version(&self, collection_id: &str) -> Result<i64>;
    /// Stores a TAXII status resource (TAXII 2.1 §4.3) as JSON text.
    fn put_status(&self, id: &str, body: &str) -> Result<()>;
    /// A stored status resource.
    fn status(&self, id: &str) -> Result<Option<String>>;
    /// A node setting.
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets a node setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// The setting `key`; if it has none, sets it to `value` first, atomically: of several
    /// processes racing on one database, all get the value of the one that inserted first
    /// (for values created on first use, such as the node secret).
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;
    /// Takes or renews the lease `key` for `holder` until `until_ns`, atomically: `true` if
    /// the lease was free, expired (held until before `now_ns`) or already `holder`'s;
    /// `false` if another holder has it. Releasing is renewing until 0. Used so that one
    /// sync round per peer runs at a time across every process of a node.
    fn try_lease(&self, key: &str, holder: &str, now_ns: i64, until_ns: i64) -> Result<bool>;
    /// Every setting whose key starts with `prefix`, ordered by key.
    fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>>;
    /// The peers a version of an object (`None`: any version) was received from (see
    /// [`WriteBatch::add_provenance`]), ordered by name, without repeats; empty for a
    /// version made here or imported.
    fn received_from(&self, object_id: &str, version: Option<&str>) -> Result<Vec<String>>;
    /// The sources that brought `object_id` to the node when it held no version of it
    /// ([`WriteBatch::add_provenance`] with `first`), ordered by name: the object's creators
    /// here, who alone make new versions of it (issue 18, STIX 2.1 §3.6). Empty for an
    /// object made here or imported by the operator.
    fn creators(&self, object_id: &str) -> Result<Vec<String>>;
    /// Whether the node holds, in any collection, or ever held (a deleted version whose name
    /// the audit log keeps, [`Store::audit_versions_of`]) a version of `object_id`: an id
    /// deleted and written again is not new, so deleting an object makes no one its creator
    /// (issue 18).
    fn ever_held(&self, object_id: &str) -> Result<bool>;
    /// The last link of a chain of transfer packages: for [`PackageDirection::Out`], the
    /// packages written for `partner` (`node` is empty), the last one recorded; for
    /// [`PackageDirection::In`], those imported from the producer whose public key (hex) is
    /// `node`, for the partner its manifests name, the one of the highest sequence. `None`
    /// before the first package.
    fn package_chain(
        &self,
        direction: PackageDirection,
        node: &str,
        partner: &str,
    ) -> Result<Option<PackageLink>>;
    /// Where the last package for `partner` of `collection_id` ended (`--since-last`
    /// resumes after it); `None` before the first.
    fn package_cursor(&self, partner: &str, collection_id: &str) -> Result<Option<Cursor>>;
    /// Hands out the sequence number of the next package for `partner`, durably (committed
    /// when this returns), before anything of the package is written: one more than every
    /// number handed out before, so a package whose writing failed or was cut short by a
    /// crash never shares its number with a later one. Returns the number and the last
    /// package recorded ([`Store::advance_package_out`]) for the partner, which the new one
    /// names as its previous (`None` before the first).
    fn reserve_package_out(&self, partner: &str) -> Result<(i64, Option<PackageLink>)>;
    /// The packages imported from `producer` (public key, hex) for `partner` whose sequence
    /// is `sequence` or whose digest is `digest` (at most two), ordered by sequence.
    fn package_imports(
        &self,
        producer: &str,
        partner: &str,
        sequence: i64,
        digest: &str,
    ) -> Result<Vec<PackageLink>>;
    /// Records a package written for `partner`, in one transaction: the outgoing chain
    /// moves to `link` only if its last sequence is still `previous` (0: none yet), and the
    /// cursor of `collection_id` moves to `cursor` (unchanged when `None`: an empty
    /// package). `false` when another package was recorded first (nothing is changed).
    fn advance_package_out(
        &self,
        partner: &str,
        collection_id: &str,
        previous: i64,
        link: &PackageLink,
        cursor: Option<&Cursor>,
    ) -> Result<bool>;
    /// Every partner, ordered by name.
    fn partners(&self) -> Result<Vec<Partner>>;
    /// The partner whose API key has the id `key_id` (one look-up of the unique index):
    /// what the server reads at each request, so that a key rotated or a partner removed or
    /// changed by any process counts at its next request.
    fn partner_by_key_id(&self, key_id: &str) -> Result<Option<Partner>> {
        Ok(self.partners()?.into_iter().find(|p| p.key_id == key_id))
    }
    /// Creates or replaces (by name) a partner.
    fn put_partner(&self, partner: &Partner) -> Result<()>;
    /// Removes a partner; `false` when there was none of that name. The objects it created
    /// are no longer its ([`Store::creators`]), nor a later partner's of the same name.
    fn remove_partner(&self, name: &str) -> Result<bool> {
        self.remove_partner_with(name, &[])
    }
    /// [`Store::remove_partner`] and `settings` set in the same transaction (the removed
    /// partner's incident grants taken out of the collections' sharing, so that a later
    /// partner of the same name, another organisation, inherits none): all of it or
    /// nothing. `false` (nothing changed) when there was no partner of that name.
    /// Errors: [`StoreError::Superseded`] when a setting no longer holds its `expected`
    /// value (nothing changed: compute the settings again).
    fn remove_partner_with(&self, name: &str, settings: &[SettingChange]) -> Result<bool>;
    /// Creates a partner and node settings (a peer's record, `peer/NAME`) in one
    /// transaction (issue 19, the joining side of a join): all of them or none. Nothing is
    /// replaced: a partner of that name, or a setting with a non-empty value, makes it
    /// [`Admission::NameTaken`] and nothing is written.
    fn admit_partner(&self, partner: &Partner, settings: &[(String, String)]) -> Result<Admission>;
    /// Records an invitation this node issued ([`InvitationRecord`]). Errors: its id exists.
    fn put_invitation(&self, invitation: &InvitationRecord) -> Result<()>;
    /// The invitation with this id, used or not.
    fn invitation(&self, id: &str) -> Result<Option<InvitationRecord>>;
    /// Every invitation this node issued, newest first.
    fn invitations(&self) -> Result<Vec<InvitationRecord>>;
    /// Consumes the invitation `id` and creates what the join makes on this node (the
    /// partner, the peer's settings, as [`Store::admit_partner`]) in one transaction
    /// (issue 19): the invitation is marked used ([`InvitationUse`]: when, by which node key,
    /// the request's digest and the sealed answer, so that a retry of that request gets the
    /// same answer) only if it was unused and not expired at `use_.now_ns`, and nothing is
    /// written otherwise. Of two joins racing with one invitation, exactly one is
    /// [`Admission::Admitted`], the other [`Admission::Used`], on both backends.
    fn consume_invitation(
        &self,
        id: &str,
        use_: &InvitationUse,
        partner: &Partner,
        settings: &[(String, String)],
    ) -> Result<Admission>;
    /// Every named user, ordered by name (issue 20).
    fn users(&self) -> Result<Vec<User>>;
    /// The user named `name`.
    fn user(&self, name: &str) -> Result<Option<User>>;
    /// The user whose login token has id `token_id`.
    fn user_by_token_id(&self, token_id: &str) -> Result<Option<User>>;
    /// Adds a user; `false` (nothing changed) when one of that name exists.
    fn add_user(&self, user: &User) -> Result<bool>;
    /// Replaces a user's credentials (token id, password and token hashes, TOTP key; the
    /// last accepted TOTP step is cleared) and ends its web sessions, in one transaction; `false` when
    /// there is no such user.
    fn reset_user(
        &self,
        name: &str,
        token_id: &str,
        password_hash: &str,
        token_hash: &str,
        totp_secret: Option<&str>,
    ) -> Result<bool>;
    /// Removes a user and ends its web sessions, in one transaction; `false` when there was
    /// none of that name.
    fn remove_user(&self, name: &str) -> Result<bool>;
    /// Accepts TOTP time step `step` for `name` only if it is later than every step accepted
    /// before (RFC 6238 §5.2: a code is used once), atomically across processes.
    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool>;
    /// Stores a new web session (and deletes those ended by `clock`, so the table holds only
    /// live sessions and the few ended since the last login).
    fn start_session(&self, session: &WebSession, clock: &SessionClock) -> Result<()>;
    /// [`Store::start_session`] and the audit records of the login (direction `admin`, door
    /// `web-login`: who, and by which method) in one transaction: a session exists with its
    /// audit entry or not at all. Serialised with every other audit appender.
    fn start_session_audited(
        &self,
        session: &WebSession,
        clock: &SessionClock,
        audit: &[AuditRecord],
    ) -> Result<()>;
    /// Stores a pending OpenID Connect login (issue 20, item 5), first deleting those expired
    /// at `now_ns`, unless `quota` is reached (counted in the same transaction, serialised
    /// across processes): [`OidcBegin::SourceFull`] or [`OidcBegin::TableFull`], and nothing
    /// stored. Errors: a login of that state exists.
    fn begin_oidc_login(
        &self,
        login: &OidcLogin,
        now_ns: i64,
        quota: OidcQuota,
    ) -> Result<OidcBegin>;
    /// Takes (deletes and returns) the pending login stored under `state_sha256`
    /// ([`OidcLogin::state_sha256`]: the web UI's key of its state and browser binding, so
    /// that one who knows only the state takes nothing): of two callbacks with one key, in
    /// any processes, one gets it. `None` when there is
    /// none, or it expired at `now_ns` (deleted all the same).
    fn take_oidc_login(&self, state_sha256: &str, now_ns: i64) -> Result<Option<OidcLogin>>;
    /// The live session whose cookie value has SHA-256 `id_sha256`, its `last_seen` moved to
    /// `clock.now_ns` (written at most every `clock.touch_every_ns`); `None` when there is
    /// none or it has ended (an ended one is deleted).
    fn touch_session(&self, id_sha256: &str, clock: &SessionClock) -> Result<Option<WebSession>>;
    /// Ends a session (logout); ending one that does not exist is not an error.
    fn end_session(&self, id_sha256: &str) -> Result<()>;
    /// Ends every session of `subject` (a partner removed, say); returns how many.
    fn end_sessions_of(&self, subject: &SessionSubject) -> Result<usize>;
    /// Replaces the partner `was` by `now` and appends `audit` (the record of who changed
    /// what, e.g. door `partner-update`) to the audit log, in one transaction: the change
    /// and its audit entry are stored together or not at all. Only if the stored partner
    /// named `was.name` is still exactly `was` (compare and set: of two operators changing
    /// one partner at once, the second is told, instead of silently undoing the first's
    /// change). `now` keeps `was`'s name. `Ok(false)`: the partner was changed or removed
    /// meanwhile, or `now` renames it; nothing was written. Serialised with every other
    /// audit appender, as [`Store::append_transfer`].
    fn update_partner(&self, was: &Partner, now: &Partner, audit: &[AuditRecord]) -> Result<bool>;
    /// The time (ns since the epoch, the appender's clock) of the newest transfer entry of
    /// the audit log whose `partner` is `partner`: its last activity on this node (a TAXII
    /// read or write, a sync push to it, a web page it read). `None` when it has none. One
    /// look-up in the `(partner, time_ns)` index (schema 14), whatever the log's length.
    /// Entries archived out of the database ([`Store::archive_audit`]) and the legacy
    /// per-object log are not read.
    fn last_activity(&self, partner: &str) -> Result<Option<i64>>;
    /// Stores a new pending approval (issue 20, four-eyes release; its `status` is
    /// `pending` whatever is given). Errors: an approval of that id exists.
    fn add_approval(&self, approval: &Approval) -> Result<()>;
    /// Approvals, oldest first; only those of `status` (`pending`, `approved`, `rejected`)
    /// when given; at most `limit`.
    fn approvals(&self, status: Option<&str>, limit: usize) -> Result<Vec<Approval>>;
    /// The approval of id `id`.
    fn approval(&self, id: &str) -> Result<Option<Approval>>;
    /// Decides on a pending approval, in one transaction: marks it approved or rejected and,
    /// when approved, sets `settings`, replaces the partners of `partners` and appends
    /// `audit` (the change applied and its audit entry, durable together or not at all).
    /// `false` (nothing changed) when it is not pending (decided meanwhile, by another
    /// process too) or does not exist.
    /// Errors: [`StoreError::Superseded`] when a setting no longer holds its `expected`
    /// value, or a partner is no longer exactly its `was` (changed or removed meanwhile), or
    /// a swap would rename it: nothing changed, the approval is still pending.
    fn decide_approval(
        &self,
        id: &str,
        decision: &ApprovalDecision,
        settings: &[SettingChange],
        partners: &[PartnerSwap],
        audit: &[AuditRecord],
    ) -> Result<bool>;
    /// Appends records to the audit log in one transaction: one [`TransferEntry`] per run of
    /// records with the same direction, door, partner, collection and policy version (one
    /// door call is one run), chained after the head (see [`audit`]); serialised with every
    /// other appender, across processes. `digest`: SHA-256 of the bytes that left.
    ///
    /// Durability: committed when this returns (atomic, in the chain, visible to every
    /// reader, kept if the process dies), but not flushed to disk: a read must not cost a
    /// disk flush. [`Store::flush`] (called every second by `concord serve`), the next write
    /// batch, or PostgreSQL's WAL writer makes it durable against power loss. Appends inside
    /// a [`WriteBatch`] are as durable as the batch.
    fn append_transfer(&self, records: &[AuditRecord], digest: Option<audit::Hash>) -> Result<()> {
        self.append_named_transfer(records, &audit::RowNames::new(), digest)
    }
    /// [`Store::append_transfer`], with the names of version rows as the caller read them
    /// with the rows it sent (the egress door's page: `vid` → object id and `modified` as
    /// stored, [`Entry::id`] and [`Entry::version_text`]), so that the names digest of the
    /// entry ([`audit::names_digest`]) costs no look-up of its own. Rows not named in
    /// `names` are looked up as by [`Store::append_transfer`]. Names are written once and
    /// never change (vids are never reused, a deleted row's name is kept), so a name read
    /// with the row is the one the store holds; a wrong one would be found by `verify`
    /// (`renamed`).
    fn append_named_transfer(
        &self,
        records: &[AuditRecord],
        names: &audit::RowNames,
        digest: Option<audit::Hash>,
    ) -> Result<()>;
    /// [`Store::append_transfer`] without a digest.
    fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        self.append_transfer(records, None)
    }
    /// Makes every committed transaction durable against power loss (see
    /// [`Store::append_transfer`]). Default: nothing to do.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Transfer entries that match `query`, in `seq` order (newest first when asked).
    fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<TransferEntry>>;
    /// Transfer entries appended in a time window ([`AuditWindow`]), newest first (by
    /// `time_ns`, then `seq`), at most `window.limit`. Served by the indexes on `time_ns`
    /// and `(partner, time_ns)` (schema 14): the work is the window's entries up to the
    /// limit, never the whole log. `time_ns` is the appender's wall clock, so an entry
    /// appended while the clock stood behind may sort before an older one; a window is a
    /// time range, not a `seq` range.
    fn audit_window(&self, window: &AuditWindow) -> Result<Vec<TransferEntry>>;
    /// The posting index against the entries it indexes: the first `(seq, vid)` where an
    /// entry of `entries` names the version row `vid` in its items but the index has no
    /// posting for it, so `audit show --object` would not find that entry. `None`: every
    /// posting is there. The index is not part of the chain (it is derived from the items);
    /// this is how `audit verify` covers it. Work: one indexed look-up per distinct vid of
    /// each entry, in the index's order (SQLite's `audit_postings`, whose postings name
    /// blocks of 64 vids: the vid's block must be posted), one row per entry (PostgreSQL's
    /// `vids`).
    fn audit_unindexed(&self, entries: &[TransferEntry]) -> Result<Option<(i64, i64)>>;
    /// The names of version rows that the log refers to: held ones from `object_versions`,
    /// deleted ones from the names kept at deletion. Unknown vids are left out.
    fn audit_names(&self, vids: &[i64]) -> Result<Vec<VersionName>>;
    /// The version rows of an object id, held or deleted, ordered by vid.
    fn audit_versions_of(&self, object_id: &str) -> Result<Vec<VersionName>>;
    /// The chain head that the next transfer links to: the last transfer's seq and hash, else
    /// the archive boundary's, else the legacy log's last row, else `(0, GENESIS)`.
    fn audit_head(&self) -> Result<(i64, audit::Hash)>;
    /// Entries of the legacy (schema 3) per-object log with `seq > after_seq`, in `seq`
    /// order, at most `limit`; only those of `partner` when given.
    fn audit(&self, after_seq: i64, limit: usize, partner: Option<&str>)
    -> Result<Vec<AuditEntry>>;
    /// Signs the current head: `sign` gets the last checkpoint and the head and returns the
    /// new checkpoint, which is stored, all under the audit lock (so no entry or checkpoint
    /// slips in between). Returns it.
    fn add_audit_checkpoint(&self, sign: &mut audit::SignHead<'_>) -> Result<Checkpoint>;
    /// Checkpoints with `no > after_no`, in order, at most `limit`.
    fn audit_checkpoints(&self, after_no: i64, limit: usize) -> Result<Vec<Checkpoint>>;
    /// Checkpoints that signed an entry with `first_seq <= seq <= last_seq`, in order (a
    /// scan of the checkpoints: one per `checkpoint_every` entries).
    fn audit_checkpoints_covering(&self, first_seq: i64, last_seq: i64) -> Result<Vec<Checkpoint>>;
    /// The newest checkpoint.
    fn last_audit_checkpoint(&self) -> Result<Option<Checkpoint>>;
    /// The archive boundary: the newest archived prefix, `None` when nothing was archived.
    fn audit_boundary(&self) -> Result<Option<ArchiveBoundary>>;
    /// Removes the entries up to `boundary.through_seq` (written to an archive before) and
    /// records the boundary, in one transaction; with `boundary.legacy_through` (the first
    /// archive of a node upgraded from the per-object log, schema 24), the legacy rows
    /// `1..=legacy_through` go in the same transaction. The append-only triggers let only
    /// this through: a delete of entries at or below the recorded boundary, of legacy rows at
    /// or below a recorded `legacy_through`. Errors: [`StoreError::Corrupt`] when the entry
    /// at `through_seq` (a transfer entry, or the legacy log's last row) does not have
    /// `through_hash`, the boundary does not grow, or the legacy log is not taken whole by
    /// the first archive (see `audit::check_boundary`).
    fn archive_audit(&self, boundary: &ArchiveBoundary) -> Result<()>;
}

/// Who brought the version row `vid` into `collection_id`, from the audit log: for each
/// ingress entry of that collection that names it, oldest first, the writer (`partner`: a
/// partner's name for its TAXII POST, `peer:NAME` for a sync pull, `operator`, `admin`) and
/// the decision (`added`: this write stored the row there; `already-present`: it was there).
/// What decides whose a row is: a partner may delete what its own write added (TAXII 2.1
/// §5.7), and a peer's tombstone deletes only a row that no other source brought (issue 21).
/// Reads the entries through the posting index, 1,000 at a time.
pub fn ingress_of(
    store: &dyn Store,
    collection_id: &str,
    vid: i64,
) -> Result<Vec<(String, audit::Decision)>> {
    let mut out = Vec::new();
    let mut after_seq = 0;
    loop {
        let entries = store.audit_entries(&AuditQuery {
            after_seq,
            vids: vec![vid],
            limit: 1000,
            ..AuditQuery::default()
        })?;
        for e in entries
            .iter()
            .filter(|e| e.direction == "ingress" && e.collection == collection_id)
        {
            for i in e.decoded().unwrap_or_default() {
                if i.vid == vid {
                    out.push((e.partner.clone(), i.decision));
                }
            }
        }
        match entries.last() {
            Some(e) if entries.len() == 1000 => after_seq = e.seq,
            _ => return Ok(out),
        }
    }
}

/// Every entry of `collection_id` that `filter` selects, with its body, in `date_added`
/// order, given to `f` page by page (1,000 entries a read), so a whole collection is walked
/// in bounded memory. Stops at the first error, of the store or of `f`.
pub fn each_entry<E: From<StoreError>>(
    store: &dyn Store,
    collection_id: &str,
    filter: &ObjectFilter,
    mut f: impl FnMut(Entry) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut after = None;
    loop {
        let page = store.entries(
            collection_id,
            filter,
            &PageRequest {
                limit: 1000,
                after: after.take(),
            },
            true,
        )?;
        after = page.entries.last().map(Entry::cursor);
        for e in page.entries {
            f(e)?;
        }
        if !page.more {
            return Ok(());
        }
    }
}

/// Which transfer entries [`Store::audit_entries`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only `seq > after_seq`.
    pub after_seq: i64,
    /// Only `seq < before_seq`.
    pub before_seq: Option<i64>,
    /// Only this partner's.
    pub partner: Option<String>,
    /// Only entries that name one of these version rows (the posting index); empty: any.
    pub vids: Vec<i64>,
    /// At most this many.
    pub limit: usize,
    /// Newest first (`seq` descending).
    pub newest_first: bool,
}

/// Which transfer entries [`Store::audit_window`] returns: those appended in
/// `[since_ns, until_ns)` (nanoseconds since the epoch, the entries' `time_ns`), of one
/// direction and one partner when given, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditWindow {
    /// Only `time_ns >= since_ns`.
    pub since_ns: i64,
    /// Only `time_ns < until_ns`.
    pub until_ns: i64,
    /// Only this direction (`egress`, `ingress` or `delete`).
    pub direction: Option<String>,
    /// Only this partner's (the name the entries record).
    pub partner: Option<String>,
    /// At most this many (the newest).
    pub limit: usize,
}

/// The name of a version row: what `audit show` prints for a vid.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionName {
    /// `object_versions.vid`.
    pub vid: i64,
    /// Object id.
    pub object_id: String,
    /// `modified` as the producer wrote it; for a version without one, its first
    /// `date_added` (microseconds), as [`Entry::version`] says it.
    pub version: String,
    /// Whether the version row was deleted (its name was kept for the log).
    pub deleted: bool,
    /// `modified` as stored (`None` for a version without one, and in names kept before
    /// schema 12): what an entry's names digest binds ([`audit::names_digest`]).
    #[serde(default)]
    pub modified: Option<String>,
}

/// The condition, over the entries aliased `alias`, that leaves out the foreign versions
/// ([`WriteBatch::mark_foreign`]) of every writer but the one bound at `writer` (a
/// placeholder; the empty string leaves out all of them).
pub(crate) fn not_foreign(alias: &str, writer: &str) -> String {
    format!(
        " AND NOT EXISTS (SELECT 1 FROM foreign_versions f
           WHERE f.collection_id = {alias}.collection_id AND f.vid = {alias}.vid
             AND f.writer <> {writer})"
    )
}

/// The condition, over the entries aliased `alias`, that shadows the node's versions of an
/// object for the writer bound at `writer` (a placeholder) once that writer has a foreign
/// version of it ([`WriteBatch::mark_foreign`]) in the collection bound at `collection`:
/// for that writer, such an object is only its own foreign versions, so that `first`,
/// `last`, a timestamp, `all` and `added_after` select among them exactly as they would for
/// an object new to the node (issue 15: the versions withheld from it are never what a
/// selector picks, then withholds, which would tell that they exist). The ids come from one
/// uncorrelated subquery, which both backends evaluate once per statement.
///
/// The foreign versions an operator's take-over made ([`WriteBatch::take_over`]) do not
/// shadow: their writer created the object here, and keeps receiving what it is sent of
/// the operator's versions.
pub(crate) fn not_shadowed(alias: &str, collection: &str, writer: &str) -> String {
    format!(
        " AND ({alias}.id NOT IN (SELECT g_e.id FROM foreign_versions g
             JOIN collection_entries g_e ON g_e.collection_id = g.collection_id AND g_e.vid = g.vid
             WHERE g.collection_id = {collection} AND g.writer = {writer} AND g.shadows)
           OR EXISTS (SELECT 1 FROM foreign_versions f
             WHERE f.collection_id = {alias}.collection_id AND f.vid = {alias}.vid))"
    )
}

/// How a SQL backend binds the parameters of [`version_condition`].
pub(crate) trait VersionParams {
    /// The `same_spec` condition was written once more (a backend with positional
    /// parameters binds its arguments again).
    fn same_spec_used(&mut self);
    /// The placeholder for a version key ([`Timestamp::sort_key`]).
    fn version_at(&mut self, key: String) -> String;
}

/// The `match[version]` condition of TAXII 2.1 §3.4.2 over the entries `e`, in the SQL both
/// backends speak: `first`/`last` compare with the oldest/newest version of the same object
/// among the entries that `same_spec` (over `x`) admits, a timestamp with the version itself;
/// several selectors are ORed; none means `last`. `None` when every version passes (`all`).
pub(crate) fn version_condition(
    versions: &[VersionSelector],
    same_spec: &str,
    params: &mut impl VersionParams,
) -> Option<String> {
    let selectors: &[VersionSelector] = if versions.is_empty() {
        &[VersionSelector::Last]
    } else {
        versions
    };
    if selectors.contains(&VersionSelector::All) {
        return None;
    }
    let alternatives: Vec<String> = selectors
        .iter()
        .map(|s| match s {
            VersionSelector::First | VersionSelector::Last | VersionSelector::All => {
                let agg = if *s == VersionSelector::First {
                    "MIN"
                } else {
                    "MAX"
                };
                params.same_spec_used();
                format!(
                    "e.version_key = (SELECT {agg}(x.version_key) FROM collection_entries x
                      WHERE x.collection_id = e.collection_id AND x.id = e.id AND {same_spec})"
                )
            }
            VersionSelector::At(t) => {
                format!("e.version_key = {}", params.version_at(t.sort_key()))
            }
        })
        .collect();
    Some(format!(" AND ({})", alternatives.join(" OR ")))
}

/// A partner: an organisation with credentials on this node (DESIGN.md, "Terms").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partner {
    /// Unique name of the organisation.
    pub name: String,
    /// ISO 3166-1 alpha-2 code of its jurisdiction, upper case.
    pub jurisdiction: String,
    /// Sharing groups it belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Collection ids it may read over TAXII.
    #[serde(default)]
    pub read: Vec<String>,
    /// Collection ids it may write (POST) over TAXII.
    #[serde(default)]
    pub write: Vec<String>,
    /// Public half of its API key (`concord_<key_id>_<secret>`).
    pub key_id: String,
    /// Argon2id PHC string of the secret half.
    pub key_hash: String,
    /// When it was created, ns since the epoch.
    pub created_ns: i64,
    /// What the partner directory knows of it beyond its grants (issue 19): its identity,
    /// its node's keys, how it joined. Absent in records written before.
    #[serde(default)]
    pub details: PartnerDetails,
}

/// A partner's entry in the partner directory (issue 19, item 2), besides name,
/// jurisdiction, groups and grants. Every field is optional: a partner added by hand with
/// `concord partner add` has none until an operator or a join gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartnerDetails {
    /// Its organisation as a STIX 2.1 `identity` (§4.5), with the OASIS
    /// identity contact-information extension where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Value>,
    /// Its node's public Ed25519 key (64 lower-case hex digits, as its `concord node key`
    /// prints): what its invitations, packages and agreements are signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    /// SHA-256 (lower-case hex) of the DER of the TLS client certificate it presents (mTLS),
    /// when one was exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
    /// How it came to be: `operator` (`partner add`) or `invitation:<id>` (a join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When its grants, groups, jurisdiction or directory fields last changed (an audited
    /// change, [`Store::update_partner`]), ns since the epoch (0: never).
    #[serde(default)]
    pub updated_ns: i64,
}

impl Partner {
    pub(crate) fn from_record(text: &str) -> Result<Partner> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("partner record: {e}")))
    }

    pub(crate) fn to_record(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An invitation this node issued (issue 19, `concord invite`), as the store keeps it:
/// never its secret, only the secret's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationRecord {
    /// Its id (a UUID), named in the invitation file and in the partner's origin
    /// (`invitation:<id>`).
    pub id: String,
    /// The name the joining organisation gets as a partner of this node.
    pub partner: String,
    /// SHA-256 of the one-time secret, 64 lower-case hex digits.
    pub secret_sha256: String,
    /// When it was issued, ns since the epoch.
    pub created_ns: i64,
    /// When it stops admitting a join, ns since the epoch.
    pub expires_ns: i64,
    /// When a join consumed it; `None` while unused.
    pub used_ns: Option<i64>,
    /// The public node key (hex) of the node that joined with it.
    pub used_by: Option<String>,
    /// The invitation as issued, without its secret (JSON): the grants a join gives.
    pub offer: String,
    /// SHA-256 (hex) of the canonical join request that consumed it (schema 21); `None`
    /// while unused.
    pub request_sha256: Option<String>,
    /// The signed answer sent to that request, sealed under a key derived from the
    /// invitation's secret (schema 21): what a retry of the same request gets again.
    pub answer: Option<String>,
}

/// How a join consumed an invitation ([`Store::consume_invitation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationUse {
    /// When, ns since the epoch.
    pub now_ns: i64,
    /// The public node key (hex) of the node that joined.
    pub used_by: String,
    /// SHA-256 (hex) of the canonical join request.
    pub request_sha256: String,
    /// The signed answer, sealed (see [`InvitationRecord::answer`]).
    pub answer: String,
}

/// What [`Store::admit_partner`] and [`Store::consume_invitation`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Everything was written, in one transaction.
    Admitted,
    /// No invitation with that id.
    Unknown,
    /// The invitation was consumed before.
    Used,
    /// The invitation expired.
    Expired,
    /// A partner of that name, or a non-empty setting of that key, exists (the string names
    /// it); nothing was written.
    NameTaken(String),
}

/// The stored form of a lease: the expiry zero-padded to 20 digits (so that text order is
/// time order, in both backends' SQL), `:`, the holder.
pub(crate) fn lease_value(holder: &str, until_ns: i64) -> String {
    format!("{:020}:{holder}", until_ns.max(0))
}

/// The message of a conflicting `(id, modified)` within one collection.
pub(crate) fn conflict_message(h: &ObjectHeader) -> String {
    format!(
        "{}: modified {}: this collection already holds a different version with this id and \
         modified; a new version needs a new modified (STIX 2.1 §3.6)",
        h.id,
        h.version().map(|t| t.as_str()).unwrap_or("-")
    )
}

/// STIX 2.1 §3.6: `created` and `created_by_ref` are the same in every version of an object
/// ("The created property MUST NOT change", "created_by_ref … MUST NOT change"). `earlier` is
/// a version this collection already holds (all of them agree, by this very check), `new` the
/// version being added. `created` is compared as an instant (at nanoseconds, §3.2), so a
/// change of precision alone is not a change. Returns the rule broken, naming the object and
/// the property, or `None`.
pub(crate) fn unchanging_properties(
    h: &ObjectHeader,
    earlier: &serde_json::Value,
    new: &serde_json::Value,
) -> Option<String> {
    let created = |v: &serde_json::Value| {
        v.get("created")
            .and_then(|c| c.as_str())
            .map(|c| match concord_stix::Timestamp::parse(c) {
                Ok(t) => t.sort_key(),
                Err(_) => c.to_owned(),
            })
    };
    if created(earlier) != created(new) {
        return Some(format!(
            "{}: created: {} differs from created {} of the versions already held; created \
             never changes between versions of an object (STIX 2.1 §3.6)",
            h.id,
            new.get("created").unwrap_or(&serde_json::Value::Null),
            earlier.get("created").unwrap_or(&serde_json::Value::Null),
        ));
    }
    let by = |v: &serde_json::Value| v.get("created_by_ref").cloned();
    if by(earlier) != by(new) {
        return Some(format!(
            // The held value is not named: a partner may receive the held version with
            // its `created_by_ref` cut (a withheld identity), and must not learn it here.
            "{}: created_by_ref: {} differs from the created_by_ref of the versions already \
             held; created_by_ref never changes between versions of an object (STIX 2.1 §3.6)",
            h.id,
            new.get("created_by_ref")
                .unwrap_or(&serde_json::Value::Null),
        ));
    }
    None
}

/// SHA-256 over the canonical form of a JSON value (object keys sorted by code point, no
/// whitespace), so that two deliveries of one object that differ only in layout or key order
/// are recognised as the same content.
pub fn content_hash(value: &serde_json::Value) -> [u8; 32] {
    use sha2::Digest;
    fn write(v: &serde_json::Value, h: &mut sha2::Sha256) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                h.update(b"{");
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        h.update(b",");
                    }
                    h.update(serde_json::Value::String(k.clone()).to_string().as_bytes());
                    h.update(b":");
                    write(&m[k], h);
                }
                h.update(b"}");
            }
            serde_json::Value::Array(a) => {
                h.update(b"[");
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        h.update(b",");
                    }
                    write(x, h);
                }
                h.update(b"]");
            }
            other => h.update(other.to_string().as_bytes()),
        }
    }
    let mut h = sha2::Sha256::new();
    write(value, &mut h);
    h.finalize().into()
}

#[cfg(test)]
mod alias_tests {
    use super::*;

    /// Hostile-load fault 5: `.` and `..` are refused (a URL normalises them away), other
    /// aliases with dots are not; the error names the rule.
    #[test]
    fn dot_and_dot_dot_are_not_aliases() {
        for bad in [".", ".."] {
            let e = check_alias(bad).unwrap_err().to_string();
            assert!(e.contains(r#"not ".""#), "{bad}: {e}");
        }
        for good in ["...", ".hidden", "a.b", "intel", "x-1_2"] {
            check_alias(good).unwrap();
        }
        assert!(is_format_char('\u{202e}') && is_format_char('\u{200b}'));
        assert!(!is_format_char('a') && !is_format_char('\u{0644}'));
    }
}
