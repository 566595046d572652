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
    /// Create a partner with an API key (shown once). With `[release] four_eyes`, a
    /// cross-border partner is created without the reads and groups that widen what it
    /// receives; they wait as a pending approval (its id printed) for a second releaser.
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
        /// Print one JSON document on stdout (the key as `api_key`, a pending approval as
        /// `pending_approval`).
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
    /// Show one partner's directory entry: organisation, contacts, grants, keys with
    /// fingerprints, agreement, last activity.
    Show {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Change a partner's grants, groups or jurisdiction in place; its API key stays.
    /// Audited; every serve process applies it at the partner's next request.
    Update {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// New jurisdiction, ISO 3166-1 alpha-2.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// A collection (alias or id) it may now read (repeatable).
        #[arg(long = "read", value_name = "C")]
        read: Vec<String>,
        /// A collection it may no longer read (repeatable).
        #[arg(long = "no-read", value_name = "C")]
        no_read: Vec<String>,
        /// A collection it may now write (repeatable).
        #[arg(long = "write", value_name = "C")]
        write: Vec<String>,
        /// A collection it may no longer write (repeatable).
        #[arg(long = "no-write", value_name = "C")]
        no_write: Vec<String>,
        /// A sharing group it joins (repeatable).
        #[arg(long = "group", value_name = "G")]
        group: Vec<String>,
        /// A sharing group it leaves (repeatable).
        #[arg(long = "no-group", value_name = "G")]
        no_group: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Give a partner directory fields: its STIX identity, a contact, its node key, its
    /// client certificate's SHA-256. Audited.
    Set {
        #[command(flatten)]
        data: DataDirArg,
        /// Its name.
        name: String,
        /// A file with its organisation as a STIX 2.1 identity object (JSON).
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
        /// How to reach it (the identity's contact_information).
        #[arg(long, value_name = "TEXT")]
        contact: Option<String>,
        /// Its node's Ed25519 public key, 64 hex digits (`concord node key` on its node).
        #[arg(long, value_name = "HEX")]
        node_key: Option<String>,
        /// SHA-256 of its mTLS client certificate (DER), 64 hex digits.
        #[arg(long, value_name = "HEX")]
        client_cert_sha256: Option<String>,
        /// Print one JSON document on stdout (its directory entry).
        #[arg(long)]
        json: bool,
    },
    /// A sharing group's directory shared between its nodes as STIX identities.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Remove a partner; its key stops working at its next request on every serve process.
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

/// `concord partner directory …`.
#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Write this node's identity and each member's of group G into collection C (created
    /// when absent), through the ingest, audited; members read it over TAXII.
    Publish {
        #[command(flatten)]
        data: DataDirArg,
        /// The sharing group.
        #[arg(long, value_name = "G")]
        group: String,
        /// The collection (alias or id) to write into.
        #[arg(long, value_name = "C")]
        collection: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Fill known partners' identities from the identities of collection C (e.g. pulled from
    /// a group member) or of a bundle file: matched by identity id, then
    /// `x_concord_node_key`, then name. Audited.
    Import {
        #[command(flatten)]
        data: DataDirArg,
        /// The collection (alias or id) to read.
        #[arg(
            long,
            value_name = "C",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        collection: Option<String>,
        /// A STIX 2.1 bundle file to read instead.
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn directory(command: DirectoryCommand) -> Result<bool> {
    match command {
        DirectoryCommand::Publish {
            data,
            group,
            collection,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let config = crate::config::Config::load(&crate::data_dir(&data).dir)?;
            let jurisdiction = store.setting(concord_server::policy::JURISDICTION_SETTING)?;
            let person = crate::users::actor().audit_name();
            let node = concord_coordination::Node {
                store: store.as_ref(),
                max_object_size: config.max_object_size,
                title: &config.title,
                jurisdiction: jurisdiction.as_deref(),
                person: Some(&person),
            };
            // The node key, so that members match this node's identity by it.
            let key = crate::audit::node_key(&crate::data_dir(&data).dir, store.as_ref())?;
            let p = ops::directory::publish_directory(
                &node,
                Some(&key.public_hex()),
                &group,
                &collection,
                "operator",
            )?;
            if json {
                out!("{}", serde_json::to_value(&p)?);
            } else {
                eprintln!(
                    "directory of {group} in {collection}: {} identities ({} new)",
                    p.identities.len(),
                    p.added
                );
                for r in &p.rejected {
                    eprintln!("refused: {r}");
                }
                if !p.without_identity.is_empty() {
                    eprintln!(
                        "without an identity (concord partner set NAME --identity FILE): {}",
                        p.without_identity.join(", ")
                    );
                }
            }
            Ok(p.rejected.is_empty())
        }
        DirectoryCommand::Import {
            data,
            collection,
            file,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let identities = match (&collection, &file) {
                (Some(c), _) => ops::directory::identities_in(store.as_ref(), c)?,
                (None, Some(f)) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("--file {}", f.display()))?;
                    let bundle = concord_stix::parse_object(&text)
                        .with_context(|| format!("--file {}: not JSON", f.display()))?;
                    if bundle.get("type").and_then(|t| t.as_str()) != Some("bundle") {
                        anyhow::bail!("--file {}: not a STIX 2.1 bundle (§8)", f.display());
                    }
                    bundle
                        .get("objects")
                        .and_then(|o| o.as_array())
                        .cloned()
                        .unwrap_or_default()
                }
                (None, None) => anyhow::bail!("give --collection C or --file FILE"),
            };
            let person = crate::users::actor().audit_name();
            let r = ops::directory::import_directory(
                store.as_ref(),
                &identities,
                "operator",
                Some(&person),
            )?;
            if json {
                out!("{}", serde_json::to_value(&r)?);
            } else {
                for (p, id) in &r.updated {
                    eprintln!("{p}: identity {id}");
                }
                eprintln!(
                    "{} identities read: {} set, {} unchanged, {} unmatched, {} ambiguous",
                    r.read,
                    r.updated.len(),
                    r.unchanged.len(),
                    r.unmatched.len(),
                    r.ambiguous.len()
                );
            }
            Ok(true)
        }
    }
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
            let new = ops::NewPartner {
                name,
                jurisdiction,
                groups,
                read,
                write,
            };
            // Four-eyes release: a cross-border partner's reads and groups may wait for a
            // second releaser (`[release] four_eyes`); it is created without them.
            let p = match crate::approval::with_release(&data, store.as_ref(), |r, _| {
                ops::add_partner_released(r, &new)
            })? {
                Ok(p) => p,
                Err(e) => return crate::approval::refusal(e, json),
            };
            print_key(&p, json)?;
            if !json && let Some(a) = &p.pending_approval {
                crate::approval::print_pending(a, false)?;
            }
            Ok(true)
        }
        PartnerCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            if json {
                let policy = crate::policy::load(&data, store.as_ref())?;
                let partners: Vec<_> = ops::directory::directory(store.as_ref())?
                    .into_iter()
                    .map(|e| ops::directory::with_agreement(store.as_ref(), &policy, e))
                    .collect::<std::result::Result<_, _>>()?;
                out!("{}", serde_json::to_value(&partners)?);
            } else {
                for p in &ops::list_partners(store.as_ref())? {
                    out!(
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
            let policy = crate::policy::load(&data, store.as_ref())?;
            let e = ops::directory::directory_entry(store.as_ref(), &name)?;
            let e = ops::directory::with_agreement(store.as_ref(), &policy, e)?;
            if json {
                out!("{}", serde_json::to_value(&e)?);
            } else {
                out_raw!("{}", directory_text(&e));
            }
            Ok(true)
        }
        PartnerCommand::Update {
            data,
            name,
            jurisdiction,
            read,
            no_read,
            write,
            no_write,
            group,
            no_group,
            json,
        } => {
            let store = crate::open_store(&data)?;
            let change = ops::directory::PartnerChange {
                jurisdiction,
                add_read: read,
                remove_read: no_read,
                add_write: write,
                remove_write: no_write,
                add_groups: group,
                remove_groups: no_group,
                ..Default::default()
            };
            // Four-eyes release: a change that widens what a cross-border partner receives
            // may wait for a second releaser (`[release] four_eyes`).
            let outcome = crate::approval::with_release(&data, store.as_ref(), |r, _| {
                ops::directory::update_partner(r, &name, &change, "operator")
            })?;
            let p = match crate::approval::settle(outcome, json)? {
                crate::approval::Settled::Applied(p) => p,
                crate::approval::Settled::Done(ok) => return Ok(ok),
            };
            if json {
                out!("{}", serde_json::to_value(&p)?);
            } else {
                let e = ops::directory::directory_entry(store.as_ref(), &name)?;
                eprintln!(
                    "partner {name}: jurisdiction {}; groups: {}; read: {}; write: {} (same API key)",
                    e.partner.jurisdiction,
                    none_if_empty(&e.partner.groups),
                    none_if_empty(&e.read_names),
                    none_if_empty(&e.write_names)
                );
            }
            Ok(true)
        }
        PartnerCommand::Set {
            data,
            name,
            identity,
            contact,
            node_key,
            client_cert_sha256,
            json,
        } => {
            let identity = match identity {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("--identity {}", path.display()))?;
                    Some(concord_stix::parse_object(&text).with_context(|| {
                        format!("--identity {}: not a JSON object", path.display())
                    })?)
                }
                None => None,
            };
            let store = crate::open_store(&data)?;
            let e = ops::directory::set_details(
                store.as_ref(),
                &name,
                &ops::directory::DetailsChange {
                    identity,
                    contact,
                    node_key,
                    client_cert_sha256,
                },
                "operator",
                Some(&crate::users::actor().audit_name()),
            )?;
            if json {
                out!("{}", serde_json::to_value(&e)?);
            } else {
                out_raw!("{}", directory_text(&e));
            }
            Ok(true)
        }
        PartnerCommand::Directory { command } => directory(command),
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

fn none_if_empty(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

fn time_text(ns: i64) -> String {
    concord_stix::Timestamp::from_unix_nanos(ns, 3).to_string()
}

/// `partner show`: one `key: value` line each, collections by alias, as given (issue 24,
/// item 13: no UUIDs where a name was typed).
fn directory_text(e: &ops::directory::DirectoryEntry) -> String {
    let p = &e.partner;
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push('\n');
    };
    line("name", &p.name);
    line(
        "organisation",
        e.organisation.as_deref().unwrap_or("unknown"),
    );
    line(
        "identity",
        e.identity
            .as_ref()
            .and_then(|i| i.get("id"))
            .and_then(|i| i.as_str())
            .unwrap_or("none"),
    );
    line("jurisdiction", &p.jurisdiction);
    line("groups", &none_if_empty(&p.groups));
    line("read", &none_if_empty(&e.read_names));
    line("write", &none_if_empty(&e.write_names));
    line("key id", &p.key_id);
    for k in e.keys.iter().filter(|k| k.kind != "api-key") {
        line(
            &k.kind,
            &format!("{} (fingerprint {})", k.value, k.fingerprint),
        );
    }
    for c in &e.contacts {
        let v = match &c.label {
            Some(l) => format!("{} ({l})", c.value),
            None => c.value.clone(),
        };
        line(&format!("contact {}", c.kind), &v);
    }
    line("origin", e.origin.as_deref().unwrap_or("unknown"));
    line("created", &time_text(e.created_ns));
    line(
        "updated",
        &if e.updated_ns == 0 {
            "never".to_owned()
        } else {
            time_text(e.updated_ns)
        },
    );
    // The agreement line as issue 19, item 5 has it (`agreement: ours V; …`).
    let agreement = agreement_line(&e.agreement.clone().unwrap_or_default());
    line(
        "agreement",
        agreement.strip_prefix("agreement: ").unwrap_or(&agreement),
    );
    line(
        "last activity",
        &e.last_activity_ns.map_or("never".to_owned(), time_text),
    );
    out
}

fn print_key(p: &ops::PartnerWithKey, json: bool) -> Result<()> {
    if json {
        out!("{}", serde_json::to_value(p)?);
    } else {
        eprintln!(
            "API key of {} (shown once; use as Bearer token or Basic password):",
            p.partner.name
        );
        out!("{}", p.api_key);
    }
    Ok(())
}

/// `concord collection share`: sets how a collection is shared, or, with `[release]
/// four_eyes` and a change that widens what a cross-border partner receives, keeps it as a
/// pending approval for a second releaser.
#[allow(clippy::too_many_arguments)]
pub fn share(
    data: &crate::DataDirArg,
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
    let change = ops::SharingChange {
        default_tlp,
        groups,
        recipients: Some(recipients.to_vec()).filter(|r| !r.is_empty()),
    };
    let outcome =
        crate::approval::with_release(data, store, |r, _| ops::share(r, collection, &change))?;
    let s = match crate::approval::settle(outcome, json)? {
        crate::approval::Settled::Applied(s) => s,
        crate::approval::Settled::Done(ok) => return Ok(ok),
    };
    if json {
        out!("{}", serde_json::to_value(&s)?);
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
