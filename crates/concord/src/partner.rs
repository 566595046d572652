//! `concord partner …` and `concord collection share`: who may read what, and how a
//! collection is shared (issue 5, items 1 and 2).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use concord_policy::egress::{CollectionSharing, sharing_setting_key};
use concord_policy::tlp::Tlp;
use concord_store::{Partner, Store};

use crate::DataDirArg;

/// `concord partner …`.
#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Create a partner with an API key (shown once).
    Add {
        #[command(flatten)]
        data: DataDirArg,
        /// Unique name of the organisation.
        name: String,
        /// Its jurisdiction, ISO 3166-1 alpha-2 (e.g. DE, CN, SA).
        #[arg(long)]
        jurisdiction: String,
        /// A sharing group it belongs to (repeatable).
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// A collection (alias or id) it may read (repeatable).
        #[arg(long = "read", value_name = "C")]
        read: Vec<String>,
        /// A collection (alias or id) it may write (repeatable).
        #[arg(long = "write", value_name = "C")]
        write: Vec<String>,
        /// Print one JSON document on stdout (the key as `api_key`).
        #[arg(long)]
        json: bool,
    },
    /// List partners.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one partner.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a partner; its key stops working within seconds on every serve process.
    Remove {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
    },
    /// Give a partner a new API key (shown once); the old one stops working.
    RotateKey {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout (the key as `api_key`).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `partner` subcommand.
pub fn run(command: PartnerCommand) -> Result<bool> {
    match command {
        PartnerCommand::Add {
            data,
            name,
            jurisdiction,
            groups,
            read,
            write,
            json,
        } => {
            let store = crate::open_store(&data)?;
            if store.partners()?.iter().any(|p| p.name == name) {
                bail!("a partner named {name:?} already exists");
            }
            let jurisdiction = jurisdiction_code(&jurisdiction)?;
            let (key, key_id, key_hash) =
                concord_server::auth::new_api_key().map_err(anyhow::Error::msg)?;
            let partner = Partner {
                read: collection_ids(store.as_ref(), &read)?,
                write: collection_ids(store.as_ref(), &write)?,
                name,
                jurisdiction,
                groups,
                key_id,
                key_hash,
                created_ns: concord_stix::Timestamp::now_micros().unix_nanos(),
            };
            store.put_partner(&partner)?;
            print_key(&partner, &key, json);
            Ok(true)
        }
        PartnerCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            let partners = store.partners()?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(partners.iter().map(public).collect())
                );
            } else {
                for p in &partners {
                    println!(
                        "{}\t{}\tgroups: {}",
                        p.name,
                        p.jurisdiction,
                        p.groups.join(",")
                    );
                }
            }
            Ok(true)
        }
        PartnerCommand::Show { data, name, json } => {
            let store = crate::open_store(&data)?;
            let p = find(store.as_ref(), &name)?;
            if json {
                println!("{}", public(&p));
            } else {
                // Collections by alias, as they were given (issue 24, item 13: UUIDs).
                let names = |ids: &[String]| -> Result<String> {
                    let mut out = Vec::new();
                    for id in ids {
                        out.push(match store.collection(id)? {
                            Some(c) => c.alias.unwrap_or(c.id),
                            None => id.clone(),
                        });
                    }
                    Ok(out.join(", "))
                };
                println!(
                    "name: {}\njurisdiction: {}\ngroups: {}\nread: {}\nwrite: {}\nkey id: {}",
                    p.name,
                    p.jurisdiction,
                    p.groups.join(", "),
                    names(&p.read)?,
                    names(&p.write)?,
                    p.key_id
                );
            }
            Ok(true)
        }
        PartnerCommand::Remove { data, name } => {
            let store = crate::open_store(&data)?;
            if !store.remove_partner(&name)? {
                bail!("no partner named {name:?}");
            }
            eprintln!("removed partner {name}");
            Ok(true)
        }
        PartnerCommand::RotateKey { data, name, json } => {
            let store = crate::open_store(&data)?;
            let mut p = find(store.as_ref(), &name)?;
            let (key, key_id, key_hash) =
                concord_server::auth::new_api_key().map_err(anyhow::Error::msg)?;
            p.key_id = key_id;
            p.key_hash = key_hash;
            store.put_partner(&p)?;
            print_key(&p, &key, json);
            Ok(true)
        }
    }
}

fn find(store: &dyn Store, name: &str) -> Result<Partner> {
    store
        .partners()?
        .into_iter()
        .find(|p| p.name == name)
        .with_context(|| format!("no partner named {name:?}"))
}

/// A partner as shown: everything but the key hash.
fn public(p: &Partner) -> serde_json::Value {
    serde_json::json!({
        "name": p.name, "jurisdiction": p.jurisdiction, "groups": p.groups,
        "read": p.read, "write": p.write, "key_id": p.key_id,
    })
}

fn print_key(p: &Partner, key: &str, json: bool) {
    if json {
        let mut doc = public(p);
        doc["api_key"] = key.into();
        println!("{doc}");
    } else {
        eprintln!(
            "API key of {} (shown once; use as Bearer token or Basic password):",
            p.name
        );
        println!("{key}");
    }
}

/// ISO 3166-1 alpha-2 shape: two ASCII letters, kept upper case.
pub fn jurisdiction_code(code: &str) -> Result<String> {
    let c = code.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!("jurisdiction {code:?}: expected an ISO 3166-1 alpha-2 code such as DE or CN");
    }
    Ok(c)
}

/// Collection aliases or ids → ids; an unknown one is an error naming it.
fn collection_ids(store: &dyn Store, names: &[String]) -> Result<Vec<String>> {
    names
        .iter()
        .map(|n| {
            store.collection(n)?.map(|c| c.id).with_context(|| {
                format!("no collection {n:?} (create it first, e.g. by an import)")
            })
        })
        .collect()
}

/// The sharing of a collection (defaults when never set).
pub fn sharing(store: &dyn Store, collection_id: &str) -> Result<CollectionSharing> {
    Ok(concord_egress::collection_sharing(store, collection_id)?)
}

/// `concord collection share`: sets how a collection is shared.
pub fn share(
    store: &dyn Store,
    collection: &str,
    default_tlp: Option<&str>,
    groups: &[String],
    community: bool,
    recipients: &[String],
    json: bool,
) -> Result<bool> {
    let c = store
        .collection(collection)?
        .with_context(|| format!("no collection {collection:?}"))?;
    let mut s = sharing(store, &c.id)?;
    if let Some(t) = default_tlp {
        s.default_tlp = Tlp::parse(t).with_context(|| {
            format!("--default-tlp {t:?}: expected clear, green, amber, amber+strict or red")
        })?;
    }
    if community {
        s.groups = None;
    } else if !groups.is_empty() {
        s.groups = Some(groups.to_vec());
    }
    if !recipients.is_empty() {
        s.recipients = recipients.to_vec();
    }
    store.set_setting(&sharing_setting_key(&c.id), &s.to_json())?;
    if json {
        println!("{}", s.to_json());
    } else {
        eprintln!(
            "collection {collection}: default {}, GREEN shared with {}, AMBER recipients: {}",
            s.default_tlp.label(),
            s.groups
                .as_ref()
                .map_or("the whole community".to_owned(), |g| g.join(", ")),
            if s.recipients.is_empty() {
                "none".to_owned()
            } else {
                s.recipients.join(", ")
            }
        );
    }
    Ok(true)
}
