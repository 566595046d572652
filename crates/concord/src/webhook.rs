//! `concord webhook …` and the webhook deliverer of `serve` (issue 21, item 2): new objects
//! POSTed to a receiver, signed, through the egress door (see [`concord_sync::webhook`]).

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use concord_store::Store;
use concord_sync::webhook;

use crate::DataDirArg;

/// `concord webhook …`.
#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add (or replace) a webhook: objects added from now on are POSTed to URL.
    Add {
        #[command(flatten)]
        data: DataDirArg,
        /// Unique name on this node (letters, digits, '-', '_', '.'); sent in each body.
        name: String,
        /// The receiver, an http(s) URL.
        #[arg(long)]
        url: String,
        /// File holding the HMAC-SHA-256 key (at least 16 bytes) the receiver checks
        /// `X-Concord-Signature` with.
        #[arg(long, value_name = "F")]
        secret_file: String,
        /// Send what this partner would receive (its egress policy); without it, the
        /// operator's webhook sends the stored objects.
        #[arg(long, value_name = "P")]
        partner: Option<String>,
        /// A collection (alias or id) followed (repeatable); default: every collection (a
        /// partner's: those it may read).
        #[arg(long = "collection", value_name = "C")]
        collections: Vec<String>,
        /// A STIX type sent (repeatable); default: every type.
        #[arg(long = "type", value_name = "T")]
        types: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List webhooks.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show a webhook: its configuration, cursors, last success and error, queue, dead
    /// letters.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a webhook (its dead letters stay).
    Remove {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
    },
    /// POST each dead letter of a webhook once; those answered 2xx are removed. Exit 1 when
    /// one failed again.
    Retry {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn options(data: &DataDirArg) -> Result<webhook::Options> {
    let dir = crate::data_dir(data).dir;
    crate::config::Config::load(&dir)?.webhooks.options()
}

/// Runs a `webhook` subcommand.
pub fn run(command: WebhookCommand) -> Result<bool> {
    match command {
        WebhookCommand::Add {
            data,
            name,
            url,
            secret_file,
            partner,
            collections,
            types,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let secret_file = std::path::absolute(&secret_file)
                .unwrap_or_else(|_| secret_file.clone().into())
                .to_string_lossy()
                .into_owned();
            // The rules are the admin API's ([`concord_admin::ops::webhooks`]); any file
            // the operator names but the node's own secrets.
            let dir = crate::data_dir(&data).dir;
            let files = concord_admin::ops::PeerFiles {
                within: None,
                refused: crate::config::Config::load(&dir)?.own_files(&dir),
            };
            let hook = concord_admin::ops::webhooks::add_webhook(
                store.as_ref(),
                &concord_admin::ops::webhooks::NewWebhook {
                    name,
                    url,
                    secret_file: Some(secret_file),
                    secret: None,
                    partner,
                    collections,
                    types,
                },
                &files,
                flags,
            )?;
            if json {
                out!("{}", serde_json::to_value(&hook)?);
            } else {
                eprintln!("webhook {} added", hook.name);
            }
            Ok(true)
        }
        WebhookCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            let hooks = webhook::list(store.as_ref())?;
            if json {
                out!("{}", serde_json::to_value(&hooks)?);
            } else {
                for h in &hooks {
                    let state = webhook::load_state(store.as_ref(), &h.name)?;
                    out!(
                        "{}\t{}\t{}\tlast success {}\t{}",
                        h.name,
                        h.url,
                        h.partner.as_deref().unwrap_or(webhook::OPERATOR),
                        state.last_success.as_deref().unwrap_or("never"),
                        state.last_error.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(true)
        }
        WebhookCommand::Show { data, name, json } => {
            let store = crate::open_store(&data)?;
            let doc = concord_admin::ops::webhooks::show_webhook(store.as_ref(), &name)?;
            if json {
                out!("{doc}");
            } else {
                out!("{}", serde_json::to_string_pretty(&doc)?);
            }
            Ok(true)
        }
        WebhookCommand::Remove { data, name } => {
            let store = crate::open_store(&data)?;
            concord_admin::ops::webhooks::remove_webhook(store.as_ref(), &name)?;
            eprintln!("webhook {name} removed");
            Ok(true)
        }
        WebhookCommand::Retry { data, name, json } => {
            let opts = options(&data)?;
            let store = crate::open_store(&data)?;
            let report = concord_admin::ops::webhooks::retry_webhook(store.as_ref(), &name, &opts)?;
            if json {
                out!("{}", serde_json::to_value(&report)?);
            } else {
                eprintln!(
                    "webhook {name}: {} dead letters delivered, {} failed again",
                    report.delivered.len(),
                    report.failed.len()
                );
                for (id, e) in &report.failed {
                    eprintln!("  {id}: {e}");
                }
            }
            Ok(report.failed.is_empty())
        }
    }
}

/// The CLI's names of `add`'s inputs in its messages: its flags.
fn flags(i: concord_admin::ops::webhooks::Input) -> &'static str {
    use concord_admin::ops::webhooks::Input;
    match i {
        Input::SecretFile => "--secret-file",
        // Not a flag: the CLI takes the key from a file only.
        Input::Secret => "the key",
        Input::Partner => "--partner",
        Input::Collection => "--collection",
    }
}

/// Delivers the webhooks beside the server: every `every_secs` each webhook whose last turn
/// is over gets a turn, taken by one of `concurrency` delivery threads.
pub fn spawn_deliverer(
    store: Arc<dyn Store>,
    policy: concord_policy::actions::Policy,
    config: &crate::config::WebhooksConfig,
) -> Result<()> {
    let opts = Arc::new(config.options()?);
    let every = std::time::Duration::from_secs(config.every_secs);
    // This process's name in the leases (another serve process on the same database
    // skips a webhook this one delivers).
    let holder = Arc::new(format!("serve-{}", uuid::Uuid::new_v4()));
    let egress = Arc::new(
        concord_egress::Egress::new(store.clone(), Arc::new(policy))
            .acting_as(crate::users::actor().audit_name()),
    );
    // `concurrency` workers take turns of webhooks from one queue; a webhook is queued
    // again only once its turn is over, so a slow receiver holds one worker and the others
    // go on (issue 21: one slow receiver delayed every other webhook).
    let (queue, turns) = std::sync::mpsc::channel::<webhook::Webhook>();
    let turns = Arc::new(std::sync::Mutex::new(turns));
    let busy: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
    for i in 0..config.concurrency {
        let (store, egress, opts, holder, turns, busy) = (
            store.clone(),
            egress.clone(),
            opts.clone(),
            holder.clone(),
            turns.clone(),
            busy.clone(),
        );
        std::thread::Builder::new()
            .name(format!("concord-webhooks-{i}"))
            .spawn(move || {
                loop {
                    let next = turns.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(hook) = next else { return };
                    if let Err(e) = webhook::turn(store.as_ref(), &egress, &hook, &opts, &holder) {
                        tracing::warn!(webhook = %hook.name, error = %e, "webhook: turn failed");
                    }
                    busy.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&hook.name);
                }
            })
            .context("cannot start the webhook deliverer")?;
    }
    std::thread::Builder::new()
        .name("concord-webhooks".into())
        .spawn(move || {
            loop {
                match webhook::list(store.as_ref()) {
                    Ok(hooks) => {
                        for hook in hooks {
                            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
                            if busy.insert(hook.name.clone()) && queue.send(hook).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook: cannot read webhooks"),
                }
                std::thread::sleep(every);
            }
        })
        .context("cannot start the webhook deliverer")?;
    Ok(())
}
