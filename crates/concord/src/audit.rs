//! `concord audit verify|show|checkpoint|archive` and `concord node key`: the audit log of
//! every egress and ingress (issue 5, item 7; issue 17: one entry per transfer, signed
//! checkpoints, sealed archives).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use concord_store::audit::{self, ArchiveSummary, Checkpoint, VerifyReport};
use concord_store::node_key::{NODE_KEY_FILE, NodeKey, hex, unhex32};
use concord_store::{AuditQuery, Store, Timestamp};

use crate::DataDirArg;

/// Entries read from the store at once.
const PAGE: usize = 1_000;

/// The setting holding the node's public key (hex), for readers without the key file (the
/// web UI).
pub const PUBLIC_KEY_SETTING: &str = "node.public_key";

/// `concord audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the log: exit 0 when intact, 1 naming the first edited, deleted or reordered
    /// entry, forged checkpoint or rewritten stretch. Incremental: from the last verified
    /// checkpoint, only what is new.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// Check everything: the legacy log, every checkpoint, every entry.
        #[arg(long)]
        full: bool,
        /// Check an archive file offline instead (no data directory needed).
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// The node's public key (hex, from `concord node key`): checkpoints and archives
        /// signed by another key are forged. Default: the data directory's node key.
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show what crossed the doors, one line per object version, oldest first: the newest
    /// `--limit`, of one object (`--object`), one partner (`--partner`) or both.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// Only the entries of this partner (`admin`, `operator` for the node's own).
        #[arg(long, value_name = "P")]
        partner: Option<String>,
        /// Only this object id (every version of it).
        #[arg(long, value_name = "ID")]
        object: Option<String>,
        /// How many object versions (lines) at most.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Print one JSON document (an array of object versions) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint of the log's head now with the node key.
    Checkpoint {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Seal the database's archive boundary with the node key from the archive file that
    /// took its entries: for an archive made before boundaries were sealed, which `verify`
    /// reports as `unarchived` until then. The file must verify with the node key and end
    /// exactly where the boundary does.
    Vouch {
        #[command(flatten)]
        data: DataDirArg,
        /// The archive file the boundary names.
        #[arg(long, value_name = "FILE")]
        archive: PathBuf,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Move the entries before a date (default: older than `[audit] retention_days`) to a
    /// sealed archive file, then remove them from the database; the chain after them still
    /// verifies from the boundary the database keeps.
    Archive {
        #[command(flatten)]
        data: DataDirArg,
        /// Archive entries appended before this instant (RFC 3339, e.g. 2025-01-01T00:00:00Z).
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
        /// The archive file to write (must not exist).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `concord node …`.
#[derive(Subcommand)]
pub enum NodeCommand {
    /// Print the node's public key (Ed25519, hex), making the key on first use: what
    /// auditors verify checkpoints and archives with, and what partners verify this node's
    /// transfer packages with (`import --signed-by`, `peer add --node-key`).
    Key {
        #[command(flatten)]
        data: DataDirArg,
        /// Also write the public key (64 hex digits and a newline) to this file, to hand to
        /// partners.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// The node key of a data directory, made on first use; its public half is also recorded
/// in the settings for readers without the file (the web UI).
pub fn node_key(data_dir: &Path, store: &dyn Store) -> Result<NodeKey> {
    let key = NodeKey::load_or_create(&data_dir.join(NODE_KEY_FILE))?;
    if store.setting(PUBLIC_KEY_SETTING)?.as_deref() != Some(&key.public_hex()) {
        store.set_setting(PUBLIC_KEY_SETTING, &key.public_hex())?;
    }
    Ok(key)
}

/// Runs a `node` subcommand.
pub fn run_node(command: NodeCommand) -> Result<bool> {
    let NodeCommand::Key { data, output, json } = command;
    let store = crate::open_store(&data)?;
    let key = node_key(&data.data_dir, store.as_ref())?;
    if let Some(path) = &output {
        std::fs::write(path, format!("{}\n", key.public_hex()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        out!(
            "{}",
            serde_json::json!({
                "algorithm": "ed25519",
                "public_key": key.public_hex(),
                "fingerprint": concord_sync::package::fingerprint(&key.public()),
            })
        );
    } else {
        out!("{}", key.public_hex());
    }
    Ok(true)
}

fn now_ns() -> i64 {
    Timestamp::now_micros().unix_nanos()
}

/// Runs an `audit` subcommand; `Ok(false)` (exit 1) when `verify` finds the log tampered.
pub fn run(command: AuditCommand) -> Result<bool> {
    match command {
        AuditCommand::Vouch {
            data,
            archive,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let key = node_key(&data.data_dir, store.as_ref())?;
            let text = std::fs::read_to_string(&archive)
                .with_context(|| format!("cannot read {}", archive.display()))?;
            let b = audit::vouch_boundary(store.as_ref(), &key, &text).with_context(|| {
                format!("{} does not vouch for the boundary", archive.display())
            })?;
            if json {
                out!(
                    "{}",
                    serde_json::json!({"vouched": true, "through_seq": b.through_seq,
                        "checkpoint_no": b.checkpoint_no, "file": b.file})
                );
            } else {
                eprintln!(
                    "boundary at entry {} (checkpoint {}, {}) sealed with the node key",
                    b.through_seq, b.checkpoint_no, b.file
                );
            }
            Ok(true)
        }
        AuditCommand::Verify {
            data,
            full,
            archive,
            key,
            json,
        } => {
            let trusted = match &key {
                Some(k) => Some(unhex32(k.trim()).context("--key: expected 64 hex digits")?),
                None => None,
            };
            if let Some(file) = archive {
                return verify_archive_file(&file, trusted.as_ref(), json);
            }
            let store = crate::open_store(&data)?;
            let trusted = match trusted {
                Some(t) => Some(t),
                None => {
                    let path = data.data_dir.join(NODE_KEY_FILE);
                    path.exists()
                        .then(|| NodeKey::load_or_create(&path).map(|k| k.public()))
                        .transpose()?
                }
            };
            let report = audit::verify_log(store.as_ref(), trusted.as_ref(), full)?;
            print_verify(&report, trusted.is_some(), json);
            Ok(report.error.is_none())
        }
        AuditCommand::Show {
            data,
            partner,
            object,
            limit,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let rows = show(store.as_ref(), partner.as_deref(), object.as_deref(), limit)?;
            if json {
                out!("{}", serde_json::to_string(&rows)?);
            } else {
                // One header line, then one tab-separated line per object version.
                out!(
                    "seq\ttime\tdirection\tdoor\tpartner\tperson\tobject_id\tversion\tdecision\tpolicy_version\ttransformations\tagreement"
                );
                for r in &rows {
                    let o = &r.record;
                    out!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.seq,
                        Timestamp::from_unix_nanos(r.time_ns, 6),
                        o.direction,
                        o.door,
                        o.partner,
                        o.person.as_deref().unwrap_or("-"),
                        o.object_id,
                        o.modified,
                        o.decision,
                        o.policy_version,
                        o.transformations.join("; "),
                        r.agreement.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(true)
        }
        AuditCommand::Checkpoint { data, json } => {
            let store = crate::open_store(&data)?;
            let key = node_key(&data.data_dir, store.as_ref())?;
            let c = audit::checkpoint(store.as_ref(), &key, now_ns())?;
            if json {
                out!("{}", serde_json::to_string(&c)?);
            } else {
                eprintln!(
                    "checkpoint {} signed: entry {}, hash {}",
                    c.no,
                    c.entry_seq,
                    hex(&c.entry_hash)
                );
            }
            Ok(true)
        }
        AuditCommand::Archive {
            data,
            before,
            output,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let before_ns = match before {
                Some(d) => Timestamp::parse(&d)
                    .map_err(|e| anyhow::anyhow!("--before {d:?}: {e}"))?
                    .unix_nanos(),
                None => retention_cut(&data, store.as_ref())?,
            };
            let key = node_key(&data.data_dir, store.as_ref())?;
            match archive(store.as_ref(), &key, before_ns, &output)? {
                Some(s) => {
                    if json {
                        out!("{}", serde_json::to_string(&s)?);
                    } else {
                        let legacy = if s.legacy_entries > 0 {
                            format!(" and {} legacy per-object rows", s.legacy_entries)
                        } else {
                            String::new()
                        };
                        eprintln!(
                            "archived entries {}..={} ({} entries{legacy}, {} object versions) to {}, sealed by checkpoint {}",
                            s.from_seq,
                            s.through_seq,
                            s.entries,
                            s.objects,
                            output.display(),
                            s.checkpoint_no
                        );
                    }
                }
                None => {
                    if json {
                        out!("null");
                    } else {
                        eprintln!(
                            "nothing to archive: no checkpoint covers entries before that date"
                        );
                    }
                }
            }
            Ok(true)
        }
    }
}

fn print_verify(r: &VerifyReport, key_checked: bool, json: bool) {
    let mode = if r.full { "full" } else { "incremental" };
    match &r.error {
        None => {
            if json {
                let mut doc = serde_json::to_value(r).unwrap_or_default();
                doc["intact"] = true.into();
                doc["head"] = r.head_hash.clone().into();
                doc["key_checked"] = key_checked.into();
                out!("{doc}");
            } else {
                eprintln!(
                    "audit log intact ({mode}): {} entries and {} checkpoints checked{}, head {} {}",
                    r.entries + r.legacy_entries,
                    r.checkpoints,
                    r.from_checkpoint
                        .map(|c| format!(" after checkpoint {c}"))
                        .unwrap_or_default(),
                    r.head_seq,
                    if r.head_hash.is_empty() {
                        "-"
                    } else {
                        &r.head_hash
                    }
                );
            }
        }
        Some(e) => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({
                        "intact": false, "full": r.full, "first_bad_seq": e.seq(),
                        "kind": e.kind(), "message": e.to_string(),
                    })
                );
            } else {
                eprintln!("audit log tampered: {e}");
            }
        }
    }
}

fn verify_archive_file(file: &Path, trusted: Option<&[u8; 32]>, json: bool) -> Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match audit::verify_archive(&text, trusted) {
        Ok(s) => {
            if json {
                let mut doc = serde_json::to_value(&s)?;
                doc["intact"] = true.into();
                doc["key_checked"] = trusted.is_some().into();
                out!("{doc}");
            } else {
                let legacy = if s.legacy_entries > 0 {
                    format!(
                        ", the first {} of them legacy per-object rows",
                        s.legacy_entries
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "archive intact: entries {}..={} ({} object versions{legacy}), sealed by checkpoint {}",
                    s.from_seq, s.through_seq, s.objects, s.checkpoint_no
                );
            }
            Ok(true)
        }
        Err(e) => {
            if json {
                out!(
                    "{}",
                    serde_json::json!({
                        "intact": false, "first_bad_seq": e.seq(), "kind": e.kind(),
                        "message": e.to_string(),
                    })
                );
            } else {
                eprintln!("archive tampered: {e}");
            }
            Ok(false)
        }
    }
}

/// The cut of `[audit] retention_days`: now minus the longest period that applies to a
/// partner (the default's, or its jurisdiction's).
fn retention_cut(data: &DataDirArg, store: &dyn Store) -> Result<i64> {
    let config = crate::config::Config::load(&data.data_dir)?.audit;
    let mut days = config.retention_days;
    if days == 0 {
        bail!(
            "no --before, and [audit] retention_days is 0 (keep in the database): nothing to archive"
        );
    }
    for p in store.partners()? {
        if let Some(d) = config
            .retention_days_by_jurisdiction
            .get(&p.jurisdiction.to_ascii_uppercase())
        {
            days = days.max(*d);
        }
    }
    Ok(now_ns().saturating_sub(
        i64::try_from(days)
            .unwrap_or(i64::MAX / 86_400_000_000_000)
            .saturating_mul(86_400_000_000_000),
    ))
}

/// Archives the entries appended before `before_ns`, up to the newest checkpoint that covers
/// only such entries (a checkpoint of the head is signed first when every entry is that
/// old). A legacy (schema 3) per-object log still held before any archive counts as one
/// block, as old as its newest row: the first archive takes it whole
/// ([`audit::write_archive`]), so it is old only when that row is, and transfer entries are
/// old only after it. `None`: nothing to archive.
///
/// Errors: the store's; the file exists or cannot be written; the cut checkpoint covers only
/// part of the legacy log (`StoreError::ArchiveRefused`); the file written does not verify.
pub fn archive(
    store: &dyn Store,
    key: &NodeKey,
    before_ns: i64,
    output: &Path,
) -> Result<Option<ArchiveSummary>> {
    // The last entry before the date.
    let boundary = store.audit_boundary()?;
    let start = boundary.as_ref().map_or(0, |b| b.through_seq);
    let mut last_old: Option<i64> = None;
    if boundary.is_none() {
        // The legacy log's last row: the one before the first transfer (the transfers
        // continue its seq), else the head.
        let legacy_last = match store
            .audit_entries(&AuditQuery {
                limit: 1,
                ..Default::default()
            })?
            .first()
        {
            Some(f) => f.seq - 1,
            None => store.audit_head()?.0,
        };
        if legacy_last > 0
            && let Some(row) = store.audit(legacy_last - 1, 1, None)?.first()
            && row.seq == legacy_last
        {
            if row.time_ns >= before_ns {
                return Ok(None);
            }
            last_old = Some(legacy_last);
        }
    }
    let mut after = start;
    'scan: loop {
        let page = store.audit_entries(&AuditQuery {
            after_seq: after,
            limit: PAGE,
            ..Default::default()
        })?;
        let Some(l) = page.last() else { break };
        after = l.seq;
        for e in &page {
            if e.time_ns >= before_ns {
                break 'scan;
            }
            last_old = Some(e.seq);
        }
    }
    let Some(last_old) = last_old else {
        return Ok(None);
    };
    if store.audit_head()?.0 == last_old {
        audit::checkpoint(store, key, now_ns())?;
    }
    // The newest checkpoint at or before it.
    let mut cut: Option<Checkpoint> = None;
    let mut after_no = 0;
    loop {
        let page = store.audit_checkpoints(after_no, PAGE)?;
        let Some(l) = page.last() else { break };
        after_no = l.no;
        for c in page {
            if c.entry_seq > start && c.entry_seq <= last_old {
                cut = Some(c);
            }
        }
    }
    let Some(cut) = cut else {
        return Ok(None);
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut w = std::io::BufWriter::new(&mut f);
    let (boundary, summary) = audit::write_archive(
        store,
        key,
        &cut,
        &output.display().to_string(),
        now_ns(),
        &mut w,
    )?;
    drop(w);
    f.sync_all()?;
    // Read back and checked before anything is removed.
    let text = std::fs::read_to_string(output)?;
    audit::verify_archive(&text, Some(&key.public()))
        .map_err(|e| anyhow::anyhow!("the archive just written does not verify: {e}"))?;
    store.archive_audit(&boundary)?;
    Ok(Some(summary))
}

/// The newest `limit` object versions of the log (of `partner`, of `object`), oldest first
/// ([`concord_admin::ops::show_audit`], which the admin API answers with too).
pub fn show(
    store: &dyn Store,
    partner: Option<&str>,
    object: Option<&str>,
    limit: usize,
) -> Result<Vec<concord_admin::ops::ShownRow>> {
    Ok(concord_admin::ops::show_audit(
        store, partner, object, limit,
    )?)
}
