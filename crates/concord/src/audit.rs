//! `concord audit verify|show`: the audit log of every egress and ingress (issue 5, item 7).

use std::collections::VecDeque;

use anyhow::Result;
use clap::Subcommand;
use concord_store::{AuditEntry, Store, Timestamp, verify_chain};

use crate::DataDirArg;

/// Entries read from the store at once.
const PAGE: usize = 10_000;

/// `concord audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the whole log: exit 0 when intact, 1 naming the first edited,
    /// deleted or reordered entry.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show the newest entries, oldest first.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// Only the entries of this partner (`admin`, `operator` for the node's own).
        #[arg(long, value_name = "P")]
        partner: Option<String>,
        /// How many of the newest entries.
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Print one JSON document (an array of entries) on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `audit` subcommand; `Ok(false)` (exit 1) when `verify` finds the log tampered.
pub fn run(command: AuditCommand) -> Result<bool> {
    match command {
        AuditCommand::Verify { data, json } => {
            let store = crate::open_store(&data)?;
            let mut log = Vec::new();
            for_each_page(store.as_ref(), None, |page| log.extend(page))?;
            let head = log.last().map(|e| e.hash.clone());
            match verify_chain(&log) {
                Ok(()) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"intact": true, "entries": log.len(), "head": head})
                        );
                    } else {
                        eprintln!(
                            "audit log intact: {} entries, head {}",
                            log.len(),
                            head.as_deref().unwrap_or("-")
                        );
                    }
                    Ok(true)
                }
                Err(e) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "intact": false, "entries": log.len(), "first_bad_seq": e.seq(),
                                "kind": e.kind(), "message": e.to_string(),
                            })
                        );
                    } else {
                        eprintln!("audit log tampered: {e}");
                    }
                    Ok(false)
                }
            }
        }
        AuditCommand::Show {
            data,
            partner,
            limit,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let mut newest = VecDeque::with_capacity(limit.min(PAGE));
            for_each_page(store.as_ref(), partner.as_deref(), |page| {
                for e in page {
                    if newest.len() == limit {
                        newest.pop_front();
                    }
                    if limit > 0 {
                        newest.push_back(e);
                    }
                }
            })?;
            if json {
                println!("{}", serde_json::to_string(&newest)?);
            } else {
                for e in &newest {
                    let r = &e.record;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        e.seq,
                        Timestamp::from_unix_nanos(e.time_ns, 6),
                        r.direction,
                        r.door,
                        r.partner,
                        r.object_id,
                        r.modified,
                        r.decision,
                        r.policy_version,
                        r.transformations.join("; ")
                    );
                }
            }
            Ok(true)
        }
    }
}

/// Reads the log (of one partner, or all of it) page by page, in `seq` order.
fn for_each_page(
    store: &dyn Store,
    partner: Option<&str>,
    mut f: impl FnMut(Vec<AuditEntry>),
) -> Result<()> {
    let mut after = 0;
    loop {
        let page = store.audit(after, PAGE, partner)?;
        let full = page.len() == PAGE;
        match page.last() {
            Some(last) => after = last.seq,
            None => return Ok(()),
        }
        f(page);
        if !full {
            return Ok(());
        }
    }
}
