//! Webhooks (issue 21, item 2): the objects added to a collection, POSTed as they arrive to
//! an HTTP(S) receiver, signed like the incident notices ([`crate::notify`]).
//!
//! # Shape
//!
//! - A [`Webhook`] is a node setting (`webhook/NAME`, JSON): the receiver's URL, the file of
//!   its HMAC-SHA-256 key, the collections it follows (ids), the STIX types it takes, and the
//!   partner whose egress policy decides what it receives (`None`: the operator, who receives
//!   the stored objects).
//! - Every object goes through the egress door ([`Egress::scan_following`], door `webhook`,
//!   audited like a page), so a partner's webhook sends only what that partner would read
//!   over TAXII.
//! - Its [`WebhookState`] (`webhook_state/NAME`) holds the cursor of each collection and the
//!   queue of deliveries in one record: a page taken from the door and the cursor after it
//!   are written together, so a node killed at any moment resumes with no gap; a delivery
//!   leaves the queue only once answered 2xx (at least once: a delivery whose answer was
//!   lost is sent again under the same `X-Concord-Delivery` id, for the receiver to drop).
//! - A delivery answered otherwise is retried with exponential backoff; after
//!   [`Options::max_attempts`] it becomes a dead letter (`webhook_dead/NAME/ID`), kept until
//!   [`retry_dead`] delivers it.

use std::collections::BTreeMap;
use std::time::Duration;

use concord_egress::{Audience, Egress};
use concord_policy::egress::PartnerProfile;
use concord_store::{Cursor, ObjectFilter, Store, VersionSelector};
use serde::{Deserialize, Serialize};

use crate::notify::{NotifyError, post_signed_with};

/// The header that names a delivery (the same on each attempt).
pub const DELIVERY_HEADER: &str = "X-Concord-Delivery";
/// The door name the audit log records.
pub const DOOR: &str = "webhook";
/// The audience name of an operator's webhook in the audit log.
pub const OPERATOR: &str = "operator";

const PREFIX: &str = "webhook/";
const STATE_PREFIX: &str = "webhook_state/";
const DEAD_PREFIX: &str = "webhook_dead/";
const LEASE_PREFIX: &str = "webhook_lease/";

/// A webhook's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Unique name on this node; sent as `webhook` in each body.
    pub name: String,
    /// The receiver, an `http://` or `https://` URL. Redirects are never followed.
    pub url: String,
    /// The file holding the HMAC-SHA-256 key (at least 16 bytes once trimmed), read at each
    /// delivery.
    pub secret_file: String,
    /// The partner whose egress policy applies; `None`: the operator's webhook.
    #[serde(default)]
    pub partner: Option<String>,
    /// Collection ids followed; empty: every collection (the partner's readable ones).
    #[serde(default)]
    pub collections: Vec<String>,
    /// STIX types sent (`match[type]`); empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
    /// Only entries added after this instant (ns since the epoch, the time of `add`) are
    /// sent: a webhook receives new objects, not the collection's history.
    pub since_ns: i64,
    /// Set by [`save`]: each `add` is a new generation. Queued deliveries, dead letters and
    /// state belong to one generation and are never sent under another (another URL,
    /// audience or filter), nor after the webhook is removed.
    #[serde(default)]
    pub generation: String,
    /// The key id the partner had when the webhook was added (set by [`save`]): a partner
    /// removed and added again under the same name is another organisation, and its
    /// predecessor's webhook stops.
    #[serde(default)]
    pub partner_key: Option<String>,
}

/// One POST: a batch of objects, its body exactly as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id (`X-Concord-Delivery`), a UUID.
    pub id: String,
    /// The collection id the objects come from.
    pub collection: String,
    /// `{"webhook": NAME, "objects": [...]}`, the objects as the door decided them.
    pub body: String,
    /// Number of objects.
    pub objects: usize,
    /// Attempts made.
    pub attempts: u32,
    /// Not before this instant (ns since the epoch).
    pub next_attempt_ns: i64,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The webhook generation ([`Webhook::generation`]) that took it.
    #[serde(default)]
    pub generation: String,
}

/// What `webhook show` prints of a webhook's progress (`webhook_state/NAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    /// The webhook generation this state belongs to: a state of another is none.
    #[serde(default)]
    pub generation: String,
    /// Per collection id: the position after the last entry taken from the door,
    /// `[date_added_ns, id, version_key, seq]`.
    #[serde(default)]
    pub cursors: BTreeMap<String, (i64, String, String, i64)>,
    /// Deliveries taken but not yet answered 2xx, oldest first.
    #[serde(default)]
    pub queue: Vec<Delivery>,
    /// When a delivery was last answered 2xx (RFC 3339).
    #[serde(default)]
    pub last_success: Option<String>,
    /// The last failure (delivery or reading the collection), cleared by a success.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Deliveries answered 2xx.
    #[serde(default)]
    pub delivered: u64,
}

/// Limits of delivery (`[webhooks]` in concord.toml).
#[derive(Clone, Debug)]
pub struct Options {
    /// Attempts of one delivery before it is dead-lettered (≥ 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub backoff_initial: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long one POST may take (connect, send, answer).
    pub timeout: Duration,
    /// The largest body of one delivery, in bytes; a single object whose body is larger is
    /// dead-lettered without being sent.
    pub max_body_bytes: usize,
    /// Objects per delivery at most.
    pub max_objects: usize,
}

/// The stored form of a record, written under the setting `key`: an error naming it rather
/// than a panic, should a record ever not serialise.
fn record<T: Serialize>(key: &str, value: &T) -> Result<String, WebhookError> {
    serde_json::to_string(value).map_err(|e| WebhookError::Record {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] concord_store::StoreError),
    /// The egress door failed.
    #[error(transparent)]
    Egress(#[from] concord_egress::EgressError),
    /// A stored record does not parse.
    #[error("{key}: unreadable record: {message}")]
    Record {
        /// The setting.
        key: String,
        /// The parser's message.
        message: String,
    },
    /// The webhook's configuration is not usable; the message names the field.
    #[error("webhook {name}: {message}")]
    Config {
        /// The webhook.
        name: String,
        /// What is wrong.
        message: String,
    },
}

fn now_ns() -> i64 {
    concord_stix::Timestamp::now_micros().unix_nanos()
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, text: &str) -> Result<T, WebhookError> {
    serde_json::from_str(text).map_err(|e| WebhookError::Record {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Checks a webhook before it is stored: a name of letters, digits, `-`, `_` and `.`, an
/// http(s) URL, a readable key of at least 16 bytes.
pub fn check(hook: &Webhook) -> Result<(), WebhookError> {
    check_name_and_url(hook)?;
    read_secret(hook)?;
    Ok(())
}

/// The checks of [`check`] that need no file: the name and the URL (http(s), without
/// credentials). The admin API runs them before it writes an inline secret, so that a
/// refused webhook writes nothing.
pub fn check_name_and_url(hook: &Webhook) -> Result<(), WebhookError> {
    let bad = |message: String| WebhookError::Config {
        name: hook.name.clone(),
        message,
    };
    if hook.name.is_empty()
        || hook.name.len() > 64
        || !hook
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(bad(
            "name: 1 to 64 letters, digits, '-', '_' or '.'".to_owned()
        ));
    }
    if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
        return Err(bad(format!("url {:?}: must be an http(s) URL", hook.url)));
    }
    // Credentials in the URL would be shown by `webhook list|show` and written in logs; the
    // HMAC signature is how the receiver knows the node.
    let authority = hook.url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.contains('@') {
        return Err(bad(
            "url: must not carry credentials (user:password@); the receiver checks the \
             X-Concord-Signature HMAC instead"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The webhook's HMAC key: its secret file, trimmed. Errors: unreadable, or under 16 bytes.
pub fn read_secret(hook: &Webhook) -> Result<Vec<u8>, WebhookError> {
    let text = std::fs::read_to_string(&hook.secret_file).map_err(|e| WebhookError::Config {
        name: hook.name.clone(),
        message: format!("secret file {}: cannot read: {e}", hook.secret_file),
    })?;
    let key = text.trim().as_bytes().to_vec();
    if key.len() < 16 {
        return Err(WebhookError::Config {
            name: hook.name.clone(),
            message: format!(
                "secret file {}: the key must have at least 16 bytes",
                hook.secret_file
            ),
        });
    }
    Ok(key)
}

/// Stores `hook` (replacing one of the same name) and starts it afresh: no queue, no
/// cursors (dead letters stay).
pub fn save(store: &dyn Store, hook: &Webhook) -> Result<Webhook, WebhookError> {
    check(hook)?;
    let mut hook = hook.clone();
    hook.generation = uuid::Uuid::new_v4().to_string();
    hook.partner_key = match &hook.partner {
        None => None,
        Some(name) => Some(
            store
                .partners()?
                .into_iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| WebhookError::Config {
                    name: hook.name.clone(),
                    message: format!("partner {name:?}: no such partner on this node"),
                })?
                .key_id,
        ),
    };
    let key = format!("{PREFIX}{}", hook.name);
    let text = record(&key, &hook)?;
    store.set_setting(&format!("{STATE_PREFIX}{}", hook.name), "")?;
    store.set_setting(&key, &text)?;
    forget_dead(store, &hook.name, &hook.generation)?;
    Ok(hook)
}

/// Deletes the dead letters of `name` that are not of `generation`.
fn forget_dead(store: &dyn Store, name: &str, generation: &str) -> Result<(), WebhookError> {
    for (key, text) in store.settings_with_prefix(&format!("{DEAD_PREFIX}{name}/"))? {
        let stale = text.is_empty()
            || serde_json::from_str::<Delivery>(&text).map_or(true, |d| d.generation != generation);
        if stale && !text.is_empty() {
            store.set_setting(&key, "")?;
        }
    }
    Ok(())
}

/// Whether `hook` may still send a delivery from `collection`: it is the stored generation
/// of its webhook (not replaced or removed since), and, for a partner's, the partner still
/// exists with the key it had at `add` and may read the collection. `Err` names why not.
fn still_valid(store: &dyn Store, hook: &Webhook, collection: &str) -> Result<(), String> {
    match load(store, &hook.name) {
        Ok(Some(current)) if current.generation == hook.generation => {}
        Ok(_) => return Err("the webhook was replaced or removed".to_owned()),
        Err(e) => return Err(e.to_string()),
    }
    if let Some(name) = &hook.partner {
        let partners = store.partners().map_err(|e| e.to_string())?;
        let Some(p) = partners.iter().find(|p| &p.name == name) else {
            return Err(format!("partner {name:?} was removed"));
        };
        if hook.partner_key.as_deref() != Some(p.key_id.as_str()) {
            return Err(format!(
                "partner {name:?} is not the one the webhook was added for (its key changed)"
            ));
        }
        if !p.read.iter().any(|c| c == collection) {
            return Err(format!("partner {name:?} may no longer read {collection}"));
        }
    }
    Ok(())
}

/// The webhook named `name`, if any.
pub fn load(store: &dyn Store, name: &str) -> Result<Option<Webhook>, WebhookError> {
    let key = format!("{PREFIX}{name}");
    match store.setting(&key)? {
        Some(t) if !t.is_empty() => Ok(Some(parse(&key, &t)?)),
        _ => Ok(None),
    }
}

/// Every webhook, by name.
pub fn list(store: &dyn Store) -> Result<Vec<Webhook>, WebhookError> {
    let mut out = Vec::new();
    for (key, text) in store.settings_with_prefix(PREFIX)? {
        if !text.is_empty() {
            out.push(parse(&key, &text)?);
        }
    }
    out.sort_by(|a: &Webhook, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes a webhook (settings cannot be deleted: an empty record marks it removed). Its
/// dead letters stay. `Ok(false)`: no such webhook.
pub fn remove(store: &dyn Store, name: &str) -> Result<bool, WebhookError> {
    if load(store, name)?.is_none() {
        return Ok(false);
    }
    store.set_setting(&format!("{PREFIX}{name}"), "")?;
    store.set_setting(&format!("{STATE_PREFIX}{name}"), "")?;
    // No generation is "": every dead letter goes.
    forget_dead(store, name, "\0removed")?;
    Ok(true)
}

/// The state of a webhook (default before its first delivery).
pub fn load_state(store: &dyn Store, name: &str) -> Result<WebhookState, WebhookError> {
    let key = format!("{STATE_PREFIX}{name}");
    let generation = load(store, name)?.map(|h| h.generation).unwrap_or_default();
    let state: WebhookState = match store.setting(&key)? {
        Some(t) if !t.is_empty() => parse(&key, &t)?,
        _ => WebhookState::default(),
    };
    // A state written by a turn of an earlier generation (the webhook was replaced while
    // it ran) is not this webhook's.
    Ok(if state.generation == generation {
        state
    } else {
        WebhookState {
            generation,
            ..WebhookState::default()
        }
    })
}

fn save_state(store: &dyn Store, name: &str, state: &WebhookState) -> Result<(), WebhookError> {
    // A turn of a replaced or removed generation writes nothing over its successor's.
    match load(store, name)? {
        Some(current) if current.generation == state.generation => {}
        _ => return Ok(()),
    }
    let key = format!("{STATE_PREFIX}{name}");
    let text = record(&key, state)?;
    store.set_setting(&key, &text)?;
    Ok(())
}

/// The dead letters of a webhook, oldest first.
pub fn dead_letters(store: &dyn Store, name: &str) -> Result<Vec<Delivery>, WebhookError> {
    let generation = load(store, name)?.map(|h| h.generation);
    let mut out: Vec<Delivery> = Vec::new();
    for (key, text) in store.settings_with_prefix(&format!("{DEAD_PREFIX}{name}/"))? {
        if !text.is_empty() {
            let d: Delivery = parse(&key, &text)?;
            if Some(&d.generation) == generation.as_ref() {
                out.push(d);
            }
        }
    }
    out.sort_by_key(|d| d.next_attempt_ns);
    Ok(out)
}

fn post(hook: &Webhook, d: &Delivery, opts: &Options) -> Result<(), String> {
    if d.body.len() > opts.max_body_bytes {
        return Err(format!(
            "delivery of {} bytes is over max_body_bytes ({}): not sent",
            d.body.len(),
            opts.max_body_bytes
        ));
    }
    let secret = read_secret(hook).map_err(|e| e.to_string())?;
    post_signed_with(
        &hook.url,
        &secret,
        &d.body,
        opts.timeout,
        &[(DELIVERY_HEADER, &d.id)],
    )
    .map_err(|e: NotifyError| e.to_string())
}

/// What [`retry_dead`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetryReport {
    /// Dead letters delivered (and removed).
    pub delivered: Vec<String>,
    /// Dead letters that failed again (kept), with the error.
    pub failed: Vec<(String, String)>,
}

/// POSTs each dead letter of `name` once, oldest first; a letter answered 2xx is removed.
/// Errors: no such webhook, or the store failed.
pub fn retry_dead(
    store: &dyn Store,
    name: &str,
    opts: &Options,
) -> Result<RetryReport, WebhookError> {
    let hook = load(store, name)?.ok_or_else(|| WebhookError::Config {
        name: name.to_owned(),
        message: "no such webhook".to_owned(),
    })?;
    let mut report = RetryReport::default();
    for mut d in dead_letters(store, name)? {
        let key = format!("{DEAD_PREFIX}{name}/{}", d.id);
        // Taken for an audience that is no longer this webhook's: dropped, never sent.
        if let Err(why) = still_valid(store, &hook, &d.collection) {
            store.set_setting(&key, "")?;
            report
                .failed
                .push((d.id, format!("{why}: dropped, not sent")));
            continue;
        }
        d.attempts += 1;
        match post(&hook, &d, opts) {
            Ok(()) => {
                store.set_setting(&key, "")?;
                report.delivered.push(d.id);
            }
            Err(e) => {
                d.last_error = Some(e.clone());
                store.set_setting(&key, &record(&key, &d)?)?;
                report.failed.push((d.id, e));
            }
        }
    }
    Ok(report)
}

fn backoff(opts: &Options, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    opts.backoff_initial
        .saturating_mul(factor)
        .min(opts.backoff_max)
}

/// `{"webhook": NAME, "objects": [...]}` around the objects' bytes as the door gave them
/// (the stored bytes, or the rewritten copy): nothing is re-serialised.
fn body(name: &str, objects: &[&str]) -> String {
    let mut out = format!(
        "{{\"webhook\":{},\"objects\":[",
        serde_json::Value::from(name)
    );
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(o);
    }
    out.push_str("]}");
    out
}

fn audience(store: &dyn Store, hook: &Webhook) -> Result<(Audience, Vec<String>), WebhookError> {
    match &hook.partner {
        None => Ok((Audience::Operator(OPERATOR.to_owned()), Vec::new())),
        Some(name) => {
            let p = store
                .partners()?
                .into_iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| WebhookError::Config {
                    name: hook.name.clone(),
                    message: format!("partner {name:?}: no such partner on this node"),
                })?;
            let read = p.read.clone();
            Ok((
                Audience::Partner(PartnerProfile {
                    name: p.name,
                    jurisdiction: p.jurisdiction,
                    groups: p.groups,
                }),
                read,
            ))
        }
    }
}

/// One turn of a webhook, under a node-wide lease (several `serve` processes on one
/// database never deliver the same webhook at once): delivers the queue's due deliveries
/// in order, and when the queue is empty takes the next page of a followed collection from
/// the egress door. Failures are recorded in the state; errors: the store failed.
pub fn turn(
    store: &dyn Store,
    egress: &Egress,
    hook: &Webhook,
    opts: &Options,
    holder: &str,
) -> Result<(), WebhookError> {
    let lease = Lease {
        store,
        key: format!("{LEASE_PREFIX}{}", hook.name),
        holder,
        // Long enough for one POST; renewed before each, so a killed process's lease
        // lapses soon after.
        length: opts.timeout + Duration::from_secs(10),
    };
    if !lease.renew()? {
        return Ok(());
    }
    let result = turn_held(store, egress, hook, opts, &lease);
    if let Err(e) = &result {
        // Shown by `webhook show`; the next turn starts again from the stored state.
        let mut state = load_state(store, &hook.name)?;
        state.last_error = Some(e.to_string());
        save_state(store, &hook.name, &state)?;
    }
    store.try_lease(&lease.key, holder, now_ns(), 0)?;
    result
}

/// The node-wide lease on one webhook's deliveries ([`Store::try_lease`]).
struct Lease<'a> {
    store: &'a dyn Store,
    key: String,
    holder: &'a str,
    length: Duration,
}

impl Lease<'_> {
    /// Takes or extends the lease; `false` when another process holds it.
    fn renew(&self) -> Result<bool, WebhookError> {
        let now = now_ns();
        Ok(self.store.try_lease(
            &self.key,
            self.holder,
            now,
            now + self.length.as_nanos() as i64,
        )?)
    }
}

/// Pages taken per turn at most, so one busy webhook does not hold back the others; a turn
/// also ends once it has taken `timeout` (one POST's worth of time), so a receiver that
/// answers slowly holds a delivery thread for about one POST, not eight (attack a1 #6).
const PAGES_PER_TURN: usize = 8;

fn turn_held(
    store: &dyn Store,
    egress: &Egress,
    hook: &Webhook,
    opts: &Options,
    lease: &Lease<'_>,
) -> Result<(), WebhookError> {
    // Replaced or removed since the deliverer read it: nothing of this generation goes.
    match load(store, &hook.name)? {
        Some(current) if current.generation == hook.generation => {}
        _ => return Ok(()),
    }
    let mut state = load_state(store, &hook.name)?;
    let started = std::time::Instant::now();
    for _ in 0..PAGES_PER_TURN {
        // The queue first, in order: a failed head waits for its backoff.
        while let Some(head) = state.queue.first_mut() {
            if head.next_attempt_ns > now_ns()
                || started.elapsed() >= opts.timeout
                || !lease.renew()?
            {
                return Ok(());
            }
            // Checked before every POST: replaced, removed, or its partner gone or no
            // longer reading the collection, and the queue is dropped unsent.
            if let Err(why) = still_valid(store, hook, &head.collection) {
                tracing::warn!(webhook = %hook.name, reason = %why, "webhook: queued deliveries dropped");
                state.queue.clear();
                state.last_error = Some(format!("{why}: queued deliveries dropped, not sent"));
                save_state(store, &hook.name, &state)?;
                return Ok(());
            }
            head.attempts += 1;
            match post(hook, head, opts) {
                Ok(()) => {
                    state.queue.remove(0);
                    state.delivered += 1;
                    state.last_success = Some(concord_stix::Timestamp::now_micros().to_string());
                    state.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(webhook = %hook.name, delivery = %head.id, error = %e, "webhook: delivery failed");
                    state.last_error = Some(format!("delivery {}: {e}", head.id));
                    head.last_error = Some(e);
                    let oversized = head.body.len() > opts.max_body_bytes;
                    if head.attempts >= opts.max_attempts || oversized {
                        let mut dead = state.queue.remove(0);
                        dead.next_attempt_ns = now_ns();
                        // Written before the queue shrinks: a crash in between keeps the
                        // letter queued too, never loses it.
                        let key = format!("{DEAD_PREFIX}{}/{}", hook.name, dead.id);
                        store.set_setting(&key, &record(&key, &dead)?)?;
                    } else {
                        head.next_attempt_ns =
                            now_ns() + backoff(opts, head.attempts).as_nanos() as i64;
                        save_state(store, &hook.name, &state)?;
                        return Ok(());
                    }
                }
            }
            save_state(store, &hook.name, &state)?;
        }
        if !take_page(store, egress, hook, opts, &mut state)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Takes the next page of the first followed collection that has one into the queue,
/// with the cursor after it, in one write. `false`: nothing new anywhere.
fn take_page(
    store: &dyn Store,
    egress: &Egress,
    hook: &Webhook,
    opts: &Options,
    state: &mut WebhookState,
) -> Result<bool, WebhookError> {
    let (audience, readable) = match audience(store, hook) {
        Ok(a) => a,
        Err(e @ WebhookError::Config { .. }) => {
            state.last_error = Some(e.to_string());
            save_state(store, &hook.name, state)?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    // IEP 2.0 ENCRYPT IN TRANSIT must (issue 19): nothing is taken for a partner whose
    // agreement requires it while its receiver is at a plain-HTTP URL.
    if let concord_egress::Audience::Partner(p) = &audience
        && hook.url.to_ascii_lowercase().starts_with("http://")
        && let Some((name, a, _)) = egress.policy().agreement(p)
        && a.requires_encryption()
    {
        state.last_error = Some(format!(
            "agreement {name} with {} requires encryption in transit (IEP 2.0 \
             encrypt_in_transit must), and the receiver is at plain HTTP {}: nothing sent",
            p.name, hook.url
        ));
        save_state(store, &hook.name, state)?;
        return Ok(false);
    }
    let collections = if !hook.collections.is_empty() {
        hook.collections.clone()
    } else if hook.partner.is_some() {
        readable.clone()
    } else {
        store.collections()?.into_iter().map(|c| c.id).collect()
    };
    let filter = ObjectFilter {
        added_after_ns: Some(hook.since_ns),
        types: hook.types.clone(),
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    // What the envelope adds to the objects' bytes.
    let overhead = body(&hook.name, &[]).len();
    for collection in collections {
        // A partner's webhook follows only what the partner may read now.
        if hook.partner.is_some() && !readable.contains(&collection) {
            continue;
        }
        let after = state.cursors.get(&collection).map(|c| Cursor {
            date_added_ns: c.0,
            id: c.1.clone(),
            version_key: c.2.clone(),
            seq: c.3,
        });
        let (transfer, position) = egress.scan_following(
            &audience,
            DOOR,
            &collection,
            &filter,
            after,
            opts.max_objects,
            opts.max_body_bytes
                .saturating_sub(overhead + opts.max_objects),
        )?;
        let Some(position) = position else {
            continue;
        };
        state.cursors.insert(
            collection.clone(),
            (
                position.date_added_ns,
                position.id,
                position.version_key,
                position.seq,
            ),
        );
        let objects: Vec<&str> = transfer
            .entries
            .iter()
            .filter_map(|s| s.body.as_deref())
            .collect();
        if !objects.is_empty() {
            state.queue.push(Delivery {
                id: uuid::Uuid::new_v4().to_string(),
                collection: collection.clone(),
                body: body(&hook.name, &objects),
                objects: objects.len(),
                attempts: 0,
                next_attempt_ns: 0,
                last_error: None,
                generation: hook.generation.clone(),
            });
        }
        // The page and the cursor after it, in one record.
        save_state(store, &hook.name, state)?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let opts = Options {
            max_attempts: 8,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            max_body_bytes: 1000,
            max_objects: 10,
        };
        let waits: Vec<u64> = (1..=5).map(|a| backoff(&opts, a).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
    }

    #[test]
    fn body_keeps_the_objects_bytes() {
        assert_eq!(
            body("h\"1", &["{\"a\": 1}", "{}"]),
            r#"{"webhook":"h\"1","objects":[{"a": 1},{}]}"#
        );
    }
}
