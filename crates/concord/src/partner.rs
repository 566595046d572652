//! `concord partner …` and `concord collection share`: who may read what, and how a
//! collection is shared (issue 5, items 1 and 2).

use anyhow::{Context, Result};
use clap::Subcommand;
use concord_admin::ops;
use concord_store::Store;

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
    /// What this node would send a partner now, per collection and direction, after the
    /// egress policy: `serve` (what its pull of each collection it may read receives) and
    /// `push` (what the next round pushes to the peers linked to it) (issue 19).
    Preview {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
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

/// Runs a `partner` subcommand: the operations of [`concord_admin::ops`], printed.
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
            let p = ops::add_partner(
                store.as_ref(),
                &ops::NewPartner {
                    name,
                    jurisdiction,
                    groups,
                    read,
                    write,
                },
            )?;
            print_key(&p, json)?;
            Ok(true)
        }
        PartnerCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            let partners = ops::list_partners(store.as_ref())?;
            if json {
                println!("{}", serde_json::to_value(&partners)?);
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
            let p = ops::PartnerInfo::from(&ops::find_partner(store.as_ref(), &name)?);
            if json {
                println!("{}", serde_json::to_value(&p)?);
            } else {
                // Which agreement version each side holds (issue 19, item 5).
                let policy = crate::policy::load(&data, store.as_ref())?;
                let versions = ops::agreement_versions(store.as_ref(), &policy, &name)?;
                println!("{}", agreement_line(&versions));
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
            ops::remove_partner(store.as_ref(), &name)?;
            eprintln!("removed partner {name}");
            Ok(true)
        }
        PartnerCommand::Preview { data, name, json } => crate::join::preview(&data, &name, json),
        PartnerCommand::RotateKey { data, name, json } => {
            let store = crate::open_store(&data)?;
            let p = ops::rotate_key(store.as_ref(), &name)?;
            print_key(&p, json)?;
            Ok(true)
        }
    }
}

/// `agreement: ours V; fetched by the partner V; the partner holds V (peer P)`, `-` for what
/// is unknown.
fn agreement_line(v: &ops::AgreementVersions) -> String {
    let or = |x: &Option<String>| x.clone().unwrap_or_else(|| "-".to_owned());
    let mut line = format!(
        "agreement: ours {}; fetched by the partner {}; the partner holds {}",
        or(&v.ours),
        or(&v.fetched_by_partner),
        or(&v.theirs)
    );
    if let Some(end) = &v.theirs_end_date {
        line.push_str(&format!(" (until {end})"));
    }
    if let Some(peer) = &v.peer {
        line.push_str(&format!(" (peer {peer})"));
    }
    line
}

fn print_key(p: &ops::PartnerWithKey, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_value(p)?);
    } else {
        eprintln!(
            "API key of {} (shown once; use as Bearer token or Basic password):",
            p.partner.name
        );
        println!("{}", p.api_key);
    }
    Ok(())
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
    // The CLI reads any spelling of a level (`AMBER`, `TLP:white`); the shared operation
    // takes the canonical one.
    let default_tlp = match default_tlp {
        Some(t) => Some(
            concord_policy::tlp::Tlp::parse(t)
                .with_context(|| {
                    format!(
                        "--default-tlp {t:?}: expected clear, green, amber, amber+strict or red"
                    )
                })?
                .label()
                .trim_start_matches("TLP:")
                .to_ascii_lowercase(),
        ),
        None => None,
    };
    let groups = if community {
        Some(None)
    } else if groups.is_empty() {
        None
    } else {
        Some(Some(groups.to_vec()))
    };
    let s = ops::share(
        store,
        collection,
        &ops::SharingChange {
            default_tlp,
            groups,
            recipients: Some(recipients.to_vec()).filter(|r| !r.is_empty()),
        },
    )?;
    if json {
        println!("{}", serde_json::to_value(&s)?);
    } else {
        eprintln!(
            "collection {collection}: default TLP:{}, GREEN shared with {}, AMBER recipients: {}",
            s.default_tlp.to_ascii_uppercase(),
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
