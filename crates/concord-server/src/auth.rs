//! Authentication (TAXII 2.1 §1.6.7.1): HTTP Basic and Bearer, two kinds of credential.
//!
//! - The **admin token** (from `concord init`), accepted as `Authorization: Bearer TOKEN` and
//!   as the password of HTTP Basic with any user name. Stored as its SHA-256 (it is 256 random
//!   bits, so a fast hash is not brute-forceable), compared in constant time.
//! - **Partner API keys** `concord_<key_id>_<secret>`, the same two ways. The `key_id` finds
//!   the partner; the secret is checked against its argon2id hash. Argon2 costs tens of
//!   milliseconds by design, so a key once verified is remembered (by its SHA-256) together
//!   with the hash it matched. The key's partner is read from the store at each request
//!   (one look-up of the key id's unique index), so a key rotated, a partner removed or its
//!   grants changed by any process (the CLI, another `serve`) count at its next request.
//!
//! What a wrong credential may cost is bounded ([`AuthLimits`], issue 16), here and nowhere
//! else, for TAXII and the web UI's login alike:
//! - at most [`AuthLimits::hash_concurrency`] argon2id verifications run at once (each holds
//!   about 19 MiB), at most [`AuthLimits::hash_queue`] more wait for one, and any further
//!   one is refused at once ([`AuthError::Busy`]) instead of piling up memory;
//! - a (key id, secret) pair that failed is remembered by its SHA-256 with the hash it
//!   failed against, so repeating it costs no argon2 while that hash is current;
//! - attempts that are not known good (every wrong admin token, every API key not verified
//!   before) are counted per source address and per key id, and beyond the quota refused
//!   ([`AuthError::Throttled`]) before any work; a key verified before passes even while its
//!   key id is throttled, so a flood of wrong secrets cannot lock out its partner;
//! - an unknown key id is verified against a dummy argon2id hash with the parameters of
//!   [`new_api_key`], through the same limits, so it costs the same time as a known one and
//!   the answer time tells nothing about which key ids exist.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use concord_policy::egress::PartnerProfile;
use concord_store::{Partner, Store, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

pub mod users;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The node's operator: reads and writes every collection, sees every object as stored.
    Admin,
    /// A partner organisation: its permissions, and the egress policy for what it reads.
    Partner(Arc<PartnerAccess>),
}

/// A partner's rights, as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerAccess {
    /// Name, jurisdiction and sharing groups, as the policy sees them.
    pub profile: PartnerProfile,
    /// Collection ids it may read.
    pub read: HashSet<String>,
    /// Collection ids it may write.
    pub write: HashSet<String>,
    /// The key id of the API key it authenticated with.
    pub key_id: String,
    /// The argon2id hash that key was verified against: with the key id, what
    /// [`Authenticator::current`] looks for in the store again.
    pub key_hash: String,
    /// The pin of the client certificate its key is bound to (SHA-256 of the DER, hex;
    /// `client_cert_sha256` of its directory entry, issue 19); `None`: not bound.
    pub client_cert_sha256: Option<String>,
}

impl PartnerAccess {
    /// Whether a connection that presented the client certificate pinned as `client_cert`
    /// (`None`: none, or plain HTTP) may act for this partner: any, when its key is bound
    /// to no certificate; else only one presenting that certificate (issue 19). Every door
    /// that acts for the partner after its key was verified (a web session, a live stream)
    /// asks this again of the connection it serves.
    pub fn presented_by(&self, client_cert: Option<&str>) -> bool {
        pin_matches(self.client_cert_sha256.as_deref(), client_cert)
    }
}

/// Whether `client_cert` (the pin of the certificate a connection presented) satisfies the
/// partner's pin `pin` (`None`: the key is bound to none).
fn pin_matches(pin: Option<&str>, client_cert: Option<&str>) -> bool {
    match pin {
        None => true,
        Some(pin) => client_cert.is_some_and(|c| c.eq_ignore_ascii_case(pin)),
    }
}

impl Principal {
    /// Whether this principal may read a collection (TAXII `can_read`).
    pub fn can_read(&self, collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Partner(p) => p.read.contains(collection_id),
        }
    }

    /// Whether this principal may write a collection (TAXII `can_write`).
    pub fn can_write(&self, collection_id: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Partner(p) => p.write.contains(collection_id),
        }
    }
}

/// Hex SHA-256 of a token, as stored in the node's settings under [`ADMIN_TOKEN_SETTING`].
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The settings key under which the admin token's hash is kept.
pub const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// A new partner API key: `(key, key_id, argon2id PHC hash of the secret)`. The key is shown
/// once and never stored. Errors: the OS random source failed.
pub fn new_api_key() -> Result<(String, String, String), String> {
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let key_id = hex(&bytes[..8]);
    let secret = hex(&bytes[8..]);
    let hash = argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| format!("argon2: {e}"))?
        .to_string();
    Ok((format!("concord_{key_id}_{secret}"), key_id, hash))
}

/// The credential carried by an `Authorization` header: Bearer, or the Basic password.
fn credential(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(rest.trim().to_owned()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split_once(':')?.1.to_owned())
        }
        _ => None,
    }
}

/// The limits on what credentials may cost (issue 16); the `[limits]` section of
/// `concord.toml` for `concord serve`. Every field has a safe default ([`Default`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthLimits {
    /// argon2id verifications running at once, each about 19 MiB and tens of milliseconds
    /// of one core. Default 2 (the cores of a small node). At least 1.
    pub hash_concurrency: usize,
    /// Verifications that may wait for a running one; one more is answered 503 with
    /// `Retry-After` at once. Default 32.
    pub hash_queue: usize,
    /// Attempts not known good (wrong or first-seen credentials) per minute from one source
    /// address, also the burst; one more is answered 429 with `Retry-After`. Default 30.
    pub failures_per_source: u32,
    /// The same per partner key id (and, in the web UI, per account). Default 10.
    pub failures_per_key: u32,
    /// Failed (key id, secret) pairs remembered, so that repeating one costs no argon2.
    /// Default 10,000 (about 1.5 MB); when full, the oldest half is forgotten.
    pub negative_cache: usize,
    /// Requests one partner may make per second, sustained, once its key is verified (every
    /// route that takes an API key: TAXII, `/api/match`, feeds, streams; and every page of its
    /// web UI session). Each read is an
    /// audited transfer, so this also bounds how fast one partner can grow the audit log
    /// (issue 17). One more is answered 429 with `Retry-After`, naming this limit. Default
    /// 100; 0: no limit. The admin token is not limited.
    pub partner_requests_per_sec: u32,
    /// Requests one partner may make at once above that rate (the bucket's size). Default
    /// 500 (a sync round paging quickly through a large collection); at least 1.
    pub partner_request_burst: u32,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            hash_concurrency: 2,
            hash_queue: 32,
            failures_per_source: 30,
            failures_per_key: 10,
            negative_cache: 10_000,
            partner_requests_per_sec: 100,
            partner_request_burst: 500,
        }
    }
}

/// Why a credential was not checked, or could not be.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The store failed while reading the partners.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many attempts not known good from this source or for this key id
    /// ([`AuthLimits::failures_per_source`], [`AuthLimits::failures_per_key`]): HTTP 429.
    #[error("too many failed authentications; retry after {} s", secs(*.retry_after))]
    Throttled {
        /// When the quota allows the next attempt.
        retry_after: Duration,
    },
    /// Every verification slot and queue place is taken ([`AuthLimits::hash_queue`]): 503.
    #[error("too many credential checks in progress; retry after {} s", secs(*.retry_after))]
    Busy {
        /// A hint: verifications take tens of milliseconds, so a second is plenty.
        retry_after: Duration,
    },
    /// The partner, whose key is good, is over its request quota
    /// ([`AuthLimits::partner_requests_per_sec`], [`AuthLimits::partner_request_burst`]):
    /// HTTP 429.
    #[error(
        "too many requests from this partner (partner_requests_per_sec {per_sec}, burst {burst}); retry after {} s",
        secs(*.retry_after)
    )]
    PartnerRate {
        /// When the quota allows the next request.
        retry_after: Duration,
        /// The limit, per second.
        per_sec: u32,
        /// The burst.
        burst: u32,
    },
    /// The verification's worker thread failed.
    #[error("credential check failed: {0}")]
    Worker(String),
}

impl AuthError {
    /// The `Retry-After` of a refusal (whole seconds, at least 1), `None` for a failure.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after }
            | AuthError::Busy { retry_after }
            | AuthError::PartnerRate { retry_after, .. } => Some(secs(*retry_after)),
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, at least 1 (what `Retry-After` can say).
fn secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

type KeyedLimiter<K> = governor::DefaultKeyedRateLimiter<K>;

/// The keyed state of a limiter grows with every key seen (an attacker chooses key ids and,
/// behind NAT, addresses): past this many keys, the ones back to a full quota are dropped.
const LIMITER_KEYS: usize = 10_000;

/// Checks credentials against the admin token and the partners of a store.
pub struct Authenticator {
    store: Arc<dyn Store>,
    admin_hash: String,
    /// SHA-256 of a verified key → the argon2 hash it was verified against.
    verified: Mutex<HashMap<String, String>>,
    /// SHA-256 of a key that failed, with the client certificate presented with it → the
    /// argon2 hash (and client certificate pin) it failed against, and when.
    failed: Mutex<HashMap<String, (String, Instant)>>,
    limits: AuthLimits,
    /// Permits for verifications running or waiting (`hash_concurrency + hash_queue`).
    admitted: Arc<Semaphore>,
    /// Permits for verifications running (`hash_concurrency`).
    running: Arc<Semaphore>,
    /// Verification jobs for the `hash_concurrency` hashing threads.
    hashers: Mutex<std::sync::mpsc::Sender<HashJob>>,
    by_source: KeyedLimiter<IpAddr>,
    by_key: KeyedLimiter<String>,
    /// Requests of verified partners, by partner name; `None`: no limit.
    by_partner: Option<KeyedLimiter<String>>,
    argon2_runs: AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over a store, with the admin token's SHA-256 and the default
    /// [`AuthLimits`].
    pub fn new(store: Arc<dyn Store>, admin_hash: String) -> Authenticator {
        Authenticator::with_limits(store, admin_hash, AuthLimits::default())
    }

    /// An authenticator with `limits` (a zero concurrency or quota is taken as 1).
    pub fn with_limits(
        store: Arc<dyn Store>,
        admin_hash: String,
        limits: AuthLimits,
    ) -> Authenticator {
        let concurrency = limits.hash_concurrency.max(1);
        let per_minute = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            governor::Quota::per_minute(n)
        };
        // Dedicated hashing threads rather than tokio's blocking pool: each thread's allocator
        // arena keeps the last ~19 MiB block it hashed in, so a few fixed threads bound that
        // memory, where hundreds of pool threads took serve to 700 MB (measured, issue 16).
        let (jobs, queue) = std::sync::mpsc::channel::<HashJob>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is released before hashing, so the threads hash in parallel.
                        let next = lock(&queue).recv();
                        // Ends when the authenticator (the only sender) is dropped.
                        let Ok(job) = next else { break };
                        let ok = argon2::Argon2::default()
                            .verify_password(job.secret.as_bytes(), job.hash.as_str())
                            .is_ok();
                        let _ = job.answer.send(ok);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        Authenticator {
            store,
            admin_hash,
            hashers: Mutex::new(jobs),
            verified: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            admitted: Arc::new(Semaphore::new(concurrency + limits.hash_queue)),
            running: Arc::new(Semaphore::new(concurrency)),
            by_source: governor::RateLimiter::keyed(per_minute(limits.failures_per_source)),
            by_key: governor::RateLimiter::keyed(per_minute(limits.failures_per_key)),
            by_partner: NonZeroU32::new(limits.partner_requests_per_sec).map(|rate| {
                let burst =
                    NonZeroU32::new(limits.partner_request_burst).unwrap_or(NonZeroU32::MIN);
                governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
            }),
            argon2_runs: AtomicU64::new(0),
            limits,
        }
    }

    /// How many argon2id verifications this authenticator has started (for tests and
    /// metrics: each costs about 19 MiB and tens of milliseconds).
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// The principal an `Authorization` header authenticates, or `None` for no or wrong
    /// credentials, from `source` (the peer's address; `None` when unknown, then only the
    /// per-key limit applies) over a connection that presented the client certificate
    /// whose pin is `client_cert` ([`crate::mtls::client_cert_sha256`]; `None`: none, or
    /// plain HTTP). Store reads and argon2 run on blocking threads.
    ///
    /// A partner with a pinned client certificate (`client_cert_sha256` of its directory
    /// entry, exchanged by `concord join --mtls`, issue 19) is authenticated only over a
    /// connection that presented that certificate: its key without it, or with another
    /// partner's, is a wrong credential, answered, counted against the failure quotas and
    /// remembered exactly as a wrong key is, so that no answer (status, body, time, quota)
    /// tells a key holder whether the key or the certificate was wrong.
    ///
    /// Errors: [`AuthError::Throttled`] when the source or key id is over its quota,
    /// [`AuthError::Busy`] when every verification slot and queue place is taken, a store
    /// or worker failure.
    pub async fn authenticate(
        self: &Arc<Self>,
        header: Option<&str>,
        source: Option<IpAddr>,
        client_cert: Option<&str>,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(token) = header.and_then(credential) else {
            return Ok(None);
        };
        let Some((key_id, secret)) = token
            .strip_prefix("concord_")
            .and_then(|rest| rest.split_once('_'))
        else {
            let given = token_hash(&token);
            if bool::from(given.as_bytes().ct_eq(self.admin_hash.as_bytes())) {
                return Ok(Some(Principal::Admin));
            }
            self.charge(source, None)?;
            return Ok(None);
        };
        let this = self.clone();
        let id = key_id.to_owned();
        let partner = tokio::task::spawn_blocking(move || this.find_partner(&id))
            .await
            .map_err(|e| AuthError::Worker(e.to_string()))??;
        // An unknown key id is checked against the dummy hash: same cost, same answer time.
        let hash = partner
            .as_ref()
            .map_or_else(|| dummy_hash().to_owned(), |p| p.key_hash.clone());
        // Whether the connection presented what the partner's pin asks (nothing when it
        // has none).
        let bound = |p: &Partner| pin_matches(p.details.client_cert_sha256.as_deref(), client_cert);
        // What a failure is remembered against: the key's hash and the partner's pin, so
        // that a new key or a new pin is tried again.
        let judged = match &partner {
            Some(p) => format!(
                "{hash} {}",
                p.details.client_cert_sha256.as_deref().unwrap_or("-")
            ),
            None => hash.clone(),
        };
        let digest = token_hash(&token);
        // A failed attempt is remembered by the key and the certificate presented with it:
        // the right key without its certificate fails as a wrong key does, once slowly.
        let attempt = token_hash(&format!("{token} {}", client_cert.unwrap_or("-")));
        let verified = lock(&self.verified).get(&digest) == Some(&hash);
        if verified
            && let Some(p) = &partner
            && bound(p)
        {
            self.charge_partner(&p.name)?;
            return Ok(Some(access(p)));
        }
        self.charge(source, Some(key_id))?;
        let failed_before = lock(&self.failed)
            .get(&attempt)
            .is_some_and(|(h, _)| *h == judged);
        if failed_before {
            return Ok(None);
        }
        // The argon2id verification runs also when the key was verified before and only the
        // certificate is wrong: the same cost as a wrong key's first attempt.
        let ok = self.verify(secret.to_owned(), hash.clone()).await? && partner.is_some();
        if ok {
            lock(&self.verified).insert(digest, hash);
        }
        match partner.filter(|p| ok && bound(p)) {
            Some(p) => {
                self.charge_partner(&p.name)?;
                Ok(Some(access(&p)))
            }
            None => {
                self.remember_failure(attempt, judged);
                Ok(None)
            }
        }
    }

    /// Counts a request of a verified partner against its quota
    /// ([`AuthLimits::partner_requests_per_sec`]); refuses it when spent. Partners are
    /// few and named by the operator, so the map stays small. Public for the web UI, whose
    /// session requests are a partner's requests too.
    ///
    /// Errors: [`AuthError::PartnerRate`] (HTTP 429).
    pub fn charge_partner(&self, name: &str) -> Result<(), AuthError> {
        use governor::clock::{Clock, DefaultClock};
        let Some(limiter) = &self.by_partner else {
            return Ok(());
        };
        let now = DefaultClock::default().now();
        limiter
            .check_key(&name.to_owned())
            .map_err(|nu| AuthError::PartnerRate {
                retry_after: nu.wait_time_from(now),
                per_sec: self.limits.partner_requests_per_sec,
                burst: self.limits.partner_request_burst.max(1),
            })
    }

    /// Counts a join attempt (issue 19, `POST /concord/join/`) against the quota of failed
    /// authentications of its source address ([`AuthLimits::failures_per_source`]), before
    /// anything of it is read. Every attempt counts, good or not: an invitation admits one
    /// join, so only a guesser makes many; this is the bound on guessing an invitation's
    /// secret (32 random bytes) from one address.
    ///
    /// Errors: [`AuthError::Throttled`] (HTTP 429 with `Retry-After`).
    pub fn charge_join(&self, source: Option<IpAddr>) -> Result<(), AuthError> {
        self.charge(source, None)
    }

    /// Counts a join attempt that proved the secret of invitation `invitation` (its id)
    /// against that invitation's quota ([`AuthLimits::failures_per_key`]): retries and
    /// refusals of its holder, each a transaction and a preview through the egress door.
    /// Only such attempts count (issue 20): an attempt that proves nothing beyond the id,
    /// which is no secret, would otherwise let anyone who read the id spend the quota and
    /// hold the real joiner off with 429; guesses are bounded per source
    /// ([`Authenticator::charge_join`]).
    ///
    /// Errors: [`AuthError::Throttled`] (HTTP 429 with `Retry-After`).
    pub fn charge_join_invitation(&self, invitation: &str) -> Result<(), AuthError> {
        self.charge(None, Some(&format!("join:{invitation}")))
    }

    /// The partner with key id `key_id`, as the store holds it now: no cache, so that a
    /// grant removed, a key rotated or a partner removed (by any process) stops access at
    /// the next request. A known and an unknown key id cost the same one look-up.
    fn find_partner(&self, key_id: &str) -> Result<Option<Partner>, StoreError> {
        self.store.partner_by_key_id(key_id)
    }

    /// Counts an attempt that is not known good against the quotas of its source and key
    /// id; refuses it when either is spent.
    fn charge(&self, source: Option<IpAddr>, key_id: Option<&str>) -> Result<(), AuthError> {
        use governor::clock::{Clock, DefaultClock};
        let now = DefaultClock::default().now();
        let refused = |nu: governor::NotUntil<_>| AuthError::Throttled {
            retry_after: nu.wait_time_from(now),
        };
        if let Some(ip) = source {
            if self.by_source.len() > LIMITER_KEYS {
                self.by_source.retain_recent();
            }
            self.by_source.check_key(&ip).map_err(refused)?;
        }
        if let Some(id) = key_id {
            if self.by_key.len() > LIMITER_KEYS {
                self.by_key.retain_recent();
            }
            // Key ids are 16 hex digits; a longer one is cut so it cannot grow the map.
            let id: String = id.chars().take(32).collect();
            self.by_key.check_key(&id).map_err(refused)?;
        }
        Ok(())
    }

    /// argon2id verification of `secret` against `hash`, within the concurrency limit and
    /// its bounded queue.
    async fn verify(&self, secret: String, hash: String) -> Result<bool, AuthError> {
        let busy = || AuthError::Busy {
            retry_after: Duration::from_secs(1),
        };
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = tokio::sync::oneshot::channel();
        lock(&self.hashers)
            .send(HashJob {
                secret,
                hash,
                answer,
            })
            .map_err(|_| AuthError::Worker("no hashing thread".to_owned()))?;
        // The permits are held until the hash is done, even if the request is dropped
        // meanwhile, by holding them in a task (a client that disconnects does not free a
        // slot that is still working).
        let waited = tokio::spawn(async move {
            let answer = answered.await;
            drop((admitted, running));
            answer
        });
        waited
            .await
            .map_err(|e| AuthError::Worker(e.to_string()))?
            .map_err(|_| AuthError::Worker("a hashing thread failed".to_owned()))
    }

    fn remember_failure(&self, digest: String, hash: String) {
        let mut failed = lock(&self.failed);
        if failed.len() >= self.limits.negative_cache.max(1) {
            // Forget the older half: bounded memory, and the pairs being repeated now stay.
            let mut ages: Vec<Instant> = failed.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            failed.retain(|_, (_, at)| *at > cut);
        }
        failed.insert(digest, (hash, Instant::now()));
    }

    /// The current rights of the partner whose key has id `key_id`, for a session that
    /// authenticated with that key earlier (the web UI): `None` once the key was rotated or
    /// the partner removed, and new permissions, at once (as TAXII
    /// sees them). The caller holds it to the connection's client certificate
    /// ([`PartnerAccess::presented_by`]), as [`Authenticator::authenticate`] does. Blocking (a store read at most once a second for an unknown key).
    pub fn partner_by_key_id(&self, key_id: &str) -> Result<Option<Principal>, StoreError> {
        Ok(self.find_partner(key_id)?.as_ref().map(access))
    }
}

impl Authenticator {
    /// The principal as the store says it is now, for a door that outlives its request (a
    /// live stream): the operator as it is; a partner with its current rights if the key
    /// it authenticated with (the same key id and argon2id hash) is still its key, `None`
    /// once the partner was removed or its key rotated, or its key bound to another client
    /// certificate than when it authenticated (issue 19: the connection presented the one
    /// pinned then). Reads the partner from the store, so a change made by another process
    /// (the CLI, another `serve`) counts at once. Blocking. Errors: the store failed.
    pub fn current(&self, principal: &Principal) -> Result<Option<Principal>, StoreError> {
        let Principal::Partner(was) = principal else {
            return Ok(Some(principal.clone()));
        };
        Ok(self
            .store
            .partner_by_key_id(&was.key_id)?
            .filter(|p| {
                p.key_hash == was.key_hash && p.details.client_cert_sha256 == was.client_cert_sha256
            })
            .map(|p| access(&p)))
    }
}

/// One argon2id verification for a hashing thread.
struct HashJob {
    secret: String,
    hash: String,
    answer: tokio::sync::oneshot::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An argon2id hash of a random secret with the parameters of [`new_api_key`], made once:
/// what an unknown key id is verified against.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // Without randomness the dummy secret is zeros: still never a key's secret (hex).
        let _ = getrandom::fill(&mut secret);
        argon2::Argon2::default()
            .hash_password(&secret)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// The key id of a partner API key (`concord_<key id>_<secret>`), if it is one.
pub fn key_id(token: &str) -> Option<&str> {
    token
        .strip_prefix("concord_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
}

fn access(p: &Partner) -> Principal {
    Principal::Partner(Arc::new(PartnerAccess {
        profile: PartnerProfile {
            name: p.name.clone(),
            jurisdiction: p.jurisdiction.clone(),
            groups: p.groups.clone(),
        },
        read: p.read.iter().cloned().collect(),
        write: p.write.iter().cloned().collect(),
        key_id: p.key_id.clone(),
        key_hash: p.key_hash.clone(),
        client_cert_sha256: p.details.client_cert_sha256.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic() {
        assert_eq!(credential("Bearer s3cret").as_deref(), Some("s3cret"));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        assert_eq!(
            credential(&format!("Basic {basic}")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(credential("Digest x"), None);
    }

    #[test]
    fn api_keys_verify_with_argon2() {
        let (key, key_id, hash) = new_api_key().unwrap();
        assert!(key.starts_with(&format!("concord_{key_id}_")));
        let secret = key.rsplit('_').next().unwrap();
        let argon = argon2::Argon2::default();
        assert!(
            argon
                .verify_password(secret.as_bytes(), hash.as_str())
                .is_ok()
        );
        assert!(argon.verify_password(b"wrong", hash.as_str()).is_err());
        assert!(hash.starts_with("$argon2id$"));
    }

    const ADMIN: &str = "the-admin-token";

    /// An authenticator over a fresh SQLite store with one partner; its key.
    fn node(limits: AuthLimits) -> (tempfile::TempDir, Arc<Authenticator>, String) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(concord_store::SqliteStore::open(&dir.path().join("c.sqlite")).unwrap());
        let (key, key_id, key_hash) = new_api_key().unwrap();
        store
            .put_partner(&Partner {
                name: "acme".into(),
                jurisdiction: "DE".into(),
                groups: vec![],
                read: vec![],
                write: vec![],
                key_id,
                key_hash,
                created_ns: 0,
                details: Default::default(),
            })
            .unwrap();
        let auth = Authenticator::with_limits(store, token_hash(ADMIN), limits);
        (dir, Arc::new(auth), key)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// The key with another secret (same key id).
    fn wrong(key: &str, n: u32) -> String {
        let id = key_id(key).unwrap();
        format!("concord_{id}_wrong{n}")
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    fn generous() -> AuthLimits {
        AuthLimits {
            failures_per_source: 1000,
            failures_per_key: 1000,
            ..AuthLimits::default()
        }
    }

    #[tokio::test]
    async fn a_repeated_wrong_secret_costs_one_argon2() {
        let (_d, auth, key) = node(generous());
        for _ in 0..5 {
            let got = auth
                .authenticate(Some(&bearer(&wrong(&key, 1))), ip(1), None)
                .await;
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
        assert_eq!(auth.argon2_runs(), 1);
        // A different wrong secret is a new pair: verified once more.
        auth.authenticate(Some(&bearer(&wrong(&key, 2))), ip(1), None)
            .await
            .unwrap();
        assert_eq!(auth.argon2_runs(), 2);
        // The right key still works, once verified by argon2, then from the cache.
        for _ in 0..3 {
            let p = auth
                .authenticate(Some(&bearer(&key)), ip(1), None)
                .await
                .unwrap();
            assert!(matches!(p, Some(Principal::Partner(_))));
        }
        assert_eq!(auth.argon2_runs(), 3);
    }

    /// Issue 19 (`join --mtls`): a partner's key bound to its client certificate. Without
    /// it, or with another, the key is a wrong credential in every way a key holder can
    /// observe: the answer (`None`, the 401 of a wrong key), the cost (one argon2id run,
    /// then the negative cache, as a wrong secret) and the failure quota of the key id.
    #[tokio::test]
    async fn a_key_bound_to_a_certificate_without_it_is_a_wrong_key() {
        let (_d, auth, key) = node(AuthLimits {
            failures_per_key: 5,
            failures_per_source: 1000,
            ..AuthLimits::default()
        });
        let pin = "ab".repeat(32);
        let mut p = auth.store.partners().unwrap().remove(0);
        p.details.client_cert_sha256 = Some(pin.clone());
        auth.store.put_partner(&p).unwrap();
        let other = "cd".repeat(32);
        // With its certificate: the partner (one argon2 run, then the cache).
        for _ in 0..2 {
            let got = auth
                .authenticate(Some(&bearer(&key)), ip(1), Some(&pin))
                .await;
            assert!(matches!(got, Ok(Some(Principal::Partner(_)))), "{got:?}");
        }
        assert_eq!(auth.argon2_runs(), 1);
        // The right key without the certificate, or with another: as a wrong secret.
        for cert in [None, Some(other.as_str())] {
            for _ in 0..2 {
                let got = auth.authenticate(Some(&bearer(&key)), ip(1), cert).await;
                assert!(matches!(got, Ok(None)), "{got:?}");
            }
        }
        let wrong_runs = auth.argon2_runs() - 1;
        assert_eq!(wrong_runs, 2, "one run per (key, certificate), then cached");
        // Those four attempts counted against the key id's quota (5 a minute, the first
        // verification of the key being the fifth), as four wrong secrets would: the next
        // attempt that is not known good is throttled.
        let got = auth
            .authenticate(Some(&bearer(&wrong(&key, 1))), ip(2), Some(&pin))
            .await;
        assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
        // The key with its certificate, verified before, still passes.
        let got = auth
            .authenticate(Some(&bearer(&key)), ip(3), Some(&pin))
            .await;
        assert!(matches!(got, Ok(Some(Principal::Partner(_)))), "{got:?}");
        // A new pin (the partner set another): the key passes with the certificate it names.
        p.details.client_cert_sha256 = Some(other.clone());
        auth.store.put_partner(&p).unwrap();
        let got = auth
            .authenticate(Some(&bearer(&key)), ip(4), Some(&other))
            .await;
        assert!(matches!(got, Ok(Some(Principal::Partner(_)))), "{got:?}");
    }

    #[tokio::test]
    async fn an_unknown_key_id_costs_what_a_known_one_costs() {
        let (_d, auth, key) = node(generous());
        // Known key id, wrong secret: one argon2 run.
        auth.authenticate(Some(&bearer(&wrong(&key, 1))), ip(1), None)
            .await
            .unwrap();
        assert_eq!(auth.argon2_runs(), 1);
        // Unknown key id: also one argon2 run (the dummy hash), and also negatively cached.
        let unknown = "concord_0123456789abcdef_0123456789abcdef";
        for _ in 0..3 {
            let got = auth.authenticate(Some(&bearer(unknown)), ip(1), None).await;
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
        assert_eq!(auth.argon2_runs(), 2);
        // The dummy hash has the parameters of a real key's hash (same cost).
        let params = |h: &str| h.split('$').nth(3).unwrap().to_owned();
        let (_, _, real) = new_api_key().unwrap();
        assert_eq!(params(dummy_hash()), params(&real));
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn failures_per_key_id_are_limited_and_a_verified_key_still_passes() {
        let limits = AuthLimits {
            failures_per_source: 1000,
            failures_per_key: 3,
            ..AuthLimits::default()
        };
        let (_d, auth, key) = node(limits);
        // Verified once before the attack: known good from then on.
        assert!(
            auth.authenticate(Some(&bearer(&key)), ip(9), None)
                .await
                .unwrap()
                .is_some()
        );
        // That verification counted as one attempt not known good; two more fit the quota.
        for n in 0..2 {
            let got = auth
                .authenticate(Some(&bearer(&wrong(&key, n))), ip(n as u8 + 1), None)
                .await;
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
        // From any address now: refused before any argon2, with a Retry-After.
        let runs = auth.argon2_runs();
        let got = auth
            .authenticate(Some(&bearer(&wrong(&key, 7))), ip(50), None)
            .await;
        let Err(e @ AuthError::Throttled { .. }) = got else {
            panic!("not throttled: {got:?}");
        };
        assert!(e.retry_after().is_some_and(|s| s >= 1));
        assert_eq!(auth.argon2_runs(), runs);
        // The partner's verified key is not locked out.
        assert!(
            auth.authenticate(Some(&bearer(&key)), ip(9), None)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn failures_per_source_are_limited() {
        let limits = AuthLimits {
            failures_per_source: 3,
            failures_per_key: 1000,
            ..AuthLimits::default()
        };
        let (_d, auth, key) = node(limits);
        for n in 0..3 {
            let got = auth
                .authenticate(Some(&bearer(&format!("bad-admin-{n}"))), ip(1), None)
                .await;
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
        // The same source: refused, for admin tokens and API keys alike.
        let got = auth
            .authenticate(Some(&bearer("bad-admin-9")), ip(1), None)
            .await;
        assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
        let got = auth
            .authenticate(Some(&bearer(&wrong(&key, 1))), ip(1), None)
            .await;
        assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
        assert_eq!(auth.argon2_runs(), 0);
        // Another source is not affected; the right admin token never is.
        let got = auth
            .authenticate(Some(&bearer("bad-admin-9")), ip(2), None)
            .await;
        assert!(matches!(got, Ok(None)), "{got:?}");
        let got = auth.authenticate(Some(&bearer(ADMIN)), ip(1), None).await;
        assert!(matches!(got, Ok(Some(Principal::Admin))), "{got:?}");
    }

    /// Issue 19: join attempts count against the failure quota of their source, proven
    /// ones (issue 20) against their invitation's; another source and another invitation
    /// are not affected.
    #[tokio::test]
    async fn join_attempts_are_limited_per_source_and_invitation() {
        let limits = AuthLimits {
            failures_per_source: 3,
            failures_per_key: 2,
            ..AuthLimits::default()
        };
        let (_d, auth, _key) = node(limits);
        for _ in 0..3 {
            auth.charge_join(ip(1)).unwrap();
        }
        let got = auth.charge_join(ip(1));
        assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
        assert!(got.unwrap_err().retry_after().is_some());
        auth.charge_join(ip(2)).unwrap();
        // Per invitation, whatever the source.
        auth.charge_join_invitation("inv-e").unwrap();
        auth.charge_join_invitation("inv-e").unwrap();
        let got = auth.charge_join_invitation("inv-e");
        assert!(matches!(got, Err(AuthError::Throttled { .. })), "{got:?}");
        auth.charge_join_invitation("inv-f").unwrap();
    }

    #[tokio::test]
    async fn verifications_beyond_the_queue_are_refused_at_once() {
        let limits = AuthLimits {
            hash_concurrency: 1,
            hash_queue: 1,
            ..generous()
        };
        let (_d, auth, key) = node(limits);
        // The one running slot taken, as by a verification in progress.
        let slot = (
            auth.admitted.clone().acquire_owned().await.unwrap(),
            auth.running.clone().acquire_owned().await.unwrap(),
        );
        let queued = {
            let (auth, token) = (auth.clone(), bearer(&wrong(&key, 1)));
            tokio::spawn(async move { auth.authenticate(Some(&token), ip(1), None).await })
        };
        // Until it waits in the queue (its admission permit taken).
        while auth.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let got = auth
            .authenticate(Some(&bearer(&wrong(&key, 2))), ip(2), None)
            .await;
        let Err(e @ AuthError::Busy { .. }) = got else {
            panic!("not refused: {got:?}");
        };
        assert_eq!(e.retry_after(), Some(1));
        assert_eq!(auth.argon2_runs(), 0);
        drop(slot);
        assert!(matches!(queued.await.unwrap(), Ok(None)));
        assert_eq!(auth.argon2_runs(), 1);
    }

    #[tokio::test]
    async fn the_negative_cache_is_bounded() {
        let limits = AuthLimits {
            negative_cache: 4,
            ..generous()
        };
        let (_d, auth, key) = node(limits);
        for n in 0..10 {
            auth.authenticate(Some(&bearer(&wrong(&key, n))), ip(1), None)
                .await
                .unwrap();
        }
        assert!(lock(&auth.failed).len() <= 4);
        assert_eq!(auth.argon2_runs(), 10);
    }
}
