//! `concord invite`, `concord join` and `concord partner preview` (issue 19, item 1): the
//! operations of [`concord_admin::join`], with the node's configuration and key, printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use concord_admin::join::{self, JoinFailure, NodeSelf};
use concord_admin::ops::{AdminError, PeerFiles};
use concord_store::Store;
use concord_sync::join::FlowCount;

use crate::DataDirArg;
use crate::config::Config;

/// `concord invite`.
#[derive(Args)]
pub struct InviteArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// The name the invited organisation gets as a partner of this node.
    #[arg(long, value_name = "NAME")]
    partner: String,
    /// Its jurisdiction, ISO 3166-1 alpha-2 (e.g. DE, CN, SA).
    #[arg(long, value_name = "CC")]
    jurisdiction: String,
    /// A collection (alias or id) it may read (repeatable).
    #[arg(long = "read", value_name = "C")]
    read: Vec<String>,
    /// A collection (alias or id) it may write (repeatable).
    #[arg(long = "write", value_name = "C")]
    write: Vec<String>,
    /// A sharing group it joins (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// How long the invitation admits a join: a number and a unit, s, m, h or d (1 minute
    /// to 90 days).
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    expires: String,
    /// The URL partners reach this node at (default: public_url of concord.toml).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The invitation file to write (mode 0600: it holds the one-time secret).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Print one JSON document on stdout (the invitation's id, partner and expiry).
    #[arg(long)]
    json: bool,
}

/// `concord join`.
#[derive(Args)]
pub struct JoinArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// The invitation file.
    invitation: PathBuf,
    /// The inviting organisation's name here, as partner and peer (default: its
    /// identity's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Its jurisdiction as recorded here (default: the invitation's).
    #[arg(long, value_name = "CC")]
    jurisdiction: Option<String>,
    /// `REMOTE[:LOCAL]`: pull an offered collection (id, alias or title) into a local one
    /// (alias or id; created when missing; default the remote alias) (repeatable). Without
    /// --pull and --push: every collection offered for reading, each into its alias.
    #[arg(long = "pull", value_name = "REMOTE[:LOCAL]")]
    pull: Vec<String>,
    /// `LOCAL:REMOTE`: push a local collection into an offered one (repeatable).
    #[arg(long = "push", value_name = "LOCAL:REMOTE")]
    push: Vec<String>,
    /// Exchange mutual TLS client certificates: each node that calls the other gets a
    /// self-signed client certificate (its key stays in this node's peer_files_dir), and
    /// each binds the other's API key to the other's certificate. Both nodes must serve TLS.
    #[arg(long)]
    mtls: bool,
    /// Seconds the exchange may take.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// `7d`, `12h`, `30m`, `90s` (or plain seconds) in seconds.
fn duration_secs(text: &str) -> Result<u64> {
    let t = text.trim();
    let (n, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = n
        .parse()
        .with_context(|| format!("--expires {text:?}: expected a number and s, m, h or d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--expires {text:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(unit))
}

/// The node as invitations and joins present it.
pub(crate) fn node_self(data: &DataDirArg, store: &dyn Store) -> Result<(NodeSelf, Config)> {
    let config = Config::load(&data.data_dir)?;
    let key = crate::audit::node_key(&data.data_dir, store)?;
    let tls_certificate = if config.tls_cert.is_empty() {
        None
    } else {
        let pem = std::fs::read(&config.tls_cert)
            .with_context(|| format!("tls_cert {}", config.tls_cert))?;
        concord_sync::join::first_certificate_der(&pem)
            .with_context(|| format!("tls_cert {}: no PEM certificate", config.tls_cert))?;
        // The chain as configured: its first certificate is what the pin names.
        Some(
            String::from_utf8(pem)
                .with_context(|| format!("tls_cert {}: not UTF-8", config.tls_cert))?,
        )
    };
    let me = NodeSelf {
        key: Arc::new(key),
        title: config.title.clone(),
        contact: config.contact.clone(),
        public_url: Some(config.public_url.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty()),
        api_root: format!("/{}/", config.api_root),
        tls_certificate,
        // The node's jurisdiction as its policy applies it (`init --jurisdiction`).
        jurisdiction: crate::policy::load(data, store)?.config.jurisdiction,
    };
    Ok((me, config))
}

/// Writes `text` to `path`, readable by its owner only (it holds a secret).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `concord invite`.
pub fn invite(args: InviteArgs) -> Result<bool> {
    let store = crate::open_store(&args.data)?;
    let (me, _) = node_self(&args.data, store.as_ref())?;
    // Four-eyes release: the join of an invitation that offers a cross-border partner reads
    // or groups opens an approval requested by whoever made the invitation, so that one
    // must be a person, as for `partner add` (else one person could invite anonymously and
    // approve under a name).
    let no_person = crate::approval::with_release(&args.data, store.as_ref(), |r, _| {
        let cross_border = r
            .jurisdiction()
            .is_none_or(|j| !j.eq_ignore_ascii_case(&args.jurisdiction));
        let offers = !(args.read.is_empty() && args.groups.is_empty());
        (r.four_eyes && cross_border && offers && !r.acts_as_person()).then(|| r.person.to_owned())
    })?;
    if let Some(person) = no_person {
        eprintln!(
            "error: four-eyes release: an invitation that offers a cross-border partner reads or \
             groups must be made by a named person, and {person} is none on this node (act as a \
             named releaser: --as NAME; or set [release] unnamed_persons = true)"
        );
        return Ok(false);
    }
    let new = join::NewInvitation {
        partner: args.partner,
        jurisdiction: args.jurisdiction,
        read: args.read,
        write: args.write,
        groups: args.groups,
        expires_secs: duration_secs(&args.expires)?,
        url: args.url,
    };
    let file = match join::invite(store.as_ref(), &me, &new) {
        Ok(f) => f,
        Err(e @ (AdminError::Store(_) | AdminError::Internal(_))) => return Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(false);
        }
    };
    // Who made it: with four-eyes release, the requester of the approval its join opens.
    store.set_setting(
        &join::requester_setting(&file.invitation.id),
        &crate::users::actor().audit_name(),
    )?;
    let text = serde_json::to_string_pretty(&file)?;
    write_private(&args.output, &format!("{text}\n"))?;
    let inv = &file.invitation;
    if args.json {
        out!(
            "{}",
            serde_json::json!({
                "invitation": inv.id,
                "partner": inv.partner,
                "url": inv.url,
                "expires": inv.expires,
                "file": args.output,
            })
        );
    } else {
        eprintln!(
            "invitation {} for partner {:?} written to {} (expires {}); give the file to the \
             partner by a channel you trust: it holds a one-time secret",
            inv.id,
            inv.partner,
            args.output.display(),
            inv.expires
        );
    }
    Ok(true)
}

fn print_preview(preview: &[FlowCount]) {
    for f in preview {
        let what = if f.direction == "push" {
            "this node pushes"
        } else {
            "the partner serves"
        };
        out!(
            "{:<5} {:<24} {:>8} objects{}  ({what})",
            f.direction,
            f.title,
            f.objects,
            if f.withheld > 0 {
                format!(", {} withheld by policy", f.withheld)
            } else {
                String::new()
            }
        );
    }
}

/// Runs `concord join`.
pub fn join(args: JoinArgs) -> Result<bool> {
    let text = match std::fs::read(&args.invitation) {
        Ok(bytes) if bytes.len() <= concord_sync::join::MAX_DOCUMENT_BYTES => {
            String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "{}: malformed invitation: not UTF-8",
                    args.invitation.display()
                )
            })
        }
        Ok(_) => Err(anyhow::anyhow!(
            "{}: malformed invitation: over {} bytes",
            args.invitation.display(),
            concord_sync::join::MAX_DOCUMENT_BYTES
        )),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", args.invitation.display()));
        }
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(false);
        }
    };
    let store = crate::open_store(&args.data)?;
    let (me, config) = node_self(&args.data, store.as_ref())?;
    let policy = crate::policy::load(&args.data, store.as_ref())?;
    let egress = concord_egress::Egress::new(store.clone(), Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
    let files = PeerFiles {
        within: Some(config.peer_files_dir(&args.data.data_dir)),
        refused: config.own_files(&args.data.data_dir),
    };
    let options = join::JoinOptions {
        name: args.name,
        jurisdiction: args.jurisdiction,
        pull: args.pull,
        push: args.push,
        timeout_secs: args.timeout,
        mtls: args.mtls,
        outbound: config.outbound()?,
    };
    let joined = match join::join(store.as_ref(), &egress, &me, &files, &text, &options) {
        Ok(j) => j,
        Err(JoinFailure::Admin(e @ (AdminError::Store(_) | AdminError::Internal(_)))) => {
            return Err(e.into());
        }
        Err(e) => {
            eprintln!("error: {}: {e}", args.invitation.display());
            return Ok(false);
        }
    };
    if args.json {
        out!("{}", serde_json::to_value(&joined)?);
    } else {
        eprintln!(
            "joined {} as {:?}: partner and peer {:?} created here (node key {})",
            joined.url, joined.known_there_as, joined.partner, joined.node_key
        );
        for c in &joined.created_collections {
            eprintln!("created collection {c}");
        }
        if let Some(note) = &joined.note {
            eprintln!("the inviting node says: {note}");
        }
        eprintln!("what will flow in the first round, after the egress policies:");
        print_preview(&joined.preview);
        eprintln!("next: concord sync --peer {}", joined.partner);
    }
    Ok(true)
}

/// Runs `concord partner preview`.
pub fn preview(data: &DataDirArg, name: &str, json: bool) -> Result<bool> {
    let store = crate::open_store(data)?;
    let policy = crate::policy::load(data, store.as_ref())?;
    let egress = concord_egress::Egress::new(store.clone(), Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
    let flows = match join::preview(store.as_ref(), &egress, name) {
        Ok(f) => f,
        Err(e @ AdminError::NotFound(_)) => {
            eprintln!("error: {e}");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        out!(
            "{}",
            serde_json::json!({ "partner": name, "preview": flows })
        );
    } else {
        print_preview(&flows);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("7d").unwrap(), 604_800);
        assert_eq!(duration_secs("12h").unwrap(), 43_200);
        assert_eq!(duration_secs("90").unwrap(), 90);
        assert!(duration_secs("7w").is_err());
        assert!(duration_secs("d").is_err());
    }
}
