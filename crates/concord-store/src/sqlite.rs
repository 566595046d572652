//! The embedded default backend: two SQLite files in WAL mode, the main file
//! (`concord.sqlite`: collections, objects, partners, settings…) and the audit log's file
//! beside it ([`audit_path`]: `concord.audit.sqlite`).
//!
//! SQLite allows one writer at a time per file: the store keeps one writer connection per
//! file behind a mutex (a [`WriteBatch`] holds the main one for its whole transaction) and a
//! small pool of reader connections, so TAXII reads go on while an import writes.
//! `synchronous = FULL`: a committed batch survives a crash or power loss, which TAXII's 202
//! promises the client.
//!
//! The log has a file of its own because every TAXII page is an audit append: SQLite drops a
//! connection's page cache of a file whenever that file's WAL changed, so appends to the main
//! file made every reader read its pages again (issue 17). The main file's connections
//! attach the log's file (as `audit`, read-only), so SQL names tables of either file
//! unqualified; only the log's own writer writes it. A change to both files (a write batch
//! with its ingress records, a partner update with its record) writes the log first, then
//! commits the main file: a crash between the two leaves a record of more than happened,
//! never less.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::audit::{
    ArchiveBoundary, AuditEntry, AuditRecord, Checkpoint, GENESIS, Hash, NameKeys, PendingTransfer,
    TransferEntry, chain_after, chain_transfers, group_records,
};
use crate::{
    AddOutcome, AuditQuery, AuditWindow, Collection, Cursor, Entry, NewCollection, NewObject,
    ObjectFilter, PackageDirection, PackageLink, Page, PageRequest, Partner, Result, Store,
    StoreError, StoreOptions, VersionName, WriteBatch, conflict_message, content_hash,
};
use crate::{Admission, InvitationRecord, InvitationUse};
use crate::{
    Approval, ApprovalDecision, OidcBegin, OidcLogin, OidcQuota, PartnerSwap, SessionClock,
    SessionSubject, SettingChange, User, WebSession,
};
use crate::{ForeignVersions, VersionParams, version_condition};

/// The columns [`user_row`] reads.
const USER_COLUMNS: &str =
    "name, role, token_id, password_hash, token_hash, totp_secret, created_ns";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get(0)?,
        role: r.get(1)?,
        token_id: r.get(2)?,
        password_hash: r.get(3)?,
        token_hash: r.get(4)?,
        totp_secret: r.get(5)?,
        created_ns: r.get(6)?,
    })
}

/// Migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/sqlite/0002_partners.sql"),
    include_str!("../migrations/sqlite/0003_audit.sql"),
    include_str!("../migrations/sqlite/0004_provenance.sql"),
    include_str!("../migrations/sqlite/0005_timestamp_keys.sql"),
    include_str!("../migrations/sqlite/0006_collection_version.sql"),
    include_str!("../migrations/sqlite/0007_audit_transfers.sql"),
    include_str!("../migrations/sqlite/0008_versions_per_collection.sql"),
    include_str!("../migrations/sqlite/0009_packages.sql"),
    include_str!("../migrations/sqlite/0010_foreign_versions.sql"),
    include_str!("../migrations/sqlite/0011_foreign_shadows.sql"),
    include_str!("../migrations/sqlite/0012_audit_names.sql"),
    include_str!("../migrations/sqlite/0013_package_reservations.sql"),
    include_str!("../migrations/sqlite/0014_audit_time.sql"),
    include_str!("../migrations/sqlite/0015_invitations.sql"),
    include_str!("../migrations/sqlite/0018_people.sql"),
    include_str!("../migrations/sqlite/0019_approvals.sql"),
    include_str!("../migrations/sqlite/0020_oidc_logins.sql"),
    include_str!("../migrations/sqlite/0021_join_answers.sql"),
    include_str!("../migrations/sqlite/0022_approval_requests.sql"),
    include_str!("../migrations/sqlite/0024_legacy_archive.sql"),
    include_str!("../migrations/sqlite/0025_posting_buckets.sql"),
    include_str!("../migrations/sqlite/0026_audit_file.sql"),
];

/// The position in [`MIGRATIONS`] of `0026_audit_file.sql`, before which the store copies the
/// log into its own file ([`move_audit_out`]).
const MOVE_AUDIT_AT: usize = 22;

/// Migrations of the audit log's file, applied in order; its `PRAGMA user_version` records
/// how many ran.
const AUDIT_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite-audit/0001_audit_file.sql"),
    include_str!("../migrations/sqlite-audit/0002_batch_names.sql"),
];

/// The setting of the main file that names its audit log's file (the id in `audit_file`).
const AUDIT_FILE_SETTING: &str = "audit.file";

/// The audit log's file of the main file `path`: `.audit` before its extension
/// (`concord.sqlite` → `concord.audit.sqlite`; `db` → `db.audit`). Back it up with the main
/// file: a store does not open without its own.
pub fn audit_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let file = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.audit.{ext}"),
        _ => format!("{name}.audit"),
    };
    path.with_file_name(file)
}

/// An SQLite URI naming `path` (RFC 3986 percent-encoding of what is not a plain path
/// character), with the query `query`: how ATTACH opens a file read-only.
fn file_uri(path: &Path, query: &str) -> String {
    let mut out = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Attaches the file `path` to `conn` as `schema`, read-only unless `write`.
fn attach(conn: &Connection, path: &Path, schema: &str, write: bool) -> Result<()> {
    let uri = file_uri(path, if write { "mode=rw" } else { "mode=ro" });
    conn.execute(&format!("ATTACH DATABASE ?1 AS {schema}"), [uri])?;
    Ok(())
}

/// Opens the main file `path` read-write with its audit log's file attached (as `audit`,
/// read-write too) when that file exists: for tools and tests that read or change the
/// database outside a store (what someone holding the files can do). No migrations run.
pub fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    let audit = audit_path(path);
    if audit.exists() {
        attach(&conn, &audit, "audit", true)?;
    }
    Ok(conn)
}

/// [`connect`], read-only: what copies a store elsewhere (`concord migrate-store`) reads.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )?;
    let audit = audit_path(path);
    if audit.exists() {
        attach(&conn, &audit, "audit", false)?;
    }
    Ok(conn)
}

/// Whether a table `name` exists in any file `conn` has open (main or attached).
pub(crate) fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_list WHERE name = ?1 AND type = 'table')",
        [name],
        |r| r.get(0),
    )?)
}

/// The posting index (`audit_postings`, schema 25) keeps one row per entry and block of
/// 2^6 = 64 version rows it names: the block of vid `v` is `v >> POSTING_BUCKET_BITS`.
/// A page's vids are mostly consecutive, so a page of 100 objects costs 2 or 3 postings
/// instead of 100; a look-up by vid reads its block's entries and keeps those naming it.
pub const POSTING_BUCKET_BITS: u32 = 6;

/// The distinct posting blocks of `vids` (sorted ascending, as [`TransferEntry::vids`]
/// gives them), ascending.
fn posting_buckets(vids: &[i64]) -> Vec<i64> {
    let mut out: Vec<i64> = vids.iter().map(|v| v >> POSTING_BUCKET_BITS).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The `vid`s of object `?1`'s version rows, as a subquery.
///
/// Both indexes on `object_versions (id, …)` are partial (`modified_key` NULL or not), so
/// `WHERE id = ?1` alone matches neither and scans every version: once per object of a
/// package or sync import, quadratic in the node's size. Each condition is named, so each
/// half is one index look-up (`tests::by_id_is_a_look_up_not_a_scan`).
const VIDS_OF_ID: &str =
    "(SELECT vid FROM object_versions WHERE id = ?1 AND modified_key IS NOT NULL
      UNION ALL
      SELECT vid FROM object_versions WHERE id = ?1 AND modified_key IS NULL)";

/// Whether the node holds or ever held a version of the object `?1` (its id in
/// `object_versions`, or a name kept by the audit log after the version was deleted), by
/// index look-ups as in [`VIDS_OF_ID`].
const ID_HELD: &str =
    "SELECT EXISTS(SELECT 1 FROM object_versions WHERE id = ?1 AND modified_key IS NOT NULL)
         OR EXISTS(SELECT 1 FROM object_versions WHERE id = ?1 AND modified_key IS NULL)
         OR EXISTS(SELECT 1 FROM audit_version_names WHERE object_id = ?1)";

/// The condition (over `object_versions v`) of object `?1`'s version rows, for
/// [`version_names`]: [`VIDS_OF_ID`].
fn of_id() -> String {
    format!("v.vid IN {VIDS_OF_ID}")
}

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    /// The writer of the main file (the log's file attached read-only, for [`vid_floor`]).
    writer: Mutex<Connection>,
    /// The writer of the log's file. Taken after [`SqliteStore::writer`] when both are held
    /// (never the other way round, so two appends cannot deadlock).
    audit_writer: Mutex<Connection>,
    /// Appends waiting for the log's writer ([`SqliteStore::append_pending`]).
    group: Mutex<AppendGroup>,
    /// Signalled when a group of appends was written.
    group_written: std::sync::Condvar,
    readers: Mutex<Vec<Connection>>,
    /// Reader connections lent out now (for the pool gauge of `/metrics`).
    readers_in_use: std::sync::atomic::AtomicUsize,
    /// The connection of [`Store::flush`], opened on first use: its checkpoint (two
    /// fsyncs, as long as a busy disk makes them) holds no lock that a write or an audit
    /// append waits for.
    flusher: Mutex<Option<Connection>>,
    options: StoreOptions,
}

/// One append waiting in an [`AppendGroup`].
struct Append {
    ticket: u64,
    pending: Vec<PendingTransfer>,
    /// `Some`: durable, with the names of the version rows it names (kept in
    /// `audit_batch_names` until the main file's batch has committed).
    durable: Option<NameKeys>,
}

/// The appends of a group commit ([`SqliteStore::append_pending`]).
#[derive(Default)]
struct AppendGroup {
    queue: Vec<Append>,
    next_ticket: u64,
    /// Whether an appender is writing a group now.
    writing: bool,
    /// Outcomes of written appends by ticket, until their appenders take them.
    done: std::collections::HashMap<u64, Result<()>>,
}

/// The writing of a group: on drop (also when writing panicked), every append of the group
/// gets its outcome, an error if none was set, and the waiting appenders wake up.
struct Writing<'a> {
    store: &'a SqliteStore,
    tickets: Vec<u64>,
    outcomes: Vec<(u64, Result<()>)>,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut group = self.store.group.lock().unwrap_or_else(|e| e.into_inner());
        let mut outcomes: std::collections::HashMap<u64, Result<()>> =
            std::mem::take(&mut self.outcomes).into_iter().collect();
        for t in &self.tickets {
            let outcome = outcomes.remove(t).unwrap_or_else(|| {
                Err(StoreError::Corrupt(
                    "the audit append was interrupted (a panic while writing)".into(),
                ))
            });
            group.done.insert(*t, outcome);
        }
        group.writing = false;
        self.store.group_written.notify_all();
    }
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
    ///
    /// The audit log's file ([`audit_path`]) must be the one made with this file: a missing
    /// one or another file's is [`StoreError::AuditFile`], naming both files.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        configure(&conn, options.sqlite_cache_bytes)?;
        migrate(&conn, path)?;
        let audit = open_audit(path, &conn, options)?;
        attach(&conn, &audit_path(path), "audit", false)?;
        let store = SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            audit_writer: Mutex::new(audit),
            group: Mutex::new(AppendGroup::default()),
            group_written: std::sync::Condvar::new(),
            readers: Mutex::new(Vec::new()),
            readers_in_use: std::sync::atomic::AtomicUsize::new(0),
            flusher: Mutex::new(None),
            options: options.clone(),
        };
        store.settle_batch_names()?;
        Ok(store)
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

    fn audit_writer(&self) -> MutexGuard<'_, Connection> {
        self.audit_writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `pending` (named, not yet chained) after the log's head, and returns once it
    /// is committed. `durable` (`Some`): wait for fsync, because a write of the main file
    /// follows whose commit is durable; the names it carries (vid → object id, `modified`, as
    /// the main file's transaction sees them) are kept in the log's file until that commit is
    /// known ([`SqliteStore::forget_batch_names`], [`SqliteStore::settle_batch_names`]).
    /// `None`: committed without fsync, made durable by [`Store::flush`].
    ///
    /// Group commit: appends that arrive while one is being written wait, and the first of
    /// them to find the writer free writes them all in one transaction of the log's file
    /// (each still its own entries, chained in arrival order). Eight connections paging at
    /// once then cost one commit, not eight: fewer WAL frames (the same index pages), one
    /// lock of the file, one hand-over of the writer.
    fn append_pending(
        &self,
        pending: Vec<PendingTransfer>,
        durable: Option<NameKeys>,
    ) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut group = self.group.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = group.next_ticket;
        group.next_ticket += 1;
        group.queue.push(Append {
            ticket,
            pending,
            durable,
        });
        loop {
            if let Some(outcome) = group.done.remove(&ticket) {
                return outcome;
            }
            if !group.writing {
                group.writing = true;
                let appends = std::mem::take(&mut group.queue);
                drop(group);
                let mut writing = Writing {
                    store: self,
                    tickets: appends.iter().map(|a| a.ticket).collect(),
                    outcomes: Vec::new(),
                };
                writing.outcomes = self.write_group(appends);
                drop(writing);
                group = self.group.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            group = self
                .group_written
                .wait(group)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Writes `appends` in one transaction; when that fails, each alone, so that each gets
    /// its own outcome (one bad append does not fail the others).
    fn write_group(&self, mut appends: Vec<Append>) -> Vec<(u64, Result<()>)> {
        match self.write_appends(&mut appends) {
            Ok(()) => appends.into_iter().map(|a| (a.ticket, Ok(()))).collect(),
            Err(e) if appends.len() == 1 => vec![(appends[0].ticket, Err(e))],
            Err(_) => appends
                .into_iter()
                .map(|mut a| {
                    let outcome = self.write_appends(std::slice::from_mut(&mut a));
                    (a.ticket, outcome)
                })
                .collect(),
        }
    }

    /// Chains and writes `appends` after the log's head, in one transaction of the log's file
    /// that holds its write lock (so that two processes cannot fork the chain).
    fn write_appends(&self, appends: &mut [Append]) -> Result<()> {
        let durable = appends.iter().any(|a| a.durable.is_some());
        let mut conn = self.audit_writer_at(durable)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut at = head(&tx)?;
        let now = now_ns();
        for a in appends.iter_mut() {
            chain_transfers(at, now, &mut a.pending);
            if let Some(last) = a.pending.last() {
                at = (last.entry.seq, last.entry.hash);
            }
            write_transfers(&tx, &a.pending)?;
            // vids named by a durable append may belong to a main-file batch that has
            // not committed yet: never given again, and their names kept.
            let top = a.pending.iter().filter_map(|p| p.vids.last()).max();
            if let (Some(names), Some(top)) = (&a.durable, top) {
                tx.prepare_cached("UPDATE audit_vid_floor SET vid = MAX(vid, ?1)")?
                    .execute([top])?;
                let mut keep = tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_batch_names (vid, object_id, modified)
                     VALUES (?1, ?2, ?3)",
                )?;
                for (vid, (object_id, modified)) in names {
                    keep.execute(params![vid, object_id, modified])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The log's writer, its commits waiting for fsync (`durable`) or not. Set before each
    /// transaction, never restored after one: a statement failing after a commit must not
    /// make a committed group look failed (it would be written again).
    fn audit_writer_at(&self, durable: bool) -> Result<MutexGuard<'_, Connection>> {
        let conn = self.audit_writer();
        // Prepared once per connection: `pragma_update` would parse it at every read.
        conn.prepare_cached(if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        })?
        .execute([])?;
        Ok(conn)
    }

    /// After a main-file batch committed: its names kept by the log are no longer needed.
    /// Best effort (the batch has committed either way): names left behind are settled at
    /// the next open, and found held there.
    fn forget_batch_names(&self, vids: &[i64]) {
        let _ = self.delete_batch_names(vids, false);
    }

    /// At open: names the log kept for batches whose main-file commit is not known. A batch
    /// holds the main file's write lock from its first write to its commit, so under that
    /// lock every such name is either held by the main file (the batch committed) or belongs
    /// to a batch that never will (a crash between the log's commit and the main file's):
    /// those become names of deleted version rows (`audit_version_names`), so the entries
    /// that named them still verify (their names digest) and `show` names them. Then the log
    /// lets the names go.
    fn settle_batch_names(&self) -> Result<()> {
        let mut conn = self.writer();
        // Nearly always none: no write lock at start-up then (a CLI command would wait for a
        // running import's batch).
        let any: bool =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM audit_batch_names)", [], |r| {
                r.get(0)
            })?;
        if !any {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let kept: Vec<(i64, String, Option<String>)> = {
            let mut st = tx.prepare("SELECT vid, object_id, modified FROM audit_batch_names")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if kept.is_empty() {
            return Ok(());
        }
        for (vid, object_id, modified) in &kept {
            tx.execute(
                "INSERT INTO audit_version_names (vid, object_id, version, modified)
                 SELECT ?1, ?2, ?3, ?4
                 WHERE NOT EXISTS(SELECT 1 FROM audit_version_names WHERE vid = ?1)
                   AND NOT EXISTS(SELECT 1 FROM object_versions WHERE vid = ?1)",
                params![
                    vid,
                    object_id,
                    modified.as_deref().unwrap_or("never stored"),
                    modified
                ],
            )?;
        }
        tx.commit()?;
        drop(conn);
        let vids: Vec<i64> = kept.iter().map(|k| k.0).collect();
        self.delete_batch_names(&vids, true)
    }

    /// Removes the names the log kept of `vids` ([`SqliteStore::append_pending`]).
    fn delete_batch_names(&self, vids: &[i64], durable: bool) -> Result<()> {
        let mut conn = self.audit_writer_at(durable)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached("DELETE FROM audit_batch_names WHERE vid = ?1")?;
            for v in vids {
                st.execute([v])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        use std::sync::atomic::Ordering::Relaxed;
        let pooled = {
            let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            let c = pool.pop();
            let in_use = self.readers_in_use.fetch_add(1, Relaxed) + 1;
            crate::record_pool("sqlite", in_use, pool.len());
            c
        };
        // Counted back whatever happens below (an error opening, a panic in `f`).
        struct Lent<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Relaxed);
            }
        }
        let _lent = Lent(&self.readers_in_use);
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                configure(&c, self.options.sqlite_cache_bytes)?;
                attach(&c, &audit_path(&self.path), "audit", false)?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.options.sqlite_readers {
            pool.push(conn);
        }
        crate::record_pool(
            "sqlite",
            self.readers_in_use.load(Relaxed).saturating_sub(1),
            pool.len(),
        );
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
            store: self,
            pending: Vec::new(),
            names: NameKeys::default(),
            collection_id: collection_id.to_owned(),
            date_added_ns: 0,
            open: true,
            added: false,
            last_vid: None,
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

/// The file that serialises migrations of the main file `path` between processes
/// (`NAME.migration-lock` beside it; made on the first migration and kept, since removing a
/// lock file others may be waiting on would let two processes hold "it").
pub fn migration_lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".migration-lock");
    PathBuf::from(name)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version =
        || -> Result<i64> { Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?) };
    let known = MIGRATIONS.len() as i64;
    let current = version()?;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    if current == known {
        return Ok(());
    }
    // Two processes opening an old file at once (`serve` and a CLI command): one migrates,
    // the other waits here and then finds the work done. Without it both ran the same
    // migrations, and both moved the log out (schema 26), each removing the other's copy.
    let lock_path = migration_lock_path(path);
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| io_error("cannot lock", &lock_path, e))?;
    let current = version()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let moved = if i == MOVE_AUDIT_AT {
            Some(move_audit_out(conn, path)?)
        } else {
            None
        };
        let tx = conn.unchecked_transaction()?;
        if let Some(id) = moved {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![AUDIT_FILE_SETTING, id],
            )?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    drop(lock);
    Ok(())
}

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

/// The tables [`move_audit_out`] copies, with their columns.
const MOVED_TABLES: &[(&str, &str)] = &[
    (
        "audit_log",
        "seq, time_ns, direction, door, partner, collection_id, object_id, modified, decision, \
         transformations, policy_version, prev_hash, hash",
    ),
    (
        "audit_entries",
        "seq, time_ns, direction, door, partner, person, collection_id, policy_version, count, \
         dictionary, items, digest, prev_hash, hash, names",
    ),
    ("audit_postings", "bucket, seq"),
    (
        "audit_checkpoints",
        "no, entry_seq, entry_hash, time_ns, prev, key, signature",
    ),
    (
        "audit_archives",
        "through_seq, through_hash, checkpoint_no, time_ns, file, legacy_through",
    ),
];

/// The first table of the log in `main` (at schema 25) whose newest row (by its key, with
/// its hash or signature) `file` (a log's file) does not hold; `None`: it holds every one.
fn log_not_held(main: &Connection, file: &Connection) -> Result<Option<&'static str>> {
    for (table, key, value) in [
        ("audit_log", "seq", "hash"),
        ("audit_entries", "seq", "hash"),
        ("audit_checkpoints", "no", "signature"),
        ("audit_archives", "through_seq", "through_hash"),
    ] {
        if !has_table(main, table)? {
            continue;
        }
        let newest: Option<(i64, SqlValue)> = main
            .query_row(
                &format!("SELECT {key}, {value} FROM main.{table} ORDER BY {key} DESC LIMIT 1"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((k, v)) = newest else { continue };
        let held: bool = has_table(file, table)?
            && file.query_row(
                &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE {key} = ?1 AND {value} = ?2)"),
                params![k, v],
                |r| r.get(0),
            )?;
        if !held {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// Copies the audit log out of the main file `path` (open as `conn`, at schema 25) into its
/// own file ([`audit_path`]) and returns the new file's id, for migration 26 to record and
/// then drop the tables. The copy is made in `NAME.partial` and renamed when whole, so a file
/// at [`audit_path`] is always complete: one found there was made by a move that stopped
/// before the main file's migration committed, and is taken as it is.
fn move_audit_out(conn: &Connection, path: &Path) -> Result<String> {
    let file = audit_path(path);
    if file.exists() {
        let a = Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // Taken only if it holds this file's log (the main file drops its own next): a file
        // left there by anything but this move (another node's, a new one) would replace
        // the log, intact for `verify`, with nothing of it.
        if let Some(table) = log_not_held(conn, &a)? {
            return Err(StoreError::AuditFile(format!(
                "{} does not hold the audit log of {} (the newest row of its {table} is \
                 missing there), so the log is not moved into it; move that file away",
                file.display(),
                path.display()
            )));
        }
        return Ok(a.query_row("SELECT id FROM audit_file", [], |r| r.get(0))?);
    }
    let mut partial = file.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    for leftover in [
        partial.clone(),
        PathBuf::from(format!("{}-journal", partial.display())),
    ] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error("cannot remove", &leftover, e));
            }
            _ => {}
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    {
        let a = Connection::open(&partial)?;
        migrate_audit_file(&a)?;
        a.execute("INSERT INTO audit_file (id) VALUES (?1)", [&id])?;
    }
    attach(conn, &partial, "moving", true)?;
    let copied = (|| -> Result<()> {
        let tx = conn.unchecked_transaction()?;
        for (table, columns) in MOVED_TABLES {
            tx.execute_batch(&format!(
                "INSERT INTO moving.{table} ({columns}) SELECT {columns} FROM main.{table}"
            ))?;
        }
        tx.commit()?;
        Ok(())
    })();
    conn.execute_batch("DETACH DATABASE moving")?;
    copied?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("cannot sync", &partial, e))?;
    std::fs::rename(&partial, &file).map_err(|e| io_error("cannot rename to", &file, e))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", dir, e))?;
    }
    Ok(id)
}

/// Applies the pending [`AUDIT_MIGRATIONS`] to a log's file; `PRAGMA user_version` counts
/// them. Errors: [`StoreError::SchemaTooNew`] for a file from a newer Concord.
fn migrate_audit_file(a: &Connection) -> Result<()> {
    let current: i64 = a.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = AUDIT_MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in AUDIT_MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = a.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens the writer of the audit log's file of the main file `path` (open as `main`, fully
/// migrated): applies the file's pending migrations and checks that it is the file the main
/// file names.
///
/// Errors: [`StoreError::AuditFile`] when the file is missing (a new, empty log is never made
/// beside existing data) or belongs to another main file; [`StoreError::SchemaTooNew`].
fn open_audit(path: &Path, main: &Connection, options: &StoreOptions) -> Result<Connection> {
    let file = audit_path(path);
    let expected: Option<String> = main
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [AUDIT_FILE_SETTING],
            |r| r.get(0),
        )
        .optional()?;
    let Some(expected) = expected else {
        return Err(StoreError::AuditFile(format!(
            "{} names no audit log file (its setting {AUDIT_FILE_SETTING} is missing)",
            path.display()
        )));
    };
    if !file.exists() {
        return Err(StoreError::AuditFile(format!(
            "the audit log file {} of {} is missing; restore both files from the same backup \
             (a store never starts a new, empty log beside its data)",
            file.display(),
            path.display()
        )));
    }
    let a = Connection::open_with_flags(
        &file,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    a.pragma_update(None, "journal_mode", "WAL")?;
    configure(&a, options.sqlite_cache_bytes)?;
    migrate_audit_file(&a)?;
    let id: Option<String> = if has_table(&a, "audit_file")? {
        a.query_row("SELECT id FROM audit_file", [], |r| r.get(0))
            .optional()?
    } else {
        None
    };
    if id.as_deref() != Some(expected.as_str()) {
        return Err(StoreError::AuditFile(format!(
            "{} is not the audit log file of {} (its id {}, the main file names {expected})",
            file.display(),
            path.display(),
            id.as_deref().unwrap_or("none")
        )));
    }
    Ok(a)
}

/// Moves a chain of transfer packages from `previous` (0: none yet) to `link`, in the
/// caller's transaction; `false` when its last sequence is no longer `previous`.
fn advance_chain(
    conn: &Connection,
    direction: PackageDirection,
    node: &str,
    partner: &str,
    previous: i64,
    link: &PackageLink,
) -> Result<bool> {
    let changed = if previous == 0 {
        conn.execute(
            "INSERT INTO package_chains (direction, node, partner, sequence, digest, updated_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                direction.as_str(),
                node,
                partner,
                link.sequence,
                link.digest,
                now_ns()
            ],
        )?
    } else {
        conn.execute(
            "UPDATE package_chains SET sequence = ?4, digest = ?5, updated_ns = ?6
             WHERE direction = ?1 AND node = ?2 AND partner = ?3 AND sequence = ?7",
            params![
                direction.as_str(),
                node,
                partner,
                link.sequence,
                link.digest,
                now_ns(),
                previous
            ],
        )?
    };
    Ok(changed == 1)
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
    store: &'a SqliteStore,
    /// The batch's transfers, named in its transaction, appended to the log at commit (before
    /// the main file commits).
    pending: Vec<PendingTransfer>,
    /// The names of the version rows they name, as this transaction sees them.
    names: NameKeys,
    collection_id: String,
    date_added_ns: i64,
    open: bool,
    /// Whether an entry was added: the commit moves the collection's version.
    added: bool,
    last_vid: Option<i64>,
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

    fn add_unseen(&mut self, object: &NewObject<'_>, unseen: &[i64]) -> Result<AddOutcome> {
        self.last_vid = None;
        let h = object.header;
        let hash = content_hash(object.value);
        let version = h.version();
        let modified_key = version.map(|t| t.sort_key());
        if let Some(m) = &modified_key {
            // Decided within this collection only (issue 24, item 14): what other collections
            // hold never changes the answer, so a writer learns nothing about them.
            // Versions the writer does not receive count as absent ([`WriteBatch::add_unseen`]).
            let held: Option<(i64, Vec<u8>)> = self
                .conn
                .prepare_cached(
                    "SELECT v.vid, v.content_hash FROM collection_entries e
                     JOIN object_versions v ON v.vid = e.vid
                     WHERE e.collection_id = ?1 AND e.id = ?2 AND e.version_key = ?3
                       AND v.modified_key IS NOT NULL
                     ORDER BY e.seq",
                )?
                .query_map(params![self.collection_id, h.id, m], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })?
                .find(|row| row.as_ref().map_or(true, |(vid, _)| !unseen.contains(vid)))
                .transpose()?;
            match held {
                Some((_, stored)) if stored != hash => {
                    return Ok(AddOutcome::Conflict(conflict_message(h)));
                }
                Some((vid, _)) => {
                    self.last_vid = Some(vid);
                    return Ok(AddOutcome::AlreadyPresent);
                }
                None => {}
            }
            let earlier: Option<String> = if unseen.is_empty() {
                self.conn
                    .prepare_cached(
                        "SELECT v.body FROM collection_entries e
                         JOIN object_versions v ON v.vid = e.vid
                         WHERE e.collection_id = ?1 AND e.id = ?2 AND v.modified_key IS NOT NULL
                         LIMIT 1",
                    )?
                    .query_row(params![self.collection_id, h.id], |r| r.get(0))
                    .optional()?
            } else {
                self.conn
                    .prepare_cached(
                        "SELECT e.vid, v.body FROM collection_entries e
                         JOIN object_versions v ON v.vid = e.vid
                         WHERE e.collection_id = ?1 AND e.id = ?2 AND v.modified_key IS NOT NULL",
                    )?
                    .query_map(params![self.collection_id, h.id], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })?
                    .find(|row| row.as_ref().map_or(true, |(vid, _)| !unseen.contains(vid)))
                    .transpose()?
                    .map(|(_, body)| body)
            };
            if let Some(body) = earlier {
                let earlier: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("stored {}: {e}", h.id)))?;
                if let Some(why) = crate::unchanging_properties(h, &earlier, object.value) {
                    return Ok(AddOutcome::Conflict(why));
                }
            }
        }
        let existing: Option<i64> = match &modified_key {
            Some(m) => self
                .conn
                .prepare_cached(
                    "SELECT vid FROM object_versions
                     WHERE id = ?1 AND modified_key = ?2 AND content_hash = ?3",
                )?
                .query_row(params![h.id, m, &hash[..]], |r| r.get(0))
                .optional()?,
            None => self
                .conn
                .prepare_cached(
                    "SELECT vid FROM object_versions
                     WHERE id = ?1 AND modified_key IS NULL AND content_hash = ?2",
                )?
                .query_row(params![h.id, &hash[..]], |r| r.get(0))
                .optional()?,
        };
        let vid = match existing {
            Some(vid) => vid,
            None => {
                self.conn
                    .prepare_cached(
                        // vids are never reused (the audit log names them): above the held
                    // rows, the names kept of deleted ones, and the log's floor (vids of a
                    // batch recorded by the log that did not commit here).
                    "INSERT INTO object_versions
                         (vid, id, type, spec_version, modified_key, modified, content_hash, body)
                         VALUES ((SELECT MAX(COALESCE((SELECT MAX(vid) FROM object_versions), 0),
                                             COALESCE((SELECT MAX(vid) FROM audit_version_names), 0),
                                             (SELECT vid FROM audit_vid_floor)) + 1),
                                 ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
        self.last_vid = Some(vid);
        Ok(if n == 1 {
            self.added = true;
            AddOutcome::Added
        } else {
            AddOutcome::AlreadyPresent
        })
    }

    fn append_audit(&mut self, records: &[AuditRecord]) -> Result<()> {
        let (named, names) = named_transfers(&self.conn, records, &Default::default(), None)?;
        self.pending.extend(named);
        self.names.extend(names);
        Ok(())
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
        self.conn.execute(
            "INSERT INTO provenance (object_id, version, peer, received_ns, first)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (object_id, version, peer) DO UPDATE SET first = MAX(first, excluded.first)",
            params![object_id, version, peer, now_ns(), first],
        )?;
        Ok(())
    }

    fn mark_foreign(&mut self, vid: i64, writer: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO foreign_versions (collection_id, vid, writer) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![self.collection_id, vid, writer],
        )?;
        Ok(())
    }

    fn adopt_foreign(&mut self, vid: i64) -> Result<()> {
        self.conn.execute(
            "DELETE FROM foreign_versions WHERE collection_id = ?1 AND vid = ?2",
            params![self.collection_id, vid],
        )?;
        Ok(())
    }

    fn foreign_of(&mut self, id: &str) -> Result<Vec<i64>> {
        let mut st = self.conn.prepare_cached(
            "SELECT f.vid FROM foreign_versions f
             JOIN collection_entries e ON e.collection_id = f.collection_id AND e.vid = f.vid
             WHERE f.collection_id = ?1 AND e.id = ?2",
        )?;
        let rows = st.query_map(params![self.collection_id, id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn take_over(&mut self, id: &str, keep: Option<i64>) -> Result<Option<Vec<i64>>> {
        let created: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM provenance
                 WHERE object_id = ?1 AND first AND peer LIKE 'partner/%')",
            [id],
            |r| r.get(0),
        )?;
        if !created {
            return Ok(None);
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO foreign_versions (collection_id, vid, writer, shadows)
             SELECT e.collection_id, e.vid, MIN(p.peer), 0
             FROM collection_entries e JOIN object_versions v ON v.vid = e.vid
             JOIN provenance p ON p.object_id = e.id AND p.version = COALESCE(v.modified, '')
             WHERE e.collection_id = ?1 AND e.id = ?2 AND e.vid IS NOT ?3
               AND p.peer IN (SELECT peer FROM provenance
                              WHERE object_id = ?2 AND first AND peer LIKE 'partner/%')
             GROUP BY e.collection_id, e.vid",
            params![self.collection_id, id, keep],
        )?;
        self.conn.execute(
            "UPDATE provenance SET first = 0 WHERE object_id = ?1 AND peer LIKE 'partner/%'",
            [id],
        )?;
        self.foreign_of(id).map(Some)
    }

    fn holds_id(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.query_row(ID_HELD, [id], |r| r.get(0))?)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn advance_package_in(
        &mut self,
        producer: &str,
        partner: &str,
        link: &PackageLink,
    ) -> Result<bool> {
        let now = now_ns();
        if self.conn.execute(
            "INSERT INTO package_imports (node, partner, sequence, digest, imported_ns)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![producer, partner, link.sequence, link.digest, now],
        )? != 1
        {
            return Ok(false);
        }
        self.conn.execute(
            "INSERT INTO package_chains (direction, node, partner, sequence, digest, updated_ns)
             VALUES ('in', ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (direction, node, partner) DO UPDATE SET
               sequence = excluded.sequence, digest = excluded.digest,
               updated_ns = excluded.updated_ns
             WHERE package_chains.sequence < excluded.sequence",
            params![producer, partner, link.sequence, link.digest, now],
        )?;
        Ok(true)
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.added {
            bump_version(&self.conn, &self.collection_id)?;
        }
        // The log first: a crash before the main file commits leaves a record of more
        // than happened, never less (and the vid floor keeps these vids from being reused).
        let names = std::mem::take(&mut self.names);
        let vids: Vec<i64> = names.keys().copied().collect();
        let logged = !self.pending.is_empty();
        self.store
            .append_pending(std::mem::take(&mut self.pending), Some(names))?;
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        if logged && !vids.is_empty() {
            self.store.forget_batch_names(&vids);
        }
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
        // Foreign versions not read count for nothing, not even as the newest version.
        let writer = filter.foreign.writer();
        // The collection is the first argument of every query (`Query::new`).
        let collection = self.args[0].clone();
        // The versions this reader counts, over the entries aliased `alias`, with the
        // arguments in the order of their `?`: the same rule for the entries returned, the
        // newest spec version and the first or last version. For a writer's own view, the
        // node's versions of what it wrote over are shadowed.
        let visible = |alias: &str| {
            let mut c = String::new();
            let mut args = Vec::new();
            if let Some(w) = writer {
                c.push_str(&crate::not_foreign(alias, "?"));
                args.push(SqlValue::Text(w.to_owned()));
            }
            if let ForeignVersions::Of(w) = &filter.foreign {
                c.push_str(&crate::not_shadowed(alias, "?", "?"));
                args.push(collection.clone());
                args.push(SqlValue::Text(w.clone()));
            }
            (c, args)
        };
        let (c, args) = visible("e");
        self.sql.push_str(&c);
        self.args.extend(args);
        let (mut same_spec, mut same_spec_args) = if filter.spec_versions.is_empty() {
            // Without match[spec_version], only the newest spec version held of each object
            // (of the versions read: one nobody else reads never hides the others).
            let (c, args) = visible("s");
            self.sql.push_str(&format!(
                " AND e.spec_version = (SELECT MAX(s.spec_version) FROM collection_entries s
                   WHERE s.collection_id = e.collection_id AND s.id = e.id{c})"
            ));
            self.args.extend(args);
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
        let (c, args) = visible("x");
        same_spec.push_str(&c);
        same_spec_args.extend(args);
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

impl SqliteStore {
    /// Removes the entries of `id` that `q` selects (in one transaction), the version rows
    /// no collection holds any more, and keeps the names of removed rows for the audit log.
    fn delete_entries(&self, collection_id: &str, id: &str, q: Query) -> Result<usize> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The names of this id's versions, kept for the audit log if their rows go.
        let names = version_names(&tx, &of_id(), &[SqlValue::Text(id.to_owned())])?;
        let n = tx.execute(
            &format!(
                "DELETE FROM collection_entries WHERE seq IN
                 (SELECT e.seq FROM collection_entries e WHERE {})",
                q.sql
            ),
            rusqlite::params_from_iter(q.args.iter()),
        )?;
        tx.execute(
            &format!(
                "DELETE FROM object_versions WHERE vid IN {VIDS_OF_ID}
                 AND NOT EXISTS (SELECT 1 FROM collection_entries e
                                 WHERE e.vid = object_versions.vid)"
            ),
            [id],
        )?;
        if n > 0 {
            bump_version(&tx, collection_id)?;
        }
        for name in names {
            tx.execute(
                "INSERT OR IGNORE INTO audit_version_names (vid, object_id, version, modified)
                 SELECT ?1, ?2, ?3, ?4
                 WHERE NOT EXISTS (SELECT 1 FROM object_versions WHERE vid = ?1)",
                params![name.vid, name.object_id, name.version, name.modified],
            )?;
        }
        tx.commit()?;
        Ok(n)
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
            "SELECT e.id, e.date_added_ns, e.version_key, v.modified, e.spec_version, e.type, e.seq, e.vid, {}
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
                    vid: r.get(7)?,
                    body: r.get(8)?,
                })
            })?;
            let mut entries = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let more = entries.len() > limit;
            entries.truncate(limit);
            Ok(Page { entries, more })
        })
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
        q.sql.push_str(&format!(
            " AND e.vid IN ({})",
            vec!["?"; vids.len()].join(",")
        ));
        q.args.extend(vids.iter().map(|v| SqlValue::Integer(*v)));
        self.delete_entries(collection_id, id, q)
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

    fn package_chain(
        &self,
        direction: PackageDirection,
        node: &str,
        partner: &str,
    ) -> Result<Option<PackageLink>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT sequence, digest FROM package_chains
                 WHERE direction = ?1 AND node = ?2 AND partner = ?3",
            )?
            .query_row(params![direction.as_str(), node, partner], |r| {
                Ok(PackageLink {
                    sequence: r.get(0)?,
                    digest: r.get(1)?,
                })
            })
            .optional()?)
        })
    }

    fn package_cursor(&self, partner: &str, collection_id: &str) -> Result<Option<Cursor>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(
                "SELECT date_added_ns, object_id, version_key, seq FROM package_cursors
                 WHERE partner = ?1 AND collection_id = ?2",
            )?
            .query_row(params![partner, collection_id], |r| {
                Ok(Cursor {
                    date_added_ns: r.get(0)?,
                    id: r.get(1)?,
                    version_key: r.get(2)?,
                    seq: r.get(3)?,
                })
            })
            .optional()?)
        })
    }

    fn reserve_package_out(&self, partner: &str) -> Result<(i64, Option<PackageLink>)> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last = tx
            .prepare_cached(
                "SELECT sequence, digest FROM package_chains
                 WHERE direction = 'out' AND node = '' AND partner = ?1",
            )?
            .query_row(params![partner], |r| {
                Ok(PackageLink {
                    sequence: r.get(0)?,
                    digest: r.get(1)?,
                })
            })
            .optional()?;
        let recorded = last.as_ref().map_or(0, |l| l.sequence);
        let sequence: i64 = tx.query_row(
            "INSERT INTO package_reservations (partner, sequence, updated_ns)
             VALUES (?1, ?2 + 1, ?3)
             ON CONFLICT (partner) DO UPDATE SET
               sequence = MAX(package_reservations.sequence, ?2) + 1,
               updated_ns = excluded.updated_ns
             RETURNING sequence",
            params![partner, recorded, now_ns()],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok((sequence, last))
    }

    fn package_imports(
        &self,
        producer: &str,
        partner: &str,
        sequence: i64,
        digest: &str,
    ) -> Result<Vec<PackageLink>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT sequence, digest FROM package_imports
                 WHERE node = ?1 AND partner = ?2 AND (sequence = ?3 OR digest = ?4)
                 ORDER BY sequence",
            )?;
            let rows = st.query_map(params![producer, partner, sequence, digest], |r| {
                Ok(PackageLink {
                    sequence: r.get(0)?,
                    digest: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
        let mut conn = self.writer();
        let tx = conn.transaction()?;
        if !advance_chain(&tx, PackageDirection::Out, "", partner, previous, link)? {
            return Ok(false);
        }
        if let Some(c) = cursor {
            tx.execute(
                "INSERT INTO package_cursors
                   (partner, collection_id, date_added_ns, object_id, version_key, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (partner, collection_id) DO UPDATE SET
                   date_added_ns = excluded.date_added_ns, object_id = excluded.object_id,
                   version_key = excluded.version_key, seq = excluded.seq",
                params![
                    partner,
                    collection_id,
                    c.date_added_ns,
                    c.id,
                    c.version_key,
                    c.seq
                ],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn partners(&self) -> Result<Vec<Partner>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached("SELECT record FROM partners ORDER BY name")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|r| Partner::from_record(&r?)).collect()
        })
    }

    fn partner_by_key_id(&self, key_id: &str) -> Result<Option<Partner>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached("SELECT record FROM partners WHERE key_id = ?1")?;
            st.query_row([key_id], |r| r.get::<_, String>(0))
                .optional()?
                .map(|r| Partner::from_record(&r))
                .transpose()
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

    fn remove_partner_with(&self, name: &str, settings: &[SettingChange]) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The settings before the partner's row, in the order `decide_approval` takes them.
        // On an error the transaction is dropped uncommitted: the partner stays.
        apply_setting_changes(&tx, settings, "removed")?;
        let removed = tx.execute("DELETE FROM partners WHERE name = ?1", [name])? == 1;
        if !removed {
            return Ok(false);
        }
        // A partner added later under the same name is another organisation: it creates
        // nothing the removed one created (issue 18).
        tx.execute(
            "UPDATE provenance SET first = 0 WHERE peer = ?1",
            [crate::partner_provenance(name)],
        )?;
        // Its foreign versions are read by nobody (a name with '/' added names no partner).
        tx.execute(
            "UPDATE foreign_versions SET writer = writer || '/removed' WHERE writer = ?1",
            [crate::partner_provenance(name)],
        )?;
        tx.commit()?;
        Ok(removed)
    }

    fn admit_partner(&self, partner: &Partner, settings: &[(String, String)]) -> Result<Admission> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let admitted = admit(&tx, partner, settings)?;
        if admitted == Admission::Admitted {
            tx.commit()?;
        }
        Ok(admitted)
    }

    fn put_invitation(&self, i: &InvitationRecord) -> Result<()> {
        self.writer().execute(
            "INSERT INTO invitations (id, partner, secret_sha256, created_ns, expires_ns,
                 used_ns, used_by, offer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                i.id,
                i.partner,
                i.secret_sha256,
                i.created_ns,
                i.expires_ns,
                i.used_ns,
                i.used_by,
                i.offer
            ],
        )?;
        Ok(())
    }

    fn invitation(&self, id: &str) -> Result<Option<InvitationRecord>> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached(&format!("{INVITATION_COLUMNS} WHERE id = ?1"))?
                    .query_row([id], invitation_row)
                    .optional()?,
            )
        })
    }

    fn invitations(&self) -> Result<Vec<InvitationRecord>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "{INVITATION_COLUMNS} ORDER BY created_ns DESC, id"
            ))?;
            let rows = st.query_map([], invitation_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn consume_invitation(
        &self,
        id: &str,
        use_: &InvitationUse,
        partner: &Partner,
        settings: &[(String, String)],
    ) -> Result<Admission> {
        let mut conn = self.writer();
        // IMMEDIATE: the write lock is taken before the read, so no other process reads
        // the row as unused between this read and the update (one writer at a time).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(Option<i64>, i64)> = tx
            .query_row(
                "SELECT used_ns, expires_ns FROM invitations WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => return Ok(Admission::Unknown),
            Some((Some(_), _)) => return Ok(Admission::Used),
            Some((None, expires)) if expires <= use_.now_ns => return Ok(Admission::Expired),
            Some(_) => {}
        }
        let admitted = admit(&tx, partner, settings)?;
        if admitted != Admission::Admitted {
            return Ok(admitted);
        }
        if tx.execute(
            "UPDATE invitations SET used_ns = ?1, used_by = ?2, request_sha256 = ?3, answer = ?4
             WHERE id = ?5 AND used_ns IS NULL",
            params![
                use_.now_ns,
                use_.used_by,
                use_.request_sha256,
                use_.answer,
                id
            ],
        )? != 1
        {
            return Ok(Admission::Used);
        }
        tx.commit()?;
        Ok(Admission::Admitted)
    }

    fn users(&self) -> Result<Vec<User>> {
        self.with_reader(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
            let rows = st.query_map([], user_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>> {
        self.with_reader(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"))?;
            Ok(st.query_row([name], user_row).optional()?)
        })
    }

    fn user_by_token_id(&self, token_id: &str) -> Result<Option<User>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE token_id = ?1"
            ))?;
            Ok(st.query_row([token_id], user_row).optional()?)
        })
    }

    fn add_user(&self, user: &User) -> Result<bool> {
        let added = self.writer().execute(
            "INSERT INTO users (name, role, token_id, password_hash, token_hash, totp_secret, created_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name) DO NOTHING",
            params![
                user.name,
                user.role,
                user.token_id,
                user.password_hash,
                user.token_hash,
                user.totp_secret,
                user.created_ns
            ],
        )?;
        Ok(added == 1)
    }

    fn reset_user(
        &self,
        name: &str,
        token_id: &str,
        password_hash: &str,
        token_hash: &str,
        totp_secret: Option<&str>,
    ) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE users SET token_id = ?2, password_hash = ?3, token_hash = ?4, totp_secret = ?5,
             totp_last_step = 0
             WHERE name = ?1",
            params![name, token_id, password_hash, token_hash, totp_secret],
        )? == 1;
        tx.execute(
            "DELETE FROM web_sessions WHERE kind = 'user' AND subject = ?1",
            [name],
        )?;
        tx.commit()?;
        Ok(changed)
    }

    fn remove_user(&self, name: &str) -> Result<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let removed = tx.execute("DELETE FROM users WHERE name = ?1", [name])? == 1;
        tx.execute(
            "DELETE FROM web_sessions WHERE kind = 'user' AND subject = ?1",
            [name],
        )?;
        tx.commit()?;
        Ok(removed)
    }

    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool> {
        let changed = self.writer().execute(
            "UPDATE users SET totp_last_step = ?2 WHERE name = ?1 AND totp_last_step < ?2",
            params![name, step],
        )?;
        Ok(changed == 1)
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
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM web_sessions WHERE last_seen_ns <= ?1 OR created_ns <= ?2",
            params![
                clock.now_ns.saturating_sub(clock.idle_ns),
                clock.now_ns.saturating_sub(clock.absolute_ns)
            ],
        )?;
        tx.execute(
            "INSERT INTO web_sessions (id_sha256, kind, subject, created_ns, last_seen_ns)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                session.id_sha256,
                kind,
                subject,
                session.created_ns,
                session.last_seen_ns
            ],
        )?;
        let (pending, names) = named_transfers(&tx, audit, &Default::default(), None)?;
        self.append_pending(pending, Some(names))?;
        tx.commit()?;
        Ok(())
    }

    fn begin_oidc_login(
        &self,
        login: &OidcLogin,
        now_ns: i64,
        quota: OidcQuota,
    ) -> Result<OidcBegin> {
        let mut conn = self.writer();
        // IMMEDIATE: the count and the insert under the file's write lock, so that two
        // processes cannot both take the last place.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM oidc_logins WHERE expires_ns <= ?1", [now_ns])?;
        let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64> {
            let n: i64 = tx.query_row(sql, p, |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        if count(
            "SELECT count(*) FROM oidc_logins WHERE source = ?1",
            &[&login.source],
        )? >= quota.per_source
        {
            return Ok(OidcBegin::SourceFull);
        }
        if count("SELECT count(*) FROM oidc_logins", &[])? >= quota.total {
            return Ok(OidcBegin::TableFull);
        }
        tx.execute(
            "INSERT INTO oidc_logins (state_sha256, nonce, code_verifier, next_path, source,
                 created_ns, expires_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                login.state_sha256,
                login.nonce,
                login.code_verifier,
                login.next_path,
                login.source,
                login.created_ns,
                login.expires_ns
            ],
        )?;
        tx.commit()?;
        Ok(OidcBegin::Stored)
    }

    fn take_oidc_login(&self, state_sha256: &str, now_ns: i64) -> Result<Option<OidcLogin>> {
        // One statement: the row is deleted by the callback that reads it, and only by one.
        let found = self
            .writer()
            .query_row(
                "DELETE FROM oidc_logins WHERE state_sha256 = ?1
                 RETURNING state_sha256, nonce, code_verifier, next_path, source, created_ns,
                     expires_ns",
                [state_sha256],
                |r| {
                    Ok(OidcLogin {
                        state_sha256: r.get(0)?,
                        nonce: r.get(1)?,
                        code_verifier: r.get(2)?,
                        next_path: r.get(3)?,
                        source: r.get(4)?,
                        created_ns: r.get(5)?,
                        expires_ns: r.get(6)?,
                    })
                },
            )
            .optional()?;
        Ok(found.filter(|l| l.expires_ns > now_ns))
    }

    fn touch_session(&self, id_sha256: &str, clock: &SessionClock) -> Result<Option<WebSession>> {
        let found = self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT kind, subject, created_ns, last_seen_ns FROM web_sessions
                 WHERE id_sha256 = ?1",
            )?;
            Ok(st
                .query_row([id_sha256], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?)
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
            self.writer().execute(
                "UPDATE web_sessions SET last_seen_ns = max(last_seen_ns, ?2) WHERE id_sha256 = ?1",
                params![id_sha256, clock.now_ns],
            )?;
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
        self.writer()
            .execute("DELETE FROM web_sessions WHERE id_sha256 = ?1", [id_sha256])?;
        Ok(())
    }

    fn end_sessions_of(&self, subject: &SessionSubject) -> Result<usize> {
        let (kind, subject) = subject.columns();
        Ok(self.writer().execute(
            "DELETE FROM web_sessions WHERE kind = ?1 AND subject = ?2",
            [kind, subject],
        )?)
    }

    fn update_partner(&self, was: &Partner, now: &Partner, audit: &[AuditRecord]) -> Result<bool> {
        if was.name != now.name {
            return Ok(false);
        }
        let mut conn = self.writer();
        // IMMEDIATE: the file's write lock before the read, so that the comparison and the
        // write see the same record, and the audit chain cannot fork.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT record FROM partners WHERE name = ?1",
                [&was.name],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(text) if Partner::from_record(&text)? == *was => {}
            _ => return Ok(false),
        }
        tx.execute(
            "UPDATE partners SET key_id = ?2, record = ?3 WHERE name = ?1",
            params![now.name, now.key_id, now.to_record()],
        )?;
        let (pending, names) = named_transfers(&tx, audit, &Default::default(), None)?;
        self.append_pending(pending, Some(names))?;
        tx.commit()?;
        Ok(true)
    }

    fn last_activity(&self, partner: &str) -> Result<Option<i64>> {
        self.with_reader(|c| {
            Ok(
                c.prepare_cached("SELECT MAX(time_ns) FROM audit_entries WHERE partner = ?1")?
                    .query_row([partner], |r| r.get::<_, Option<i64>>(0))?,
            )
        })
    }

    fn add_approval(&self, a: &Approval) -> Result<()> {
        self.writer().execute(
            "INSERT INTO approvals
                 (id, kind, target, change, summary, requested_by, requested_ns, request)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                a.id,
                a.kind,
                a.target,
                a.change,
                a.summary,
                a.requested_by,
                a.requested_ns,
                a.request
            ],
        )?;
        Ok(())
    }

    fn approvals(&self, status: Option<&str>, limit: usize) -> Result<Vec<Approval>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ?1 IS NULL OR status = ?1
                 ORDER BY requested_ns, id LIMIT ?2"
            ))?;
            let rows = st.query_map(params![status, limit], approval_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn approval(&self, id: &str) -> Result<Option<Approval>> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"
            ))?
            .query_row([id], approval_row)
            .optional()?)
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
        let mut conn = self.writer();
        // IMMEDIATE: the write lock first, so that two processes deciding at once are
        // serialised and the second finds it decided.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE approvals SET status = ?2, decided_by = ?3, decided_ns = ?4, reason = ?5
             WHERE id = ?1 AND status = 'pending'",
            params![
                id,
                if d.approve { "approved" } else { "rejected" },
                d.by,
                d.at_ns,
                d.reason
            ],
        )?;
        if changed != 1 {
            return Ok(false);
        }
        if d.approve {
            // On an error the transaction is dropped uncommitted: the approval stays pending.
            apply_setting_changes(&tx, settings, "applied")?;
            for p in partners {
                // The partner record as the change was computed from it, or nothing.
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT record FROM partners WHERE name = ?1",
                        [&p.was.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                let same = match &stored {
                    Some(text) => Partner::from_record(text)? == p.was,
                    None => false,
                };
                if !same || p.was.name != p.now.name {
                    // Dropped uncommitted: the approval stays pending.
                    return Err(StoreError::Superseded(format!(
                        "partner {} changed meanwhile; nothing was applied",
                        p.was.name
                    )));
                }
                tx.execute(
                    "UPDATE partners SET key_id = ?2, record = ?3 WHERE name = ?1",
                    params![p.now.name, p.now.key_id, p.now.to_record()],
                )?;
            }
            let (pending, names) = named_transfers(&tx, audit, &Default::default(), None)?;
            self.append_pending(pending, Some(names))?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn append_named_transfer(
        &self,
        records: &[AuditRecord],
        names: &crate::audit::RowNames,
        digest: Option<Hash>,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pending = group_records(records, digest);
        let unnamed = crate::audit::unnamed_vids(&pending, names);
        let held = if unnamed.is_empty() {
            crate::audit::NameKeys::default()
        } else {
            self.with_reader(|c| name_keys(c, &unnamed))?
        };
        crate::audit::name_transfers(&mut pending, names, &held);
        // Committed (atomic, in the chain, visible, safe from a crash of the process) before
        // the caller lets anything leave, but without waiting for fsync: a read must not
        // cost a disk flush (issue 17). `flush` (every second in `serve`) or the next durable
        // append makes it durable against power loss. Only the log's file changes, so the
        // readers keep their page caches of the main file.
        self.append_pending(pending, None)
    }

    fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<TransferEntry>> {
        if q.vids.is_empty() {
            return self.select_entries(q, &[]);
        }
        // The posting blocks give candidates (entries naming any vid of the blocks); an
        // entry is kept when its items name one of `q.vids`, or cannot be decoded (damage
        // that `audit verify` reports, shown rather than hidden). Candidates are read in
        // `seq` order until `limit` are kept or none are left.
        let buckets = posting_buckets(&q.vids);
        let mut out = Vec::new();
        let mut cursor = q.clone();
        while out.len() < q.limit {
            cursor.limit = (q.limit - out.len()).max(64);
            let page = self.select_entries(&cursor, &buckets)?;
            let (Some(last), exhausted) = (page.last().map(|e| e.seq), page.len() < cursor.limit)
            else {
                break;
            };
            out.extend(page.into_iter().filter(|e| {
                e.decoded()
                    .is_none_or(|items| items.iter().any(|i| q.vids.contains(&i.vid)))
            }));
            if exhausted {
                break;
            }
            if q.newest_first {
                cursor.before_seq = Some(last);
            } else {
                cursor.after_seq = last;
            }
        }
        out.truncate(q.limit);
        Ok(out)
    }
    fn audit_window(&self, w: &AuditWindow) -> Result<Vec<TransferEntry>> {
        // `seq` is the rowid, which both time indexes carry: (time_ns, seq) and
        // (partner, time_ns, seq) give this order without a sort.
        let mut sql = format!(
            "SELECT {TRANSFER_COLUMNS} FROM audit_entries WHERE time_ns >= ? AND time_ns < ?"
        );
        let mut args = vec![SqlValue::Integer(w.since_ns), SqlValue::Integer(w.until_ns)];
        if let Some(p) = &w.partner {
            sql.push_str(" AND partner = ?");
            args.push(SqlValue::Text(p.clone()));
        }
        if let Some(d) = &w.direction {
            sql.push_str(" AND direction = ?");
            args.push(SqlValue::Text(d.clone()));
        }
        sql.push_str(" ORDER BY time_ns DESC, seq DESC LIMIT ?");
        args.push(SqlValue::Integer(
            i64::try_from(w.limit).unwrap_or(i64::MAX),
        ));
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), transfer_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn audit_unindexed(&self, entries: &[TransferEntry]) -> Result<Option<(i64, i64)>> {
        // Looked up in the index's own order (vid, seq), so consecutive look-ups share
        // b-tree pages; undecodable items are the chain's finding (the hash covers them).
        let mut wanted: Vec<(i64, i64)> = entries
            .iter()
            .flat_map(|e| e.vids().into_iter().map(move |v| (v, e.seq)))
            .collect();
        wanted.sort_unstable();
        self.with_reader(|c| {
            let mut st =
                c.prepare_cached("SELECT 1 FROM audit_postings WHERE bucket = ?1 AND seq = ?2")?;
            let mut first: Option<(i64, i64)> = None;
            for (vid, seq) in wanted {
                if first.is_none_or(|(s, v)| (seq, vid) < (s, v))
                    && !st.exists(params![vid >> POSTING_BUCKET_BITS, seq])?
                {
                    first = Some((seq, vid));
                }
            }
            Ok(first)
        })
    }

    fn audit_names(&self, vids: &[i64]) -> Result<Vec<VersionName>> {
        let mut out = Vec::new();
        for chunk in vids.chunks(500) {
            let list = vec!["?"; chunk.len()].join(",");
            let args: Vec<SqlValue> = chunk.iter().map(|v| SqlValue::Integer(*v)).collect();
            out.extend(
                self.with_reader(|c| version_names(c, &format!("v.vid IN ({list})"), &args))?,
            );
            out.extend(self.with_reader(|c| deleted_names(c, &format!("vid IN ({list})"), &args))?);
        }
        out.sort_by_key(|n| n.vid);
        Ok(out)
    }

    fn audit_versions_of(&self, object_id: &str) -> Result<Vec<VersionName>> {
        let args = [SqlValue::Text(object_id.to_owned())];
        let mut out = self.with_reader(|c| version_names(c, &of_id(), &args))?;
        out.extend(self.with_reader(|c| deleted_names(c, "object_id = ?1", &args))?);
        out.sort_by_key(|n| n.vid);
        Ok(out)
    }

    fn audit_head(&self) -> Result<(i64, Hash)> {
        self.with_reader(head)
    }

    fn flush(&self) -> Result<()> {
        // A passive checkpoint syncs the WAL first (synchronous = FULL on this connection):
        // the frames the writer committed without a sync are in the same file. On a
        // connection of its own, so that the writer's lock is not held through the syncs
        // (SQLite runs a passive checkpoint beside writers; issue 16 item 5: every page's
        // audit append waited for it).
        let mut flusher = self.flusher.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match flusher.as_mut() {
            Some(c) => c,
            None => {
                let c = Connection::open(&self.path)?;
                configure(&c, 0)?;
                attach(&c, &audit_path(&self.path), "audit", true)?;
                flusher.insert(c)
            }
        };
        // Both files: the log's appends are the frames committed without a sync.
        conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        conn.query_row("PRAGMA audit.wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
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
                            person: None,
                            collection: r.get(5)?,
                            object_id: r.get(6)?,
                            modified: r.get(7)?,
                            decision: r.get(8)?,
                            transformations: Vec::new(),
                            policy_version: r.get(10)?,
                            vid: 0,
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

    fn add_audit_checkpoint(&self, sign: &mut crate::audit::SignHead<'_>) -> Result<Checkpoint> {
        let mut conn = self.audit_writer_at(true)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last = last_checkpoint(&tx)?;
        let c = sign(last.as_ref(), head(&tx)?);
        tx.execute(
            "INSERT INTO audit_checkpoints (no, entry_seq, entry_hash, time_ns, prev, key, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                c.no,
                c.entry_seq,
                &c.entry_hash[..],
                c.time_ns,
                &c.prev[..],
                &c.key[..],
                &c.signature[..]
            ],
        )?;
        tx.commit()?;
        Ok(c)
    }

    fn audit_checkpoints(&self, after_no: i64, limit: usize) -> Result<Vec<Checkpoint>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE no > ?1 ORDER BY no LIMIT ?2"
            ))?;
            let rows = st.query_map(params![after_no, limit], checkpoint_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn audit_checkpoints_covering(&self, first_seq: i64, last_seq: i64) -> Result<Vec<Checkpoint>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints
                 WHERE entry_seq BETWEEN ?1 AND ?2 ORDER BY no"
            ))?;
            let rows = st.query_map(params![first_seq, last_seq], checkpoint_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn last_audit_checkpoint(&self) -> Result<Option<Checkpoint>> {
        self.with_reader(last_checkpoint)
    }

    fn audit_boundary(&self) -> Result<Option<ArchiveBoundary>> {
        self.with_reader(boundary)
    }

    fn archive_audit(&self, b: &ArchiveBoundary) -> Result<()> {
        let mut conn = self.audit_writer_at(true)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at: Option<Vec<u8>> = tx
            .query_row(
                "SELECT hash FROM audit_entries WHERE seq = ?1",
                [b.through_seq],
                |r| r.get(0),
            )
            .optional()?;
        let legacy: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        crate::audit::check_boundary(
            b,
            boundary(&tx)?.as_ref(),
            at.map(h32),
            legacy.as_ref().map(|(seq, h)| (*seq, h.as_str())),
        )?;
        tx.execute(
            "INSERT INTO audit_archives (through_seq, through_hash, checkpoint_no, time_ns, file,
             legacy_through) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                b.through_seq,
                &b.through_hash[..],
                b.checkpoint_no,
                b.time_ns,
                b.file,
                b.legacy_through
            ],
        )?;
        tx.execute("DELETE FROM audit_entries WHERE seq <= ?1", [b.through_seq])?;
        if let Some(l) = b.legacy_through {
            tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [l])?;
        }
        tx.execute(
            "DELETE FROM audit_postings WHERE seq <= ?1",
            [b.through_seq],
        )?;
        tx.commit()?;
        Ok(())
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

    fn ever_held(&self, object_id: &str) -> Result<bool> {
        self.with_reader(|c| {
            Ok(c.prepare_cached(ID_HELD)?
                .query_row([object_id], |r| r.get(0))?)
        })
    }

    fn creators(&self, object_id: &str) -> Result<Vec<String>> {
        self.with_reader(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT peer FROM provenance WHERE object_id = ?1 AND first
                 ORDER BY peer",
            )?;
            let rows = st.query_map(params![object_id], |r| r.get(0))?;
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

/// The columns of a transfer entry, in [`transfer_row`]'s order.
const TRANSFER_COLUMNS: &str = "seq, time_ns, direction, door, partner, person, collection_id, \
     policy_version, count, dictionary, items, digest, prev_hash, hash, names";

/// The columns of a checkpoint, in [`checkpoint_row`]'s order.
const CHECKPOINT_COLUMNS: &str = "no, entry_seq, entry_hash, time_ns, prev, key, signature";

/// A 32-byte BLOB; another length (a damaged row) becomes its SHA-256, which never matches.
fn h32(v: Vec<u8>) -> Hash {
    use sha2::Digest;
    v.as_slice()
        .try_into()
        .unwrap_or_else(|_| sha2::Sha256::digest(&v).into())
}

fn transfer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TransferEntry> {
    Ok(TransferEntry {
        seq: r.get(0)?,
        time_ns: r.get(1)?,
        direction: r.get(2)?,
        door: r.get(3)?,
        partner: r.get(4)?,
        person: r.get(5)?,
        collection: r.get(6)?,
        policy_version: r.get(7)?,
        count: r.get(8)?,
        dictionary: crate::audit::parse_transformations(&r.get::<_, String>(9)?),
        items: r.get(10)?,
        digest: r.get::<_, Option<Vec<u8>>>(11)?.map(h32),
        prev_hash: h32(r.get(12)?),
        hash: h32(r.get(13)?),
        names: r.get::<_, Option<Vec<u8>>>(14)?.map(h32),
    })
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    let sig: Vec<u8> = r.get(6)?;
    Ok(Checkpoint {
        no: r.get(0)?,
        entry_seq: r.get(1)?,
        entry_hash: h32(r.get(2)?),
        time_ns: r.get(3)?,
        prev: h32(r.get(4)?),
        key: h32(r.get(5)?),
        signature: sig.try_into().unwrap_or([0; 64]),
    })
}

fn last_checkpoint(c: &Connection) -> Result<Option<Checkpoint>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY no DESC LIMIT 1"
    ))?
    .query_row([], checkpoint_row)
    .optional()?)
}

fn boundary(c: &Connection) -> Result<Option<ArchiveBoundary>> {
    Ok(c.prepare_cached(
        "SELECT through_seq, through_hash, checkpoint_no, time_ns, file, legacy_through
             FROM audit_archives ORDER BY through_seq DESC LIMIT 1",
    )?
    .query_row([], |r| {
        Ok(ArchiveBoundary {
            through_seq: r.get(0)?,
            through_hash: h32(r.get(1)?),
            checkpoint_no: r.get(2)?,
            time_ns: r.get(3)?,
            file: r.get(4)?,
            legacy_through: r.get(5)?,
        })
    })
    .optional()?)
}

impl SqliteStore {
    /// The entries `q` selects, with `buckets` (not empty) standing for `q.vids`: those with a
    /// posting in one of the blocks ([`POSTING_BUCKET_BITS`]).
    fn select_entries(&self, q: &AuditQuery, buckets: &[i64]) -> Result<Vec<TransferEntry>> {
        let mut sql = format!("SELECT {TRANSFER_COLUMNS} FROM audit_entries WHERE seq > ?");
        let mut args = vec![SqlValue::Integer(q.after_seq)];
        if let Some(b) = q.before_seq {
            sql.push_str(" AND seq < ?");
            args.push(SqlValue::Integer(b));
        }
        if let Some(p) = &q.partner {
            sql.push_str(" AND partner = ?");
            args.push(SqlValue::Text(p.clone()));
        }
        if !buckets.is_empty() {
            sql.push_str(" AND seq IN (SELECT seq FROM audit_postings WHERE bucket IN (");
            sql.push_str(&vec!["?"; buckets.len()].join(","));
            sql.push_str("))");
            args.extend(buckets.iter().map(|b| SqlValue::Integer(*b)));
        }
        sql.push_str(if q.newest_first {
            " ORDER BY seq DESC LIMIT ?"
        } else {
            " ORDER BY seq LIMIT ?"
        });
        args.push(SqlValue::Integer(
            i64::try_from(q.limit).unwrap_or(i64::MAX),
        ));
        self.with_reader(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args.iter()), transfer_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

/// The head the next transfer links to (see [`Store::audit_head`]).
fn head(c: &Connection) -> Result<(i64, Hash)> {
    let last: Option<(i64, Vec<u8>)> = c
        .prepare_cached("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((seq, hash)) = last {
        return Ok((seq, h32(hash)));
    }
    if let Some(b) = boundary(c)? {
        return Ok((b.through_seq, b.through_hash));
    }
    let legacy: Option<(i64, String)> = c
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(legacy.map_or((0, GENESIS), |(seq, h)| crate::audit::legacy_head(seq, &h)))
}

/// Names of held version rows that pass `condition` (over `object_versions v`).
fn version_names(c: &Connection, condition: &str, args: &[SqlValue]) -> Result<Vec<VersionName>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT v.vid, v.id, v.modified,
                (SELECT MIN(e.date_added_ns) FROM collection_entries e WHERE e.vid = v.vid)
         FROM object_versions v WHERE {condition}"
    ))?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let modified: Option<String> = r.get(2)?;
        Ok(VersionName {
            vid: r.get(0)?,
            object_id: r.get(1)?,
            version: crate::audit::version_text(modified.clone(), r.get(3)?),
            deleted: false,
            modified,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Names kept of deleted version rows that pass `condition`.
fn deleted_names(c: &Connection, condition: &str, args: &[SqlValue]) -> Result<Vec<VersionName>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT vid, object_id, version, modified FROM audit_version_names WHERE {condition}"
    ))?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        Ok(VersionName {
            vid: r.get(0)?,
            object_id: r.get(1)?,
            // Shown as its `modified` when it has one (what the names digest binds).
            version: r.get::<_, Option<String>>(3)?.map_or(r.get(2), Ok)?,
            deleted: true,
            modified: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The names of version rows `vids` (object id, `modified`), held or kept at deletion, by
/// point look-ups in the caller's transaction (a page's rows are usually consecutive, so
/// the look-ups share b-tree pages).
fn name_keys(conn: &Connection, vids: &[i64]) -> Result<crate::audit::NameKeys> {
    let mut held =
        conn.prepare_cached("SELECT id, modified FROM object_versions WHERE vid = ?1")?;
    let mut kept =
        conn.prepare_cached("SELECT object_id, modified FROM audit_version_names WHERE vid = ?1")?;
    let mut out = crate::audit::NameKeys::with_capacity(vids.len());
    for &vid in vids {
        let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        let name = match held.query_row([vid], row).optional()? {
            Some(n) => Some(n),
            None => kept.query_row([vid], row).optional()?,
        };
        if let Some(n) = name {
            out.insert(vid, n);
        }
    }
    Ok(out)
}

/// Sets each of `changes` in the caller's transaction, provided it still holds its
/// `expected` value. Errors: [`StoreError::Superseded`] naming the first that does not
/// ("…; nothing was {done}"): the caller drops the transaction.
fn apply_setting_changes(conn: &Connection, changes: &[SettingChange], done: &str) -> Result<()> {
    for s in changes {
        let now: Option<String> = conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [&s.key], |r| {
                r.get(0)
            })
            .optional()?;
        if now != s.expected {
            return Err(StoreError::Superseded(format!(
                "setting {} changed meanwhile; nothing was {done}",
                s.key
            )));
        }
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![s.key, s.value],
        )?;
    }
    Ok(())
}

/// The columns of an [`Approval`], in the order [`approval_row`] reads them.
const APPROVAL_COLUMNS: &str = "id, kind, target, change, summary, requested_by, requested_ns, \
     status, decided_by, decided_ns, reason, request";

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: r.get(0)?,
        kind: r.get(1)?,
        target: r.get(2)?,
        change: r.get(3)?,
        summary: r.get(4)?,
        requested_by: r.get(5)?,
        requested_ns: r.get(6)?,
        status: r.get(7)?,
        decided_by: r.get(8)?,
        decided_ns: r.get(9)?,
        reason: r.get(10)?,
        request: r.get(11)?,
    })
}

/// The transfers of `records` (`digest` on each), named, and the names looked up: version
/// rows not in `given` are looked up on `conn`, which sees the main file as the caller's
/// transaction does (a write batch names the rows it has just inserted).
fn named_transfers(
    conn: &Connection,
    records: &[AuditRecord],
    given: &crate::audit::RowNames,
    digest: Option<Hash>,
) -> Result<(Vec<PendingTransfer>, NameKeys)> {
    if records.is_empty() {
        return Ok((Vec::new(), NameKeys::default()));
    }
    let mut pending = group_records(records, digest);
    let held = name_keys(conn, &crate::audit::unnamed_vids(&pending, given))?;
    crate::audit::name_transfers(&mut pending, given, &held);
    Ok((pending, held))
}

/// Writes chained transfers and their postings, in the caller's transaction of the log's file.
fn write_transfers(conn: &Connection, pending: &[PendingTransfer]) -> Result<()> {
    let mut st = conn.prepare_cached(&format!(
        "INSERT INTO audit_entries ({TRANSFER_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?;
    let mut post =
        conn.prepare_cached("INSERT OR IGNORE INTO audit_postings (bucket, seq) VALUES (?1, ?2)")?;
    for p in pending {
        let e = &p.entry;
        st.execute(params![
            e.seq,
            e.time_ns,
            e.direction,
            e.door,
            e.partner,
            e.person,
            e.collection,
            e.policy_version,
            e.count,
            serde_json::to_string(&e.dictionary).unwrap_or_default(),
            e.items,
            e.digest.as_ref().map(|d| &d[..]),
            &e.prev_hash[..],
            &e.hash[..],
            e.names.as_ref().map(|d| &d[..])
        ])?;
        for b in posting_buckets(&p.vids) {
            post.execute(params![b, e.seq])?;
        }
    }
    Ok(())
}

/// Appends legacy per-object rows (schema 3): what tests use to make an old-format log.
#[doc(hidden)]
pub fn insert_legacy_audit(conn: &Connection, records: &[AuditRecord]) -> Result<()> {
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

/// The columns of [`InvitationRecord`], in [`invitation_row`]'s order.
const INVITATION_COLUMNS: &str = "SELECT id, partner, secret_sha256, created_ns, expires_ns, \
     used_ns, used_by, offer, request_sha256, answer FROM invitations";

fn invitation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvitationRecord> {
    Ok(InvitationRecord {
        id: r.get(0)?,
        partner: r.get(1)?,
        secret_sha256: r.get(2)?,
        created_ns: r.get(3)?,
        expires_ns: r.get(4)?,
        used_ns: r.get(5)?,
        used_by: r.get(6)?,
        offer: r.get(7)?,
        request_sha256: r.get(8)?,
        answer: r.get(9)?,
    })
}

/// Inserts `partner` and `settings` in `tx` unless one of them exists ([`Admission`]); the
/// caller commits only on [`Admission::Admitted`].
fn admit(
    tx: &rusqlite::Transaction<'_>,
    partner: &Partner,
    settings: &[(String, String)],
) -> Result<Admission> {
    if tx.execute(
        "INSERT INTO partners (name, key_id, record) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![partner.name, partner.key_id, partner.to_record()],
    )? != 1
    {
        return Ok(Admission::NameTaken(format!("partner {:?}", partner.name)));
    }
    for (key, value) in settings {
        // An empty value is a removed record (a removed peer): it may be taken again.
        if tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE settings.value = ''",
            params![key, value],
        )? != 1
        {
            return Ok(Admission::NameTaken(format!("setting {key:?}")));
        }
    }
    Ok(Admission::Admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: a partner's last activity is one search of the `(partner, time_ns)` index,
    /// not a scan of the log.
    #[test]
    fn last_activity_is_one_index_search() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        let plan: Vec<String> = store
            .with_reader(|c| {
                let mut st = c.prepare(
                    "EXPLAIN QUERY PLAN SELECT MAX(time_ns) FROM audit_entries WHERE partner = ?1",
                )?;
                let rows = st.query_map(["bsi"], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(
            plan[0].starts_with(
                "SEARCH audit_entries USING COVERING INDEX audit_entries_partner_time"
            ),
            "{plan:?}"
        );
    }

    /// The look-ups of an object's versions by id search an index: a scan of
    /// `object_versions` per imported object made a 1.5-million-object package import
    /// quadratic (issue 22).
    #[test]
    fn by_id_is_a_look_up_not_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        let names = format!("SELECT v.vid FROM object_versions v WHERE {}", of_id());
        let delete = format!("DELETE FROM object_versions WHERE vid IN {VIDS_OF_ID}");
        for sql in [ID_HELD, &names, &delete] {
            let plan: Vec<String> = store
                .with_reader(|c| {
                    let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = st.query_map(["x"], |r| r.get::<_, String>(3))?;
                    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
                })
                .unwrap();
            assert!(
                plan.iter().any(|p| p.starts_with("SEARCH object_versions")),
                "{plan:?}"
            );
            assert!(
                plan.iter()
                    .all(|p| !p.starts_with("SCAN") || p == "SCAN CONSTANT ROW"),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Issue 16, item 5: `flush` checkpoints the WAL on a connection of its own, without the
    /// writer's lock (held here by the test, as a long write would hold it), and leaves no
    /// committed frame out of the database file.
    #[test]
    fn flush_checkpoints_without_the_writer_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite")).unwrap();
        let record = AuditRecord {
            direction: "egress".into(),
            door: "taxii-objects".into(),
            partner: "p".into(),
            person: None,
            collection: "c".into(),
            object_id: "indicator--00000000-0000-4000-8000-000000000000".into(),
            modified: "2024-01-01T00:00:00.000Z".into(),
            decision: "sent".into(),
            transformations: Vec::new(),
            policy_version: "v".into(),
            vid: 0,
        };
        store.append_transfer(&[record], None).unwrap();
        let file = dir.path().join("t.sqlite");
        let before = std::fs::metadata(&file).unwrap().len();
        {
            let _writer = store.writer();
            store.flush().unwrap();
        }
        // The schema and the entry, in the WAL until now, are in the database file.
        let after = std::fs::metadata(&file).unwrap().len();
        assert!(after > before, "{before} -> {after} bytes");
    }

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
