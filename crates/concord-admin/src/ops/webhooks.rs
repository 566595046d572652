//! Webhooks (issue 21, item 2; issue 23, item 1): add, list, show, remove and retry, one
//! function each, called by `concord webhook …` and by the admin API, so that both check
//! the same rules (a URL without credentials, a secret file that is none of the node's
//! own, a partner that may read each collection) and answer the same JSON (`--json`).
//!
//! A webhook's record holds the *path* of its HMAC key file, never the key: nothing here
//! returns a secret. Each `add` is a new generation ([`concord_sync::webhook::save`]): what
//! an earlier one queued or dead-lettered is never sent under the new one.
//!
//! Errors name the input in the caller's words ([`Names`]): the CLI's flags
//! (`--secret-file`), the API's JSON fields (`secret_file`).

use concord_store::Store;
use concord_sync::webhook::{self, Webhook, WebhookError};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{AdminError, PeerFiles, Result};

impl From<WebhookError> for AdminError {
    fn from(e: WebhookError) -> Self {
        match e {
            // A rule of the webhook's own (name, URL, key file): the message names it.
            WebhookError::Config { .. } => AdminError::Invalid(e.to_string()),
            WebhookError::Store(s) => s.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// An input of `add`, named by each front end its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The receiver's key file.
    SecretFile,
    /// The key itself (admin API only).
    Secret,
    /// The partner whose egress policy applies.
    Partner,
    /// A collection followed.
    Collection,
}

/// How a front end names the inputs of `add` in its messages.
pub type Names = fn(Input) -> &'static str;

/// The admin API's names: its JSON fields.
pub fn json_names(i: Input) -> &'static str {
    match i {
        Input::SecretFile => "secret_file",
        Input::Secret => "secret",
        Input::Partner => "partner",
        Input::Collection => "collections",
    }
}

/// A webhook to add (`concord webhook add`): objects added from now on to the collections
/// followed are POSTed, signed, to `url`. Adding a name that exists replaces it (a new
/// generation: its queue, cursors and dead letters start afresh).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Unique name on this node (1 to 64 letters, digits, `-`, `_`, `.`); sent in each
    /// body.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// The receiver: an `http://` or `https://` URL, without credentials
    /// (`user:password@`); the receiver checks the `X-Concord-Signature` HMAC instead.
    #[schema(pattern = "^https?://")]
    pub url: String,
    /// The file holding the HMAC-SHA-256 key (at least 16 bytes): over the admin API inside
    /// `peer_files_dir` (absolute or relative to it), never one of the node's own secret
    /// files. Not with `secret`.
    #[serde(default)]
    pub secret_file: Option<String>,
    /// The key itself (admin API only; not with `secret_file`): 16 to 4096 bytes, written
    /// to a file of `peer_files_dir` (mode 0600) whose path is stored. Write-only: never
    /// answered.
    #[serde(default)]
    #[schema(write_only, min_length = 16, max_length = 4096)]
    pub secret: Option<String>,
    /// Send what this partner would receive (its egress policy); absent: the operator's
    /// webhook, which sends the stored objects.
    #[serde(default)]
    pub partner: Option<String>,
    /// Collections followed (alias or id); empty: every collection (a partner's: those it
    /// may read).
    #[serde(default)]
    pub collections: Vec<String>,
    /// STIX types sent; empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
}

/// Adds (or replaces) a webhook and returns it as stored (what `webhook add --json`
/// prints). `files` says which key files it may name and where an inline key goes (the
/// CLI: any file but the node's own; the API: inside `peer_files_dir`). Errors: not found,
/// the partner or a collection; invalid, a rule broken (name, URL, credentials in the URL,
/// a collection the partner may not read, the key file outside, one of the node's own,
/// unreadable or under 16 bytes, both or neither of `secret` and `secret_file`). A refused
/// webhook writes nothing.
pub fn add_webhook(
    store: &dyn Store,
    new: &NewWebhook,
    files: &PeerFiles,
    names: Names,
) -> Result<Webhook> {
    let readable = match &new.partner {
        Some(p) => Some(
            store
                .partners()?
                .into_iter()
                .find(|x| &x.name == p)
                .ok_or_else(|| {
                    AdminError::NotFound(format!("{} {p}: no such partner", names(Input::Partner)))
                })?
                .read,
        ),
        None => None,
    };
    let mut ids = Vec::new();
    for c in &new.collections {
        let found = store.collection(c)?.ok_or_else(|| {
            AdminError::NotFound(format!(
                "{} {c}: no such collection",
                names(Input::Collection)
            ))
        })?;
        if let Some(read) = &readable
            && !read.contains(&found.id)
        {
            return Err(AdminError::Invalid(format!(
                "{} {c}: partner {} may not read it (concord partner add --read)",
                names(Input::Collection),
                new.partner.as_deref().unwrap_or_default()
            )));
        }
        ids.push(found.id);
    }
    let mut hook = Webhook {
        name: new.name.clone(),
        url: new.url.clone(),
        secret_file: String::new(),
        partner: new.partner.clone(),
        collections: ids,
        types: new.types.clone(),
        since_ns: concord_store::Timestamp::now_micros().unix_nanos(),
        generation: String::new(),
        partner_key: None,
    };
    webhook::check_name_and_url(&hook)?;
    let (file, secret) = (names(Input::SecretFile), names(Input::Secret));
    hook.secret_file = match (&new.secret_file, &new.secret) {
        (Some(_), Some(_)) => {
            return Err(AdminError::Invalid(format!(
                "{secret} and {file}: give one"
            )));
        }
        (None, None) => {
            return Err(AdminError::Invalid(format!(
                "{file}: required (the HMAC key the receiver checks)"
            )));
        }
        // The key goes to the receiver: never one of the node's own secrets.
        (Some(path), None) => files.check(file, path)?,
        (None, Some(key)) => {
            if key.trim().len() < 16 {
                return Err(AdminError::Invalid(format!(
                    "{secret}: the key must have at least 16 bytes"
                )));
            }
            // Written last, once every other rule holds.
            files.write_secret_of("webhook", secret, &new.name, "secret", key)?
        }
    };
    Ok(webhook::save(store, &hook)?)
}

/// Every webhook, by name (`webhook list --json`): configurations, key files as paths.
pub fn list_webhooks(store: &dyn Store) -> Result<Vec<Webhook>> {
    Ok(webhook::list(store)?)
}

fn no_such(name: &str) -> AdminError {
    AdminError::NotFound(format!("webhook {name}: no such webhook"))
}

/// One webhook with its progress (`webhook show NAME --json`): `webhook` (the
/// configuration), `cursors` (per collection id: `date_added`, `id`, `version`, `seq`),
/// `last_success`, `last_error`, `delivered`, `attempts` (of the first queued delivery),
/// `queue` (ids, collections, objects, attempts, errors) and `dead_letters` (`count`,
/// `ids`, `last_errors`). Not found: no such webhook.
pub fn show_webhook(store: &dyn Store, name: &str) -> Result<Value> {
    let hook = webhook::load(store, name)?.ok_or_else(|| no_such(name))?;
    let state = webhook::load_state(store, name)?;
    let dead = webhook::dead_letters(store, name)?;
    let cursors: serde_json::Map<String, Value> = state
        .cursors
        .iter()
        .map(|(c, (ns, id, version, seq))| {
            (
                c.clone(),
                json!({
                    "date_added": concord_store::Timestamp::from_unix_nanos(*ns, 9).to_string(),
                    "id": id, "version": version, "seq": seq,
                }),
            )
        })
        .collect();
    Ok(json!({
        "webhook": hook,
        "cursors": cursors,
        "last_success": state.last_success,
        "last_error": state.last_error,
        "delivered": state.delivered,
        "attempts": state.queue.first().map_or(0, |d| d.attempts),
        "queue": state.queue.iter().map(|d| json!({
            "id": d.id, "collection": d.collection, "objects": d.objects,
            "attempts": d.attempts, "last_error": d.last_error,
        })).collect::<Vec<_>>(),
        "dead_letters": {
            "count": dead.len(),
            "ids": dead.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
            "last_errors": dead.iter().map(|d| d.last_error.clone()).collect::<Vec<_>>(),
        },
    }))
}

/// Removes a webhook (`webhook remove`): its queue and dead letters are forgotten, and a
/// delivery of it in flight is not sent. Not found: no such webhook.
pub fn remove_webhook(store: &dyn Store, name: &str) -> Result<()> {
    if webhook::remove(store, name)? {
        Ok(())
    } else {
        Err(no_such(name))
    }
}

/// POSTs each dead letter of a webhook once, oldest first (`webhook retry --json`):
/// `delivered` (ids, removed) and `failed` (`[id, error]`, kept). Blocks for up to
/// `opts.timeout` per letter. Not found: no such webhook.
pub fn retry_webhook(
    store: &dyn Store,
    name: &str,
    opts: &webhook::Options,
) -> Result<webhook::RetryReport> {
    if webhook::load(store, name)?.is_none() {
        return Err(no_such(name));
    }
    Ok(webhook::retry_dead(store, name, opts)?)
}
