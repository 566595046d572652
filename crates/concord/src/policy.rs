//! `concord policy show|explain|marking`: the egress policy as data (issue 5, items 5–6).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use concord_policy::actions::Policy;
use concord_server::policy::{important_data_marking, node_policy};
use concord_store::Store;

use crate::DataDirArg;
use crate::config::Config;

/// `concord policy …`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the active policy (the `[policy]` section of concord.toml with the node's
    /// jurisdiction and important-data marking) as TOML, with its version; or a version
    /// recorded earlier (as in `concord audit show`).
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// A version `LABEL@DIGEST` recorded in the audit log (default: the active one).
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Say what a partner would receive of an object and why, rule by rule: the same
    /// decision the TAXII and export doors make (nothing is sent, nothing is audited).
    Explain {
        #[command(flatten)]
        data: DataDirArg,
        /// The partner's name.
        #[arg(long, value_name = "P")]
        partner: String,
        /// Only in this collection (alias or id; default: every collection holding the object).
        #[arg(long, value_name = "C")]
        collection: Option<String>,
        /// The door to explain for, as the audit log names it (`taxii-objects`, `export`,
        /// `sync-push`, `feed-suricata`, `webhook`, `stream`, `api-match`…): an agreement's
        /// permitted actions and the PAP gate apply to the automated doors.
        #[arg(long, value_name = "DOOR", default_value = "taxii-objects")]
        door: String,
        /// The object's id (its newest version is explained).
        object_id: String,
        /// Print one JSON document on stdout (with the partner's copy as `body`).
        #[arg(long)]
        json: bool,
    },
    /// Print the node's important-data marking definition (STIX JSON; created on first
    /// use): objects marked with it never leave for a partner across a border. Import it
    /// into a collection so that producers can reference it.
    Marking {
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// Runs a `policy` subcommand; `explain` answers `Ok(false)` (exit 1) when the partner would
/// receive nothing.
pub fn run(command: PolicyCommand) -> Result<bool> {
    match command {
        PolicyCommand::Show {
            data,
            version,
            json,
        } => show(&data, version.as_deref(), json),
        PolicyCommand::Explain {
            data,
            partner,
            collection,
            door,
            object_id,
            json,
        } => explain_object(
            &data,
            &partner,
            collection.as_deref(),
            &door,
            &object_id,
            json,
        ),
        PolicyCommand::Marking { data } => {
            let store = crate::open_store(&data)?;
            let j = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
            let marking = important_data_marking(store.as_ref(), j.as_deref())?;
            if marking.is_null() {
                bail!("no randomness to create the node's important-data marking");
            }
            out!("{marking}");
            Ok(true)
        }
    }
}

/// The node's policy: the configuration's `[policy]` section over the store.
pub fn load(data: &DataDirArg, store: &dyn Store) -> Result<Policy> {
    let config = Config::load(&data.data_dir)?;
    Ok(node_policy(store, &config.policy)?)
}

fn show(data: &DataDirArg, version: Option<&str>, json: bool) -> Result<bool> {
    let store = crate::open_store(data)?;
    let active = load(data, store.as_ref())?;
    let shown = concord_admin::ops::show_policy(store.as_ref(), &active, version)?;
    if json {
        out!("{}", serde_json::to_value(&shown)?);
    } else {
        out!("# policy version {}", shown.version);
        let mut table = toml::Table::new();
        table.insert(
            "policy".into(),
            toml::Value::try_from(&shown.policy).context("policy as TOML")?,
        );
        out_raw!("{}", toml::to_string(&table).context("policy as TOML")?);
    }
    Ok(true)
}

fn explain_object(
    data: &DataDirArg,
    partner: &str,
    collection: Option<&str>,
    door: &str,
    object_id: &str,
    json: bool,
) -> Result<bool> {
    let store = crate::open_store(data)?;
    let policy = load(data, store.as_ref())?;
    let version = policy.version.clone();
    let egress = concord_egress::Egress::new(store.clone(), std::sync::Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
    let e = concord_admin::ops::explain_at(
        store.as_ref(),
        &egress,
        &version,
        partner,
        collection,
        object_id,
        door,
    )?;
    if json {
        out!("{}", serde_json::to_value(&e)?);
    } else {
        out!(
            "policy {} for partner {partner} at door {door}",
            e.policy_version
        );
        for c in &e.collections {
            let name = c.alias.as_deref().unwrap_or(&c.collection);
            out!(
                "\n{object_id} (modified {}) in collection {name}:",
                c.modified
            );
            for s in &c.steps {
                out!("  {:<18} {}", s.rule, s.detail);
            }
            match &c.reason {
                Some(r) => out!("  => {}: {r}", c.decision),
                None => out!("  => {}", c.decision),
            }
            if let (Some(b), "rewritten") = (&c.body_text, c.decision.as_str()) {
                out!("  {b}");
            }
        }
    }
    Ok(e.receives())
}
