//! `concord approval list|approve|reject` (issue 20, item 3: four-eyes release): the changes
//! that widen a cross-border release and wait for a second releaser, through the same
//! functions as the admin API and the web UI ([`concord_admin::ops::approve`], …). Who acts
//! is the CLI's named user (`--as NAME`, `[users.os]`) or the node's `operator`.

use anyhow::Result;
use clap::Subcommand;
use concord_admin::ops::{self, AdminError, ApprovalInfo};
use concord_coordination::Node;
use concord_coordination::release::Release;
use concord_store::Store;

use crate::DataDirArg;
use crate::config::Config;

/// `concord approval …`.
#[derive(Subcommand)]
pub enum ApprovalCommand {
    /// List approvals: pending ones by default, oldest first.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// pending (default), approved, rejected or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending change and apply it (as a releaser other than the one who asked).
    Approve {
        #[command(flatten)]
        data: DataDirArg,
        /// The approval's id (`approval list`).
        id: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Reject a pending change: nothing is applied.
    Reject {
        #[command(flatten)]
        data: DataDirArg,
        /// The approval's id (`approval list`).
        id: String,
        /// Why (kept with the approval).
        #[arg(long)]
        reason: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// How many approvals `list` shows at most.
const LIST_LIMIT: usize = 1000;

/// The release context of a CLI run: `[release] four_eyes` and `unnamed_persons`, the
/// node's policy and who acts (`--as`, `[users.os]`, else `operator`). What `f` gets.
pub fn with_release<T>(
    data: &DataDirArg,
    store: &dyn Store,
    f: impl FnOnce(&Release<'_>, &Node<'_>) -> T,
) -> Result<T> {
    let config = Config::load(&crate::data_dir(data).dir)?;
    let policy = crate::policy::load(data, store)?;
    let person = crate::users::actor().audit_name();
    let release = Release {
        store,
        four_eyes: config.release.four_eyes,
        unnamed_persons: config.release.unnamed_persons,
        policy: &policy,
        person: &person,
    };
    let node = Node {
        store,
        max_object_size: config.max_object_size,
        title: &config.title,
        jurisdiction: policy.config.jurisdiction.as_deref(),
        person: Some(&person),
    };
    Ok(f(&release, &node))
}

/// What a CLI command does with the outcome of a change under four-eyes release.
pub enum Settled<T> {
    /// Applied now: the command goes on to print it.
    Applied(T),
    /// Pending (printed, exit status 0) or refused by the four-eyes rule (printed, exit
    /// status 1): the command returns this status.
    Done(bool),
}

/// Settles `outcome` for the CLI: a pending approval printed ([`print_pending`]); a refusal
/// by the four-eyes rule (a widening asked by no named person) printed as an error, also as
/// JSON with `--json`; any other error returned.
pub fn settle<T>(
    outcome: std::result::Result<ops::Released<T>, AdminError>,
    json: bool,
) -> Result<Settled<T>> {
    match outcome {
        Ok(ops::Released::Applied(t)) => Ok(Settled::Applied(t)),
        Ok(ops::Released::Pending(a)) => {
            print_pending(&a, json)?;
            Ok(Settled::Done(true))
        }
        Err(e) => refusal(e, json).map(Settled::Done),
    }
}

/// A refusal by the four-eyes rule (a widening asked by no named person) printed as an
/// error, also as JSON with `--json`, for exit status 1 (`Ok(false)`); any other error
/// returned.
pub fn refusal(e: AdminError, json: bool) -> Result<bool> {
    match e {
        AdminError::Forbidden(_) => {
            eprintln!("error: {e}");
            if json {
                out!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "code": e.code()})
                );
            }
            Ok(false)
        }
        e => Err(e.into()),
    }
}

/// Prints a pending approval (a change kept for a second releaser) to stderr, or as JSON.
pub fn print_pending(a: &ApprovalInfo, json: bool) -> Result<()> {
    if json {
        out!("{}", serde_json::json!({ "pending_approval": a }));
    } else {
        eprintln!(
            "pending approval {} (four-eyes release): {}\n\
             nothing is applied until another releaser runs: concord approval approve {}",
            a.id, a.summary, a.id
        );
    }
    Ok(())
}

fn print_one(a: &ApprovalInfo, json: bool) -> Result<()> {
    if json {
        out!("{}", serde_json::to_value(a)?);
    } else {
        out!(
            "{}\t{}\t{}\t{}\t{}{}",
            a.id,
            a.status,
            a.requested_by,
            a.decided_by.as_deref().unwrap_or("-"),
            a.summary,
            a.reason
                .as_deref()
                .map_or(String::new(), |r| format!(" (reason: {r})"))
        );
    }
    Ok(())
}

/// Runs an `approval` subcommand. A refusal (the four-eyes rule, no such approval, decided
/// already, an unknown status) prints the error and answers `Ok(false)` (exit 1).
pub fn run(command: ApprovalCommand) -> Result<bool> {
    let (result, json) = match command {
        ApprovalCommand::List { data, status, json } => {
            let store = crate::open_store(&data)?;
            let s = (status != "all").then_some(status.as_str());
            match ops::list_approvals(store.as_ref(), s, LIST_LIMIT) {
                Ok(rows) => {
                    if json {
                        out!("{}", serde_json::to_value(&rows)?);
                    } else {
                        for r in &rows {
                            print_one(r, false)?;
                        }
                    }
                    (Ok(()), json)
                }
                Err(e) => (Err(e), json),
            }
        }
        ApprovalCommand::Approve { data, id, json } => {
            let store = crate::open_store(&data)?;
            let r = with_release(&data, store.as_ref(), |r, node| ops::approve(r, node, &id))?;
            (
                r.and_then(|a| {
                    print_one(&a, json).map_err(|e| AdminError::Internal(e.to_string()))
                }),
                json,
            )
        }
        ApprovalCommand::Reject {
            data,
            id,
            reason,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let r = with_release(&data, store.as_ref(), |r, _| {
                ops::reject(r, &id, reason.as_deref())
            })?;
            (
                r.and_then(|a| {
                    print_one(&a, json).map_err(|e| AdminError::Internal(e.to_string()))
                }),
                json,
            )
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(
            e @ (AdminError::Invalid(_)
            | AdminError::NotFound(_)
            | AdminError::Conflict(_)
            | AdminError::Forbidden(_)),
        ) => {
            eprintln!("error: {e}");
            if json {
                out!(
                    "{}",
                    serde_json::json!({"error": e.to_string(), "code": e.code()})
                );
            }
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
