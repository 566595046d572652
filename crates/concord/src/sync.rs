//! `concord peer …` and `concord sync`: federation with other TAXII 2.1 servers (issue 7).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use concord_store::Store;
use concord_sync::{PolicyContext, RoundOptions};

use crate::DataDirArg;

/// `concord peer …`.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum PeerCommand {
    /// Add (or replace) a peer: a TAXII 2.1 server this node pulls from and/or pushes to.
    Add {
        #[command(flatten)]
        data: DataDirArg,
        /// Unique name of the peer on this node.
        name: String,
        /// Base URL of the peer's server, e.g. https://cert.example:8443. Without it (and
        /// with --node-key), a peer reached by transfer packages only.
        #[arg(required_unless_present = "node_key")]
        url: Option<String>,
        /// Path of the API root on that server, e.g. /concord/.
        #[arg(long, value_name = "PATH", requires = "url")]
        api_root: Option<String>,
        /// REMOTE:LOCAL — the remote collection (id, or title when unambiguous) and the
        /// local one (alias or id; created when missing). Repeatable.
        #[arg(long = "collection", value_name = "REMOTE:LOCAL", requires = "url")]
        collections: Vec<String>,
        /// The peer's public node key: a file with 64 hex digits (its `concord node key -o
        /// FILE`). Transfer packages it signed then import without --signed-by.
        #[arg(long, value_name = "KEYFILE")]
        node_key: Option<PathBuf>,
        /// Pull from the peer (both directions when neither --pull nor --push is given).
        #[arg(long)]
        pull: bool,
        /// Push to the peer.
        #[arg(long)]
        push: bool,
        /// File holding the Bearer token for the peer.
        #[arg(long, value_name = "F", conflicts_with = "user")]
        token_file: Option<String>,
        /// User for HTTP Basic (with --password-file).
        #[arg(long, value_name = "U", requires = "password_file")]
        user: Option<String>,
        /// File holding the Basic password.
        #[arg(long, value_name = "F", requires = "user")]
        password_file: Option<String>,
        /// The partner of this node whose egress policy applies to what goes to the peer
        /// (required to push, and to send sightings home).
        #[arg(long, value_name = "P")]
        partner: Option<String>,
        /// Seconds between rounds under `concord serve`.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        interval: u64,
        /// Seconds one request to the peer may take (a slow peer fails the request, which
        /// is retried with backoff).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
        /// Trusted CA certificates (PEM) for the peer's TLS, instead of the WebPKI roots.
        #[arg(long, value_name = "F")]
        ca_file: Option<String>,
        /// Client certificate (PEM) for mutual TLS.
        #[arg(long, value_name = "F", requires = "client_key")]
        client_cert: Option<String>,
        /// Its private key (PEM).
        #[arg(long, value_name = "F", requires = "client_cert")]
        client_key: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List peers.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show a peer: its configuration, its last rounds and errors, its cursors.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// The peer's name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer (its cursors stay, for a peer added again under the same name).
    Remove {
        #[command(flatten)]
        data: DataDirArg,
        /// The peer's name.
        name: String,
    },
}

/// Runs a `peer` subcommand.
pub fn run_peer(command: PeerCommand) -> Result<bool> {
    match command {
        PeerCommand::Add {
            data,
            name,
            url,
            api_root,
            collections,
            pull,
            push,
            token_file,
            user,
            password_file,
            partner,
            interval,
            timeout,
            ca_file,
            client_cert,
            client_key,
            node_key,
            json,
        } => {
            let store = crate::open_store(&data)?;
            // The operator may name any file the node can read, but the node's own secrets.
            let dir = crate::data_dir(&data).dir;
            let config = crate::config::Config::load(&dir)?;
            let files = concord_admin::ops::PeerFiles {
                within: None,
                refused: config.own_files(&dir),
            };
            let outbound = config.outbound()?;
            let node_key = node_key
                .as_deref()
                .map(concord_sync::package::read_key_file)
                .transpose()?
                .map(|k| concord_store::node_key::hex(&k));
            let added = concord_admin::ops::add_peer(
                store.as_ref(),
                &concord_admin::ops::NewPeer {
                    name,
                    url: url.unwrap_or_default(),
                    api_root: api_root.unwrap_or_default(),
                    collections,
                    pull,
                    push,
                    token_file,
                    user,
                    password_file,
                    partner,
                    interval: Some(interval),
                    timeout: Some(timeout),
                    ca_file,
                    client_cert,
                    client_key,
                    node_key,
                    ..Default::default()
                },
                &files,
                &outbound,
            )?;
            for alias in &added.created_collections {
                eprintln!("created collection {alias}");
            }
            if json {
                out!("{}", serde_json::to_value(&added.peer)?);
            } else {
                eprintln!("peer {} added", added.peer.name);
            }
            Ok(true)
        }
        PeerCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            let peers = concord_admin::ops::list_peers(store.as_ref())?;
            if json {
                let only: Vec<_> = peers.iter().map(|p| &p.peer).collect();
                out!("{}", serde_json::to_value(&only)?);
            } else {
                for p in &peers {
                    out!(
                        "{}\t{}{}\t{} mappings\tlast success {}\t{}",
                        p.peer.name,
                        p.peer.url,
                        p.peer.api_root,
                        p.peer.mappings.len(),
                        p.state.last_success.as_deref().unwrap_or("never"),
                        p.state.last_error.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(true)
        }
        PeerCommand::Show { data, name, json } => {
            let store = crate::open_store(&data)?;
            let doc = serde_json::to_value(concord_admin::ops::show_peer(store.as_ref(), &name)?)?;
            if json {
                out!("{doc}");
            } else {
                out!("{}", serde_json::to_string_pretty(&doc)?);
            }
            Ok(true)
        }
        PeerCommand::Remove { data, name } => {
            let store = crate::open_store(&data)?;
            concord_admin::ops::remove_peer(store.as_ref(), &name)?;
            eprintln!("peer {name} removed");
            Ok(true)
        }
    }
}

/// `concord sync`: one round with every peer (or one); exit 1 when a round failed.
pub fn sync_once(
    data: &DataDirArg,
    only: Option<&str>,
    page_size: usize,
    json: bool,
) -> Result<bool> {
    let options = RoundOptions {
        page_size: page_size.max(1),
        ..crate::config::Config::load(&data.data_dir)?.round()?
    };
    let store = crate::open_store(data)?;
    let policy = crate::policy::load(data, store.as_ref())?;
    let egress = concord_egress::Egress::new(store.clone(), std::sync::Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
    let cx = PolicyContext { egress: &egress };
    let peers = match only {
        Some(name) => vec![concord_sync::load_peer(store.as_ref(), name)?],
        // Peers reached by transfer packages only have nothing to sync.
        None => concord_sync::peers(store.as_ref())?
            .into_iter()
            .filter(|p| !p.url.is_empty())
            .collect(),
    };
    let mut ok = true;
    let mut reports = Vec::new();
    for peer in &peers {
        // Another process holds the peer's lease (a serve scheduler, or a killed sync whose
        // lease has not lapsed yet): wait for it, a little longer than a lease lasts.
        let deadline = Instant::now() + concord_sync::LEASE + Duration::from_secs(2);
        let result = loop {
            match concord_sync::round(store.as_ref(), peer, &cx, &options) {
                Err(concord_sync::SyncError::Busy(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                other => break other,
            }
        };
        match result {
            Ok(r) => {
                if !json {
                    eprintln!(
                        "{}: pulled {} new ({} already held, {} invalid) in {} pages; deleted {} the peer deleted; pushed {} ({} echoes and {} held skipped, {} withheld by policy); {} deletes sent ({} not held there); {} sightings and {} answers home",
                        r.peer,
                        r.pulled_added,
                        r.pulled_present,
                        r.pulled_rejected.len(),
                        r.pages,
                        r.deleted,
                        r.pushed,
                        r.skipped_echo,
                        r.skipped_held,
                        r.withheld,
                        r.push_deleted + r.push_delete_absent,
                        r.push_delete_absent,
                        r.sightings_home,
                        r.answers_home
                    );
                }
                reports.push(serde_json::to_value(&r)?);
            }
            Err(e) => {
                ok = false;
                if !json {
                    eprintln!("{}: {e}", peer.name);
                }
                reports.push(serde_json::json!({"peer": peer.name, "error": e.to_string()}));
            }
        }
    }
    if json {
        out!("{}", serde_json::Value::Array(reports));
    }
    Ok(ok)
}

/// The sync scheduler of `concord serve`: one thread that runs each peer's round when it
/// is due (its interval after the last round; after a failure sooner, with backoff: 2, 4, 8…
/// seconds, never later than the interval), re-reading the peers every second so peers added
/// while serving are picked up. Errors are recorded in the peer's state and logged; the
/// node keeps serving.
pub fn spawn_scheduler(
    store: Arc<dyn Store>,
    policy: concord_policy::actions::Policy,
    options: RoundOptions,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("concord-sync".into())
        .spawn(move || {
            let egress = concord_egress::Egress::new(store.clone(), std::sync::Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
            let cx = PolicyContext { egress: &egress };
            let mut due: std::collections::HashMap<String, Instant> = Default::default();
            loop {
                let peers = match concord_sync::peers(store.as_ref()) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read peers");
                        Vec::new()
                    }
                };
                for peer in peers.into_iter().filter(|p| !p.url.is_empty()) {
                    let now = Instant::now();
                    if due.get(&peer.name).is_some_and(|t| *t > now) {
                        continue;
                    }
                    let interval = Duration::from_secs(peer.interval_secs.max(1));
                    let next = match concord_sync::round(
                        store.as_ref(),
                        &peer,
                        &cx,
                        &options,
                    ) {
                        Ok(r) => {
                            tracing::info!(peer = %peer.name, pulled = r.pulled_added, pushed = r.pushed, "sync round");
                            interval
                        }
                        Err(concord_sync::SyncError::Busy(_)) => Duration::from_secs(1),
                        Err(e) => {
                            let failures = concord_sync::load_state(store.as_ref(), &peer.name)
                                .map(|s| s.consecutive_failures)
                                .unwrap_or(1);
                            tracing::warn!(peer = %peer.name, error = %e, failures, "sync round failed");
                            Duration::from_secs(1 << failures.min(10)).min(interval)
                        }
                    };
                    due.insert(peer.name.clone(), Instant::now() + next);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map(|_| ())
}
