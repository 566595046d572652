//! `concord policy show|explain|marking`: the egress policy as data (issue 5, items 5–6).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use concord_policy::actions::{Policy, PolicyConfig};
use concord_policy::egress::Decision;
use concord_server::policy::{POLICY_VERSION_PREFIX, important_data_marking, node_policy};
use concord_store::{ObjectFilter, PageRequest, Store, VersionSelector};

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
            object_id,
            json,
        } => explain_object(&data, &partner, collection.as_deref(), &object_id, json),
        PolicyCommand::Marking { data } => {
            let store = crate::open_store(&data)?;
            let j = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
            let marking = important_data_marking(store.as_ref(), j.as_deref())?;
            if marking.is_null() {
                bail!("no randomness to create the node's important-data marking");
            }
            println!("{marking}");
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
    let (version, config) = match version {
        None => {
            let p = load(data, store.as_ref())?;
            (p.version, p.config)
        }
        Some(v) => {
            let text = store
                .setting(&format!("{POLICY_VERSION_PREFIX}{v}"))?
                .with_context(|| format!("no policy version {v:?} recorded on this node"))?;
            let config: PolicyConfig = serde_json::from_str(&text)
                .with_context(|| format!("policy version {v:?}: unreadable record"))?;
            (v.to_owned(), config)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"version": version, "policy": config})
        );
    } else {
        println!("# policy version {version}");
        let mut table = toml::Table::new();
        table.insert(
            "policy".into(),
            toml::Value::try_from(&config).context("policy as TOML")?,
        );
        print!("{}", toml::to_string(&table).context("policy as TOML")?);
    }
    Ok(true)
}

fn explain_object(
    data: &DataDirArg,
    partner: &str,
    collection: Option<&str>,
    object_id: &str,
    json: bool,
) -> Result<bool> {
    let store = crate::open_store(data)?;
    let policy = load(data, store.as_ref())?;
    let egress = concord_egress::Egress::new(store.clone(), std::sync::Arc::new(policy.clone()));
    let p = store
        .partners()?
        .into_iter()
        .find(|p| p.name == partner)
        .with_context(|| format!("no partner named {partner:?}"))?;
    let collections = match collection {
        Some(c) => vec![
            store
                .collection(c)?
                .with_context(|| format!("no collection {c:?}"))?,
        ],
        None => store.collections()?,
    };
    let filter = ObjectFilter {
        ids: vec![object_id.to_owned()],
        versions: vec![VersionSelector::Last],
        ..ObjectFilter::default()
    };
    let request = PageRequest {
        limit: 1,
        after: None,
    };
    let mut out = Vec::new();
    let mut receives = false;
    for c in collections {
        let Some(entry) = store
            .entries(&c.id, &filter, &request, true)?
            .entries
            .into_iter()
            .next()
        else {
            continue;
        };
        let name = c.alias.clone().unwrap_or_else(|| c.id.clone());
        let body = entry.body.as_deref().unwrap_or("null");
        let view = concord_server::policy::explain_for_partner(&egress, &p, &c, &entry)?;
        let steps = view.steps;
        let (decision, copy, reason) = match &view.decision {
            Decision::Unchanged => ("sent", Some(body.to_owned()), None),
            Decision::Rewritten { body, .. } => ("rewritten", Some(body.clone()), None),
            Decision::Withheld { reason } => ("withheld", None, Some(reason.clone())),
        };
        receives |= copy.is_some();
        out.push((c, name, entry.version(), decision, copy, reason, steps));
    }
    if out.is_empty() {
        bail!("no collection holds an object {object_id:?}");
    }
    if json {
        let items: Vec<_> = out
            .iter()
            .map(|(c, _, version, decision, copy, reason, steps)| {
                serde_json::json!({
                    "collection": c.id,
                    "alias": c.alias,
                    "modified": version,
                    "decision": decision,
                    "reason": reason,
                    "steps": steps,
                    "body": copy.as_deref().map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap_or_default()),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "partner": partner,
                "object_id": object_id,
                "policy_version": policy.version,
                "collections": items,
            })
        );
    } else {
        println!("policy {} for partner {partner}", policy.version);
        for (_, name, version, decision, copy, reason, steps) in &out {
            println!("\n{object_id} (modified {version}) in collection {name}:");
            for s in steps {
                println!("  {:<18} {}", s.rule, s.detail);
            }
            match reason {
                Some(r) => println!("  => {decision}: {r}"),
                None => println!("  => {decision}"),
            }
            if let (Some(b), "rewritten") = (copy, *decision) {
                println!("  {b}");
            }
        }
    }
    Ok(receives)
}
