//! `concord incident open|request|respond|list|show|close|grant` (issue 18): cross-border
//! incident coordination over the node's ordinary doors.
//!
//! The operations themselves (validation, the objects written, their addressing and audit)
//! are [`concord_coordination`]'s, shared with the web UI; this module parses the flags and
//! prints the results (text, or one JSON document with `--json`), and runs `serve`'s
//! notifier of arriving requests.

use anyhow::{Context, Result};
use clap::Subcommand;
use concord_coordination::{DEFAULT_COLLECTION, DeskError, Node, Tracked, Way};
use concord_stix::Timestamp;
use concord_store::Store;
use serde_json::{Value, json};

use crate::DataDirArg;
use crate::config::Config;

/// `concord incident …`.
#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Open an incident (a STIX `incident` with the Incident Core extension); prints its id.
    Open {
        #[command(flatten)]
        data: DataDirArg,
        /// Its title (`name`).
        #[arg(long, value_name = "T")]
        title: String,
        /// Its description.
        #[arg(long, value_name = "D")]
        description: Option<String>,
        /// Its criticality: 0–100, or none, low, medium, high, critical.
        #[arg(long, value_name = "S")]
        severity: Option<String>,
        /// The collection it is kept in (alias or id; created when missing).
        #[arg(long, value_name = "C", default_value = DEFAULT_COLLECTION)]
        collection: String,
        /// A country the incident reaches into (ISO 3166-1 alpha-2); repeatable.
        #[arg(long, value_name = "CC")]
        affects: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Ask a partner for assistance (a STIX `task` addressed to it); prints the task's id.
    /// The request travels by sync to the partner's node, and to no other partner.
    Request {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The partner asked (its name on this node).
        #[arg(long, value_name = "PARTNER")]
        to: String,
        /// What is asked.
        #[arg(long, value_name = "TEXT")]
        ask: String,
        /// When the answer is due (RFC 3339 in UTC, e.g. 2026-12-08T12:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        deadline: String,
        /// Its priority: 0–100, or none, low, medium, high, critical.
        #[arg(long, value_name = "P")]
        priority: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Answer a request addressed to this node: acknowledged, accepted, declined (say why
    /// in --note) or done (say the outcome in --note). The answer goes home by sync.
    Respond {
        #[command(flatten)]
        data: DataDirArg,
        /// The request (its task id).
        task: String,
        /// acknowledged, accepted, declined or done.
        #[arg(long, value_name = "STATUS")]
        status: String,
        /// The reason (declined) or the outcome (done).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List incidents with their requests: per request who asked whom, the latest status,
    /// the deadline and whether it is overdue.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Only open or only closed incidents.
        #[arg(long, value_name = "STATUS", value_parser = ["open", "closed"])]
        status: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident: its requests with every answer (per answering node the latest
    /// status and when) and its events.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        id: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Grant what one request needs: PARTNER receives the personal data of each CATEGORY as
    /// written (not pseudonymised, redacted or dropped) in this incident and in every object
    /// that refers to it (its requests and answers), whatever the policy's tables say.
    /// Audited (door `incident-grant`); `policy explain` names the grant.
    Grant {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The partner (its name on this node).
        #[arg(long, value_name = "PARTNER")]
        to: String,
        /// A category of personal data: email, phone, ip_address, national_id, payment_card,
        /// iban, person_name, user_account, email_address_object; repeatable.
        #[arg(long, value_name = "CATEGORY", required = true)]
        allow: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Close an incident this node opened (a new version, `investigation_status` closed).
    Close {
        #[command(flatten)]
        data: DataDirArg,
        /// The incident (its id).
        incident: String,
        /// The outcome.
        #[arg(long, value_name = "TEXT")]
        outcome: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `incident` subcommand. Invalid input (a bad flag value, an unknown partner or
/// object, a request this node may not answer) prints the error naming the place and rule
/// and answers `Ok(false)` (exit 1).
pub fn run(command: IncidentCommand) -> Result<bool> {
    let (data, json) = match &command {
        IncidentCommand::Open { data, json, .. }
        | IncidentCommand::Request { data, json, .. }
        | IncidentCommand::Respond { data, json, .. }
        | IncidentCommand::List { data, json, .. }
        | IncidentCommand::Show { data, json, .. }
        | IncidentCommand::Grant { data, json, .. }
        | IncidentCommand::Close { data, json, .. } => (data.clone(), *json),
    };
    let store = crate::open_store(&data)?;
    let config = Config::load(&crate::data_dir(&data).dir)?;
    let jurisdiction = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
    let person = crate::users::actor().audit_name();
    let node = Node {
        store: store.as_ref(),
        max_object_size: config.max_object_size,
        title: &config.title,
        jurisdiction: jurisdiction.as_deref(),
        person: Some(&person),
    };
    let now = Timestamp::now_micros();
    let result = match command {
        IncidentCommand::Open {
            title,
            description,
            severity,
            collection,
            affects,
            ..
        } => concord_coordination::open(
            &node,
            &concord_coordination::OpenInput {
                title: &title,
                description: description.as_deref(),
                severity: severity.as_deref(),
                collection: &collection,
                affects: &affects,
            },
            &now,
        )
        .map(|o| Done {
            text: format!("{}\n", o.id),
            doc: json!({"id": o.id, "collection": o.collection}),
        }),
        IncidentCommand::Request {
            incident,
            to,
            ask,
            deadline,
            priority,
            ..
        } => concord_coordination::request(
            &node,
            &concord_coordination::RequestInput {
                incident: &incident,
                to: &to,
                ask: &ask,
                deadline: &deadline,
                priority: priority.as_deref(),
            },
            &now,
        )
        .map(|r| {
            eprintln!("request {} to {}: {}", r.id, r.to, r.delivery());
            Done {
                text: format!("{}\n", r.id),
                doc: json!({
                    "id": r.id, "incident": r.incident, "to": r.to, "status": "pending",
                    "deadline": r.deadline, "peers": r.peers,
                }),
            }
        }),
        IncidentCommand::Respond {
            task, status, note, ..
        } => concord_coordination::respond(&node, &task, &status, note.as_deref(), &now).map(|r| {
            Done {
                text: format!("{}\n", r.id),
                doc: json!({
                    "id": r.id, "task": r.task, "status": r.status.as_str(), "to": r.to,
                    "version": r.version,
                }),
            }
        }),
        IncidentCommand::List { status, .. } => concord_coordination::board(store.as_ref(), &now)
            .map(|all| {
                let docs: Vec<Value> = all
                    .iter()
                    .filter(|t| {
                        status
                            .as_deref()
                            .is_none_or(|w| t.state.incident.status == w)
                    })
                    .map(|t| {
                        let mut d = t.to_json();
                        if let Some(o) = d.as_object_mut() {
                            o.remove("events");
                        }
                        d
                    })
                    .collect();
                Done {
                    text: text_of(&docs),
                    doc: json!({ "incidents": docs }),
                }
            }),
        IncidentCommand::Show { id, .. } => {
            concord_coordination::show(store.as_ref(), &id, &now).map(|t| show_text(&t))
        }
        IncidentCommand::Close {
            incident, outcome, ..
        } => {
            concord_coordination::close(&node, &incident, outcome.as_deref(), &now).map(|()| Done {
                text: format!("{incident} closed\n"),
                doc: json!({"id": incident, "status": "closed", "outcome": outcome}),
            })
        }
        IncidentCommand::Grant {
            incident,
            to,
            allow,
            ..
        } => {
            // Four-eyes release: a grant to a cross-border partner may wait for a second
            // releaser (`[release] four_eyes`).
            use concord_coordination::release::{self, Outcome, Release, ReleaseError};
            let policy = crate::policy::load(&data, store.as_ref())?;
            let r = Release {
                store: store.as_ref(),
                four_eyes: config.release.four_eyes,
                unnamed_persons: config.release.unnamed_persons,
                policy: &policy,
                person: &person,
            };
            match release::grant(&r, &node, &incident, &to, &allow) {
                Ok(Outcome::Applied(categories)) => {
                    let names: Vec<&str> = categories.iter().map(|c| c.as_str()).collect();
                    Ok(Done {
                        text: format!(
                            "{to} receives {} as written in {incident}\n",
                            names.join(", ")
                        ),
                        doc: json!({"incident": incident, "to": to, "allow": names}),
                    })
                }
                Ok(Outcome::Pending(a)) => {
                    crate::approval::print_pending(&(*a).into(), json)?;
                    return Ok(true);
                }
                Err(ReleaseError::Desk(e)) => Err(e),
                Err(ReleaseError::FourEyes(m)) => {
                    eprintln!("error: {m}");
                    if json {
                        out!("{}", json!({ "error": m, "code": "forbidden" }));
                    }
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    match result {
        Ok(Done { doc, text }) => {
            if json {
                out!("{doc}");
            } else {
                out_raw!("{text}");
            }
            Ok(true)
        }
        Err(DeskError::Refused(message) | DeskError::NotFound(message)) => {
            // The command line names the input by its flag (`--deadline`).
            let message = message.to_string();
            eprintln!("error: {message}");
            if json {
                out!("{}", json!({ "error": message }));
            }
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// What a subcommand prints: the JSON document, or the text for a terminal.
struct Done {
    doc: Value,
    text: String,
}

fn text_of(states: &[Value]) -> String {
    let mut out = String::new();
    for i in states {
        out.push_str(&format!(
            "{}\t{}\t{}\n",
            i["id"].as_str().unwrap_or_default(),
            i["status"].as_str().unwrap_or_default(),
            i["title"].as_str().unwrap_or_default()
        ));
        for t in i["tasks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}\t{} -> {}\t{}\tdue {}{}\n",
                t["id"].as_str().unwrap_or_default(),
                t["from"].as_str().unwrap_or_default(),
                t["to"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default(),
                t["deadline"].as_str().unwrap_or_default(),
                if t["overdue"] == true {
                    "\tOVERDUE"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

/// `incident show`: the incident's document with its collection, and the text.
fn show_text(t: &Tracked) -> Done {
    let s = &t.state;
    let mut doc = t.to_json();
    doc["collection"] = json!(t.collection);
    let mut text = text_of(std::slice::from_ref(&doc));
    for task in &s.tasks {
        for a in &task.answers {
            text.push_str(&format!(
                "  {} answered by {}: {} at {}{}\n",
                task.id,
                a.by,
                a.status.as_str(),
                a.at,
                a.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    for e in &s.events {
        text.push_str(&format!("  event {} {} {}\n", e.id, e.status, e.name));
    }
    Done { text, doc }
}

/// The setting that records that the request `task` was announced (its time).
fn notified_key(task: &str) -> String {
    format!("incident/notified/{task}")
}

/// The requests made by another node that this node holds and has not announced yet, as
/// the JSON document a notice carries.
fn unannounced(store: &dyn Store) -> Result<Vec<(String, Value)>> {
    let now = Timestamp::now_micros();
    let mut out = Vec::new();
    for tracked in concord_coordination::board(store, &now)? {
        let s = &tracked.state;
        for (t, way) in s.tasks.iter().zip(&tracked.ways) {
            if matches!(way, Way::Outgoing { .. }) || store.setting(&notified_key(&t.id))?.is_some()
            {
                continue;
            }
            let doc = json!({
                "event": "request-received",
                "task": t.id, "incident": s.incident.id, "title": s.incident.title,
                "from": t.from, "to": t.to, "ask": t.ask, "deadline": t.deadline,
                "priority": t.priority, "received_from": store.received_from(&t.id, None)?,
            });
            out.push((t.id.clone(), doc));
        }
    }
    Ok(out)
}

/// At most `max` of the requests `found`, taken in turn from each source (the first name
/// of the document's `received_from`, in order of first appearance): one source's flood
/// cannot crowd out another's request, nor run more than `max` notices in one look.
fn take_in_turn(found: Vec<(String, Value)>, max: usize) -> Vec<(String, Value)> {
    let mut queues: Vec<(String, std::collections::VecDeque<(String, Value)>)> = Vec::new();
    for item in found {
        let source = item.1["received_from"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match queues.iter_mut().find(|(s, _)| *s == source) {
            Some((_, q)) => q.push_back(item),
            None => queues.push((source, std::collections::VecDeque::from([item]))),
        }
    }
    let mut out = Vec::new();
    while out.len() < max && queues.iter().any(|(_, q)| !q.is_empty()) {
        for (_, q) in &mut queues {
            if out.len() == max {
                break;
            }
            if let Some(item) = q.pop_front() {
                out.push(item);
            }
        }
    }
    out
}

/// Runs `command` with `sh -c`, `doc` on its stdin and `CONCORD_TASK_ID` set; an error
/// unless it exits 0.
fn run_command(command: &str, task: &str, doc: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CONCORD_TASK_ID", task)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("notify_command {command:?} cannot start"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is no error.
        let _ = stdin.write_all(doc.as_bytes());
    }
    let status = child.wait().context("notify_command")?;
    anyhow::ensure!(status.success(), "notify_command {command:?}: {status}");
    Ok(())
}

/// Starts `serve`'s notifier when `[incident]` configures a command or a webhook: every
/// `notify_every_secs` it announces each request for assistance made by another node that
/// arrived since (by sync pull or a partner's TAXII POST), once: the command runs and the
/// webhook is POSTed, signed ([`concord_sync::notify`]); a request is marked announced only
/// when both succeeded, so a failed one is tried again at the next look. Errors (before
/// anything starts): a webhook without a readable secret of at least 16 bytes, an interval
/// of 0.
pub fn spawn_notifier(
    dir: &std::path::Path,
    store: std::sync::Arc<dyn Store>,
    config: &crate::config::IncidentConfig,
) -> Result<()> {
    if config.notify_command.is_empty() && config.notify_webhook.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        config.notify_every_secs >= 1,
        "[incident] notify_every_secs: must be at least 1"
    );
    anyhow::ensure!(
        config.notify_max_per_look >= 1,
        "[incident] notify_max_per_look: must be at least 1"
    );
    let secret = if config.notify_webhook.is_empty() {
        Vec::new()
    } else {
        anyhow::ensure!(
            config.notify_webhook.starts_with("http://")
                || config.notify_webhook.starts_with("https://"),
            "[incident] notify_webhook {:?}: must be an http(s) URL",
            config.notify_webhook
        );
        anyhow::ensure!(
            !config.notify_secret_file.is_empty(),
            "[incident] notify_webhook needs notify_secret_file (the HMAC key)"
        );
        let path = dir.join(&config.notify_secret_file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "[incident] notify_secret_file {}: cannot read",
                path.display()
            )
        })?;
        let key = text.trim().as_bytes().to_vec();
        anyhow::ensure!(
            key.len() >= 16,
            "[incident] notify_secret_file {}: the key must have at least 16 bytes",
            path.display()
        );
        key
    };
    let config = config.clone();
    std::thread::Builder::new()
        .name("concord-incident-notify".into())
        .spawn(move || {
            loop {
                match unannounced(store.as_ref()) {
                    Ok(found) => {
                        for (task, doc) in take_in_turn(found, config.notify_max_per_look) {
                            let text = doc.to_string();
                            let mut ok = true;
                            if !config.notify_command.is_empty()
                                && let Err(e) = run_command(&config.notify_command, &task, &text)
                            {
                                tracing::warn!(%task, error = %e, "incident notice: command failed");
                                ok = false;
                            }
                            if !config.notify_webhook.is_empty()
                                && let Err(e) = concord_sync::notify::post_signed(
                                    &config.notify_webhook,
                                    &secret,
                                    &text,
                                    std::time::Duration::from_secs(10),
                                )
                            {
                                tracing::warn!(%task, error = %e, "incident notice: webhook failed");
                                ok = false;
                            }
                            if ok {
                                let at = Timestamp::now_micros().to_string();
                                if let Err(e) = store.set_setting(&notified_key(&task), &at) {
                                    tracing::warn!(%task, error = %e, "incident notice: not recorded");
                                }
                                tracing::info!(%task, "incident notice: request announced");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "incident notice: cannot read requests"),
                }
                std::thread::sleep(std::time::Duration::from_secs(config.notify_every_secs));
            }
        })
        .context("cannot start the incident notifier")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_capped_per_look_and_taken_in_turn_from_each_source() {
        let item = |task: &str, from: &str| {
            (
                task.to_owned(),
                json!({"task": task, "received_from": [from, format!("partner/{from}")]}),
            )
        };
        // A flood of 50 from one source, then one request from another.
        let mut found: Vec<_> = (0..50).map(|i| item(&format!("f{i}"), "flood")).collect();
        found.push(item("other", "cert-br"));
        let taken: Vec<String> = take_in_turn(found.clone(), 10)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(taken.len(), 10);
        assert_eq!(&taken[..3], ["f0", "other", "f1"]);
        // Under the cap, everything, in turn.
        assert_eq!(take_in_turn(found[48..].to_vec(), 10).len(), 3);
        assert!(take_in_turn(Vec::new(), 10).is_empty());
    }
}
