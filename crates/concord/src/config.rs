//! The node's configuration: `concord.toml` in the data directory, every key overridable by
//! an environment variable (`CONCORD_` + the key in upper case, e.g. `CONCORD_LISTEN`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "concord.toml";
/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "concord.sqlite";

/// What `concord init` writes: every key, commented.
pub const DEFAULT_CONFIG: &str = r#"# Concord node configuration.
# Every key can be overridden by an environment variable: CONCORD_ + the key in upper case
# (e.g. CONCORD_LISTEN=0.0.0.0:8443). Command-line flags override both.

# Address and port `concord serve` listens on (plain HTTP; put TLS in front, or see the docs).
listen = "127.0.0.1:8080"

# Title and description of the TAXII discovery and API root resources (TAXII 2.1 §4.1, §4.2).
title = "Concord node"
description = "A Concord threat-intelligence exchange node"

# Contact information shown in the discovery resource.
contact = ""

# Path segment of the node's TAXII API root: resources live under /<api_root>/.
api_root = "concord"

# The base URL partners reach this node at (http(s)://host[:port], as seen from outside: a
# proxy's or a NAT's address, not the listen address). `concord invite` writes it into its
# invitations (default of --url), and `concord join` gives it to the inviting node so that
# it can reach this node back; empty: not reachable from outside.
public_url = ""

# Largest TAXII POST body accepted, in bytes (the API root's max_content_length); larger
# requests get 413.
max_content_length = 67108864

# Largest single STIX object accepted, in bytes as written, at every way in (TAXII POST,
# `concord import`, the web UI's import, sync pulls, MISP import). Checked while reading: a
# larger object fails its file or request (413 over HTTP) and nothing of it is stored. 8 MiB
# holds any real object, an artifact with a sample of a few MiB included, and bounds the memory
# one import costs.
max_object_size = 8388608

# Largest upload once decompressed, in bytes (gzip files given to the web UI): a small file that
# unpacks to more (a gzip bomb) is refused when the cap is crossed, not after.
max_unpacked = 268435456

# Feeds for sensors (…/feeds/{format}, `concord export --format suricata|zeek-intel|rpz|csv|plain`)
# leave out values on the MISP warninglists in this directory (`<name>/list.json`, as in
# MISP/misp-warninglists' `lists/`); relative to the data directory. Empty: none.
feed_warninglists = ""

# The only directory whose files a peer added over the admin API (POST /api/v1/peers) may
# name (token_file, password_file, ca_file, client_cert, client_key), and where the API
# writes a peer's inline token or password (one file per peer, mode 0600); relative to the
# data directory. `concord peer add` may name any file but the node's own secret files.
peer_files_dir = "peer-files"

# Where the node's data lives. Empty: the SQLite file concord.sqlite in this directory.
# A PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE) puts it in PostgreSQL,
# where several `concord serve` processes may share it and act as one node; add
# ?options=-c%20search_path%3DSCHEMA to use a schema other than the user's default.
# `sqlite:PATH` names another SQLite file. Prefer CONCORD_DATABASE_URL for a URL with a
# password. Overridden by --database-url.
database_url = ""

# TLS: the server's certificate chain and private key (PEM files). Empty: plain HTTP (then
# put a TLS proxy in front of the node). With tls_client_ca, every client must present a
# certificate that chains to one of its CAs (mutual TLS), before any token is looked at.
tls_cert = ""
tls_key = ""
tls_client_ca = ""

# Run sync rounds with the peers (`concord peer add`) while serving, each at its interval.
# Rounds with one peer never overlap, even across several serve processes on one database.
sync_schedule = true

# The TLP version of the marking definitions that MISP `tlp:*` tags become on import: "2.0"
# (FIRST TLP 2.0, through its STIX extension; tlp:white is CLEAR) or "1.0" (STIX 2.1
# §7.2.1.4; tlp:clear is WHITE). One import writes one version; TLP 1.0 has no AMBER+STRICT,
# so that tag alone stays TLP 2.0. The web UI's import always writes 2.0.
tlp_version = "2.0"

# The egress policy: what partners receive of personal data (README, "The egress policy").
# Without this section, the built-in privacy-first defaults apply: personal data is
# pseudonymised for partners across a border and allowed within the node's jurisdiction
# (`concord init --jurisdiction CC` sets it; without it every partner is across a border).
# The IP addresses of infrastructure indicators (in indicator patterns, and the SCOs
# ipv4-addr, ipv6-addr, domain-name, url, network-traffic) go to every partner as written:
# they are attackers' machines, and detecting attacks is a legitimate purpose (GDPR
# recital 49). People stay protected: prose, identities, e-mail addresses, user accounts.
# Every transfer records the version applied, `policy_version@DIGEST` (the digest changes
# with any rule); `concord policy show` prints the active one.
#
# The stricter rule, one line: uncomment it and those IP addresses are personal data like
# any other (pseudonymised across a border: a pseudonym never matches a log). In a [policy]
# section of your own, write it as `infrastructure_indicators = "protect"` instead.
# policy.infrastructure_indicators = "protect"
#
# [policy]
# policy_version = "2026-11-a"
# infrastructure_indicators = "allow"  # allow (default) | protect
# important_data_markings = []        # more marking-definition ids that never cross a border
# [policy.domestic]
# default = "allow"
# [policy.cross_border]
# default = "pseudonymise"             # allow | redact | pseudonymise | drop
# categories = { payment_card = "drop", iban = "redact" }
# [[policy.pairs]]                     # per jurisdiction pair, first match wins
# from = "CN"
# to = "DE"
# actions = { default = "redact" }
# [policy.partners.acme]               # per partner, before everything else
# default = "allow"
# [policy.detectors]
# infrastructure = ["192.0.2.0/24"]    # addresses of these ranges are not personal data
#
# Agreements (README, "Agreements"): per partner or sharing group, IEP 2.0 clauses enforced
# at every door, the PAP gate of the automated doors (feeds, webhooks, stream, /api/match),
# and the legal basis of a cross-border transfer. Part of the policy version.
# [policy.agreements.eu-bilateral]
# partners = ["bsi"]                   # and/or groups = ["eu-cert"]
# start_date = "2026-01-01T00:00:00Z"  # nothing flows before it (IEP 2.0 §11)
# end_date = "2027-01-01T00:00:00Z"    # nothing flows from then on, sync stops both ways
# attribution = "must-not"             # may (default) | must | must-not: created_by_ref and
#                                      # the producer's identity objects do not leave
# encrypt_in_transit = "must"          # may (default) | must: no sync or requests over plain HTTP
# permitted_actions = "externally-visible-direct-actions"  # none | contact-for-instruction |
#                                      # internally-visible-actions |
#                                      # externally-visible-indirect-actions | (default)
# pap_automated = "amber"              # clear | green | amber (default) | red: the strictest
#                                      # PAP the automated doors carry
# transfer_mechanism = "gdpr-scc"      # pipl-standard-contract | pipl-certification |
#                                      # pipl-security-assessment | gdpr-adequacy | gdpr-scc |
#                                      # gdpr-bcr | gdpr-derogation | other
# legal_basis = "SCC module 1, signed 2026-03-02"

# What a client may cost the node (README, "Limits"). The defaults:
#
# [limits]
# hash_concurrency = 2                 # API-key (argon2id) checks at once, ~19 MiB each
# hash_queue = 32                      # checks that may wait; more get 503 + Retry-After
# failures_per_source = 30             # failed logins per minute per address; then 429
# failures_per_key = 10                # the same per API key id (web UI account)
# negative_cache = 10000               # failed keys remembered (no argon2 when repeated)
# partner_requests_per_sec = 100       # requests per second one partner may make (each read is audited); then 429; 0: off
# partner_request_burst = 500          # requests one partner may make at once above that rate
# tls_handshake_timeout_secs = 10      # TLS: a handshake not done by then is closed
# header_read_timeout_secs = 10        # a request header not read by then is closed
# body_timeout_secs = 30               # a request body not received whole by then gets 408, connection closed
# login_body_bytes = 4096              # POST /ui/login: body bytes; more get 413 before any is read
# match_body_bytes = 4194304           # POST /api/match: body bytes; more get 413 before any is read
# join_body_bytes = 65536              # POST /concord/join/ (a join request): body bytes; more get 413
# peer_agreement_bytes = 262144        # sync: bytes of a peer's agreement document read; a longer one stops the round
# write_timeout_secs = 30              # a client that takes no byte of its response for this long is dropped
# min_send_rate_bytes_per_sec = 4096   # a client taking its response slower (while it is waited for) is dropped; 0: off
# min_send_rate_window_secs = 10       # the waiting time that rate is judged over (the first is the grace)
# max_connections = 1024               # connections open at once; more wait in the listen queue
# match_collections = 16               # POST /api/match: distinct collections; more get 400
# match_lines = 50000                  # POST /api/match: lines; more get 400
# match_bytes = 1048576                # POST /api/match: bytes of lines; more get 400
# match_cache_sets = 8                 # POST /api/match: compiled indicator sets kept
# match_cache_sets_per_audience = 2    # POST /api/match: of those, sets one partner (or the operator) keeps
# match_compile_concurrency = 1        # POST /api/match: sets compiled at once
# match_compile_queue = 8              # POST /api/match: compiles that may wait; more get 503 + Retry-After
# page_concurrency = 4                 # TAXII pages built at once (default: CPU cores, at most 4)
# page_queue = 32                      # pages that may wait; more get 503 + Retry-After
# page_max_bytes = 16777216            # bytes of objects on one page (at least one object)
# decision_cache_bytes = 67108864      # decided page entries the egress door keeps between requests (0: none)
# answer_floor_ms = 5                  # a partner's answer about an object id leaves no sooner (per id)
# answer_jitter_ms = 5                 # plus a random delay of up to this
# stream_max = 64                      # live streams (…/stream/) open at once; more get 503
# stream_max_per_partner = 4           # of those, streams one partner holds; more get 429
# stream_buffer = 16                   # batches queued per stream for a slow client
# stream_stall_ms = 10000              # a buffer full this long drops the client (slow-client)
# stream_batch = 1000                  # objects per stream batch (one event, one audit entry)
# stream_heartbeat_secs = 15           # heartbeat comment lines while nothing else is sent
# stream_poll_ms = 500                 # look for other processes' writes this often
# dashboard_max_sightings = 10000      # web UI home page: sightings its charts count
# sqlite_readers = 4                   # SQLite reader connections kept open
# sqlite_cache_bytes = 8388608         # SQLite page cache per connection
# postgres_max_connections = 10        # PostgreSQL connections per process

# The audit log (README, "The audit log"). The defaults:
#
# [audit]
# checkpoint_every = 1000              # `serve` signs a checkpoint once this many entries follow the last
# retention_days = 0                   # entries older than this go to archives with
#                                      # `concord audit archive -o FILE`; 0: kept in the database
# [audit.retention_days_by_jurisdiction]
# DE = 3650                            # partners of this jurisdiction: their entries stay this long

# Notices when a request for assistance addressed to this node arrives (README, "Incidents").
# `serve` looks every notify_every_secs; each request is announced once. The defaults:
#
# [incident]
# notify_command = ""                  # run with `sh -c`, the request as JSON on stdin
# notify_webhook = ""                  # POST the same JSON there, signed (X-Concord-Signature)
# notify_secret_file = ""              # the webhook's HMAC-SHA-256 key; required with notify_webhook
# notify_every_secs = 2
# notify_max_per_look = 10             # notices per look, taken in turn from each source

# Webhooks (`concord webhook add`, README "Webhooks"): how `serve` delivers. The defaults:
#
# [webhooks]
# max_attempts = 8                     # attempts of one delivery, then it is a dead letter
# backoff_initial_secs = 5             # wait after the first failure, doubled after each
# backoff_max_secs = 600               # the longest wait between two attempts
# timeout_secs = 10                    # one POST (connect, send, answer)
# max_body_bytes = 1048576             # the largest body of one delivery
# max_objects = 100                    # objects per delivery at most
# every_secs = 2                       # how often `serve` looks for new objects

# Named users (`concord user add`, README "Users and roles"). The defaults:
#
# [users]
# totp_required = []                   # roles that must give a TOTP code at the web login,
#                                      # e.g. ["operator", "releaser"]
# [users.os]
# alice = "alice"                      # the OS user alice runs the CLI as the user alice

# Login to the web UI through an OpenID Provider (OpenID Connect, README "Single sign-on"):
# off while `issuer` is empty. Roles come from the node's own users (`concord user add`),
# never from the provider. The defaults:
#
# [oidc]
# issuer = ""                          # e.g. "https://id.example.org/realms/cert": exactly as
#                                      # the provider's discovery document and ID tokens say
# client_id = ""                       # the client registered at the provider
# client_secret_file = ""              # a file holding the client secret (relative to the
#                                      # data directory; never the secret itself here)
# redirect_url = ""                    # empty: public_url + "/ui/oidc/callback" (register it
#                                      # at the provider as the client's redirect URI)
# scopes = ["openid", "profile"]
# user_claim = "preferred_username"    # the ID token's claim holding the user's name here;
#                                      # "sub": linked one by one in [oidc.subjects]
# second_factor_amr = ["mfa", "otp", "hwk", "sc"]
#                                      # amr values (RFC 8176) that count as a second factor
#                                      # for the roles of [users] totp_required
# timeout_secs = 10                    # one request to the provider (discovery, JWKS, token)
# max_response_bytes = 262144          # the largest answer of the provider read
# max_callback_bytes = 4096            # the largest query of /ui/oidc/callback
# pending_ttl_secs = 600               # a login begun must come back within this
# pending_per_source = 20              # logins pending at once per client address (/64)
# pending_max = 10000                  # logins pending at once in all
# leeway_secs = 60                     # clock skew allowed on the ID token's exp and iat
# [oidc.subjects]                      # with user_claim = "sub": sub -> user name
# "248289761001" = "alice"

# Where the node connects on a partner's word (README "Outbound requests"): peers' URLs
# (`peer add`, the joining node's URL kept at a join, an invitation's URL at `join`). Public
# addresses only by default: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
# cloud metadata; fe80::/10), CGNAT (100.64/10), unspecified, multicast, reserved and
# documentation ranges and their IPv4-mapped forms are refused, when the URL is given and on
# the addresses its host resolves to at each connection. Redirects are not followed. Name
# what else may be reached (peers on this machine or an internal network). The default:
#
# [outbound]
# allow = []                           # networks ("10.20.0.0/16", "fd00:1::/48"), addresses
#                                      # ("127.0.0.1", "::1") and host names ("taxii.lan":
#                                      # whatever it resolves to); CONCORD_OUTBOUND_ALLOW
#                                      # (comma-separated) overrides it

# Four-eyes release (README "Four-eyes release"). The default:
#
# [release]
# four_eyes = false                    # true: a change that widens what a cross-border
#                                      # partner receives (a lower default TLP, a new
#                                      # recipient or group, a grant in an incident) waits
#                                      # for a second releaser's approval (concord approval)
# unnamed_persons = false              # true: `operator` (the CLI without --as) and the
#                                      # admin token count as persons who may ask for and
#                                      # approve a widening; false: named users only
"#;

/// Parsed configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `listen`.
    pub listen: String,
    /// `title`.
    pub title: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `contact`.
    #[serde(default)]
    pub contact: String,
    /// `api_root`.
    pub api_root: String,
    /// `public_url`: the base URL partners reach this node at; empty: none (issue 19).
    #[serde(default)]
    pub public_url: String,
    /// `max_content_length`, bytes.
    pub max_content_length: u64,
    /// `max_object_size`, bytes.
    #[serde(default = "default_max_object_size")]
    pub max_object_size: u64,
    /// `max_unpacked`, bytes.
    #[serde(default = "default_max_unpacked")]
    pub max_unpacked: u64,
    /// `database_url`: empty for the SQLite file of the data directory.
    #[serde(default)]
    pub database_url: String,
    /// `tls_cert`: PEM certificate chain; empty for plain HTTP.
    pub tls_cert: String,
    /// `tls_key`: PEM private key.
    pub tls_key: String,
    /// `tls_client_ca`: PEM CAs of required client certificates; empty: none required.
    pub tls_client_ca: String,
    /// `sync_schedule`: run sync rounds while serving.
    pub sync_schedule: bool,
    /// `tlp_version`: "1.0" or "2.0", the TLP version MISP tags become (see
    /// [`Config::tlp_version`]).
    #[serde(default = "default_tlp_version")]
    pub tlp_version: String,
    /// `feed_warninglists`: a directory of MISP warninglists whose values are left out of
    /// every feed (`…/feeds/{format}`, `concord export --format suricata…`); relative to the
    /// data directory; empty: none.
    #[serde(default)]
    pub feed_warninglists: String,
    /// `peer_files_dir`: the directory of the files a peer added over the admin API may
    /// name, and of its inline secrets; relative to the data directory.
    #[serde(default = "default_peer_files_dir")]
    pub peer_files_dir: String,
    /// `[policy]`: the egress policy (built-in defaults when absent).
    #[serde(default)]
    pub policy: concord_policy::actions::PolicyConfig,
    /// `[limits]`: what a client may cost (defaults when absent).
    #[serde(default)]
    pub limits: Limits,
    /// `[audit]`: checkpoints and retention of the audit log (defaults when absent).
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[incident]`: notices of requests for assistance addressed to this node.
    #[serde(default)]
    pub incident: IncidentConfig,
    /// `[webhooks]`: delivery of webhooks (defaults when absent).
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// `[users]`: named users' second factor per role, and OS users acting as named users
    /// on the CLI (issue 20).
    #[serde(default)]
    pub users: UsersConfig,
    /// `[release]`: four-eyes release (issue 20, item 3).
    #[serde(default)]
    pub release: ReleaseConfig,
    /// `[oidc]`: the web UI's login through an OpenID Provider (issue 20, item 5).
    #[serde(default)]
    pub oidc: OidcConfig,
    /// `[outbound]`: where requests to URLs from outside may go (issue 19).
    #[serde(default)]
    pub outbound: OutboundConfig,
}

/// The `[outbound]` section (issue 19: no blind SSRF through a partner's URL).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// `allow`: networks (CIDR), addresses and host names that requests to a peer's URL may
    /// reach besides public addresses; empty (the default): public addresses only. See
    /// [`concord_sync::Outbound::allowing`]. `CONCORD_OUTBOUND_ALLOW` (comma-separated)
    /// overrides it.
    pub allow: Vec<String>,
}

impl Config {
    /// The outbound rule of `[outbound] allow`. Errors: an entry that is no network,
    /// address or host name, naming it (`[outbound] allow[1] "10.0.0.1/8": …`).
    pub fn outbound(&self) -> Result<std::sync::Arc<concord_sync::Outbound>> {
        concord_sync::Outbound::allowing(&self.outbound.allow)
            .map(std::sync::Arc::new)
            .map_err(|e| anyhow::anyhow!("[outbound] {e}"))
    }

    /// What a sync round reads from a peer and where it may connect: [`Limits::round`]
    /// with [`Config::outbound`]. Errors: those of [`Config::outbound`].
    pub fn round(&self) -> Result<concord_sync::RoundOptions> {
        Ok(concord_sync::RoundOptions {
            outbound: self.outbound()?,
            ..self.limits.round()
        })
    }
}

/// The `[oidc]` section (issue 20, item 5): off while `issuer` is empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// `issuer`: the provider's issuer identifier (https; http only on loopback).
    pub issuer: String,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret_file`: the file holding the client secret, relative to the data
    /// directory (the secret is never written in `concord.toml`).
    pub client_secret_file: String,
    /// `redirect_url`: empty: `public_url` + `/ui/oidc/callback`.
    pub redirect_url: String,
    /// `scopes`: `openid` is added when missing.
    pub scopes: Vec<String>,
    /// `user_claim`: the ID token's claim that holds the user's name (`sub`: see
    /// `subjects`).
    pub user_claim: String,
    /// `[oidc.subjects]`: `sub` → user name, with `user_claim = "sub"`.
    pub subjects: std::collections::BTreeMap<String, String>,
    /// `second_factor_amr`: `amr` values (RFC 8176) that count as a second factor.
    pub second_factor_amr: Vec<String>,
    /// `timeout_secs`: one request to the provider (1–300).
    pub timeout_secs: u64,
    /// `max_response_bytes`: the largest answer of the provider read (at least 1,024).
    pub max_response_bytes: u64,
    /// `max_callback_bytes`: the largest query of the callback (at least 256).
    pub max_callback_bytes: usize,
    /// `pending_ttl_secs`: how long a begun login may take (30–3,600).
    pub pending_ttl_secs: u64,
    /// `pending_per_source`: logins pending per client address (an IPv6 one by its /64).
    pub pending_per_source: u64,
    /// `pending_max`: logins pending in all.
    pub pending_max: u64,
    /// `leeway_secs`: clock skew allowed on `exp` and `iat` (at most 300).
    pub leeway_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> OidcConfig {
        OidcConfig {
            issuer: String::new(),
            client_id: String::new(),
            client_secret_file: String::new(),
            redirect_url: String::new(),
            scopes: vec!["openid".to_owned(), "profile".to_owned()],
            user_claim: "preferred_username".to_owned(),
            subjects: std::collections::BTreeMap::new(),
            second_factor_amr: ["mfa", "otp", "hwk", "sc"].map(str::to_owned).to_vec(),
            timeout_secs: 10,
            max_response_bytes: 256 << 10,
            max_callback_bytes: 4096,
            pending_ttl_secs: 600,
            pending_per_source: 20,
            pending_max: 10_000,
            leeway_secs: 60,
        }
    }
}

impl OidcConfig {
    /// The web UI's OpenID Connect login, or `None` while `issuer` is empty; `dir`: the data
    /// directory (where `client_secret_file` is found), `public_url`: the node's.
    ///
    /// Errors: a missing `client_id` or `client_secret_file`, an unreadable or empty secret,
    /// no redirect URL (neither `redirect_url` nor `public_url`), a limit out of its range,
    /// `user_claim = "sub"` without `[oidc.subjects]`, a subject linked to a name that is no
    /// user name; each naming the key.
    pub fn options(
        &self,
        dir: &Path,
        public_url: &str,
    ) -> Result<Option<std::sync::Arc<concord_web::oidc::OidcOptions>>> {
        if self.issuer.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            !self.client_id.is_empty(),
            "[oidc] issuer is set: client_id is required"
        );
        anyhow::ensure!(
            !self.client_secret_file.is_empty(),
            "[oidc] issuer is set: client_secret_file is required (the client secret is never \
             written in concord.toml)"
        );
        let path = dir.join(&self.client_secret_file);
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("[oidc] client_secret_file {}: cannot read", path.display()))?
            .trim()
            .to_owned();
        anyhow::ensure!(
            !secret.is_empty(),
            "[oidc] client_secret_file {}: the file is empty",
            path.display()
        );
        let redirect_url = if self.redirect_url.is_empty() {
            anyhow::ensure!(
                !public_url.is_empty(),
                "[oidc] redirect_url is empty and so is public_url: set one of them"
            );
            format!("{}/ui/oidc/callback", public_url.trim_end_matches('/'))
        } else {
            self.redirect_url.clone()
        };
        let range = |key: &str, v: u64, lo: u64, hi: u64| -> Result<()> {
            anyhow::ensure!(
                (lo..=hi).contains(&v),
                "[oidc] {key} = {v}: must be from {lo} to {hi}"
            );
            Ok(())
        };
        range("timeout_secs", self.timeout_secs, 1, 300)?;
        range(
            "max_response_bytes",
            self.max_response_bytes,
            1024,
            64 << 20,
        )?;
        range(
            "max_callback_bytes",
            u64::try_from(self.max_callback_bytes).unwrap_or(u64::MAX),
            256,
            65_536,
        )?;
        range("pending_ttl_secs", self.pending_ttl_secs, 30, 3600)?;
        range("pending_per_source", self.pending_per_source, 1, 1_000_000)?;
        range("pending_max", self.pending_max, 1, 10_000_000)?;
        range("leeway_secs", self.leeway_secs, 0, 300)?;
        let user_claim = if self.user_claim == "sub" {
            anyhow::ensure!(
                !self.subjects.is_empty(),
                "[oidc] user_claim = \"sub\" links each sub to a user in [oidc.subjects], which \
                 is empty"
            );
            for (sub, name) in &self.subjects {
                concord_store::people::check_user_name(name)
                    .map_err(|e| anyhow::anyhow!("[oidc.subjects] {sub:?}: {e}"))?;
            }
            concord_web::oidc::UserClaim::Subject(self.subjects.clone())
        } else {
            anyhow::ensure!(!self.user_claim.is_empty(), "[oidc] user_claim is empty");
            concord_web::oidc::UserClaim::Claim(self.user_claim.clone())
        };
        let client = concord_oidc::Client::new(concord_oidc::Settings {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret,
            redirect_url,
            scopes: self.scopes.clone(),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            max_response_bytes: self.max_response_bytes,
            leeway_secs: self.leeway_secs,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Some(std::sync::Arc::new(concord_web::oidc::OidcOptions {
            client,
            user_claim,
            second_factor_amr: self.second_factor_amr.clone(),
            pending_ttl: std::time::Duration::from_secs(self.pending_ttl_secs),
            quota: concord_store::OidcQuota {
                per_source: self.pending_per_source,
                total: self.pending_max,
            },
            max_callback_bytes: self.max_callback_bytes,
        })))
    }
}

/// The `[release]` section (issue 20, item 3).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleaseConfig {
    /// `four_eyes`: a change that widens what a cross-border partner receives (a partner
    /// whose jurisdiction differs from the policy's; every partner when the policy names
    /// none) waits for a second releaser's approval (`concord approval`). Default `false`,
    /// so that a single operator's node works as before; `CONCORD_RELEASE_FOUR_EYES`
    /// overrides it.
    pub four_eyes: bool,
    /// `unnamed_persons`: `operator` (the CLI without `--as` or a mapped OS user) and
    /// `admin-token` count as persons for four-eyes release, who may ask for a widening and
    /// approve another's. Default `false`: they are not (anyone who can run the CLI or holds
    /// the token could ask as one and approve as a named user), so a widening must be asked
    /// for and approved by named users. `CONCORD_RELEASE_UNNAMED_PERSONS` overrides it.
    pub unnamed_persons: bool,
}

fn default_peer_files_dir() -> String {
    "peer-files".to_owned()
}

impl Config {
    /// `peer_files_dir`, absolute (relative to the data directory `dir`).
    pub fn peer_files_dir(&self, dir: &Path) -> std::path::PathBuf {
        absolute(&dir.join(&self.peer_files_dir))
    }

    /// The node's own secret files, never a peer's file (`peer add`, `POST /api/v1/peers`):
    /// the node key, the configuration (it may hold a database password), the SQLite
    /// database, its audit log's file and their journals (`sqlite:PATH` too), the TLS key
    /// and the incident webhook's key.
    pub fn own_files(&self, dir: &Path) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = [
            concord_store::node_key::NODE_KEY_FILE,
            CONFIG_FILE,
            DATABASE_FILE,
            "concord.sqlite-wal",
            "concord.sqlite-shm",
            "concord.sqlite-journal",
            // The audit log's own file (schema 26) and its journals.
            "concord.audit.sqlite",
            "concord.audit.sqlite-wal",
            "concord.audit.sqlite-shm",
            "concord.audit.sqlite-journal",
        ]
        .iter()
        .map(|f| absolute(&dir.join(f)))
        .collect();
        for f in [
            &self.tls_key,
            &self.incident.notify_secret_file,
            &self.oidc.client_secret_file,
        ] {
            if !f.is_empty() {
                files.push(absolute(Path::new(f)));
            }
        }
        if let Some(db) = self.database_url.strip_prefix("sqlite:") {
            files.push(absolute(Path::new(db)));
            files.push(absolute(&concord_store::sqlite::audit_path(Path::new(db))));
        }
        files
    }
}

/// `path` made absolute against the working directory (as given when that fails).
fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The `[incident]` section: what `serve` does when a request for assistance addressed to
/// this node arrives (issue 18, item 6).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// `notify_command`: run with `sh -c`, the request as JSON on stdin (empty: none).
    pub notify_command: String,
    /// `notify_webhook`: an http(s) URL the same JSON is POSTed to, signed (empty: none).
    pub notify_webhook: String,
    /// `notify_secret_file`: a file holding the webhook's HMAC-SHA-256 key (at least 16
    /// bytes once trimmed); required with `notify_webhook`.
    pub notify_secret_file: String,
    /// `notify_every_secs`: how often `serve` looks for new requests (at least 1).
    pub notify_every_secs: u64,
    /// `notify_max_per_look`: at most this many notices per look (at least 1), taken in
    /// turn from each source (the peer or partner a request came from), so a partner that
    /// writes thousands of requests neither runs thousands of commands at once nor delays
    /// another's request by more than a look; the rest wait for the next looks.
    pub notify_max_per_look: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            notify_command: String::new(),
            notify_webhook: String::new(),
            notify_secret_file: String::new(),
            notify_every_secs: 2,
            notify_max_per_look: 10,
        }
    }
}

/// The `[users]` section (issue 20).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// `totp_required`: roles whose users must give a TOTP code at the web UI's login
    /// (`analyst`, `releaser`, `operator`, `auditor`). Default: none.
    pub totp_required: Vec<String>,
    /// `[users.os]`: OS user name → named user, so that the CLI run by that OS user acts as
    /// that named user without `--as`.
    pub os: std::collections::BTreeMap<String, String>,
}

impl UsersConfig {
    /// The roles of `totp_required`. Errors: a name that is not a role, naming the key.
    pub fn totp_roles(&self) -> Result<Vec<concord_server::roles::Role>> {
        self.totp_required
            .iter()
            .map(|r| {
                r.parse()
                    .map_err(|e: String| anyhow::anyhow!("[users] totp_required: {e}"))
            })
            .collect()
    }

    /// The options `serve` gives the web UI's login.
    pub fn options(&self) -> Result<concord_server::auth::users::UserOptions> {
        Ok(concord_server::auth::users::UserOptions {
            totp_required: self.totp_roles()?,
        })
    }
}

/// The `[webhooks]` section: how `serve` delivers webhooks (issue 21, item 2).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// `max_attempts`: attempts of one delivery before it becomes a dead letter (1–100).
    pub max_attempts: u32,
    /// `backoff_initial_secs`: seconds after the first failed attempt, doubled after each
    /// further one (at least 1).
    pub backoff_initial_secs: u64,
    /// `backoff_max_secs`: the longest wait between two attempts, seconds (at least
    /// `backoff_initial_secs`).
    pub backoff_max_secs: u64,
    /// `timeout_secs`: how long one POST may take, seconds (1–300).
    pub timeout_secs: u64,
    /// `max_body_bytes`: the largest body of one delivery (at least 1024); a single object
    /// larger than that is dead-lettered unsent.
    pub max_body_bytes: usize,
    /// `max_objects`: objects per delivery at most (1–10000).
    pub max_objects: usize,
    /// `every_secs`: how often `serve` looks for new objects and due retries (at least 1).
    pub every_secs: u64,
    /// `concurrency`: webhooks delivered at once (1–64), each by one thread: a receiver that
    /// answers slowly (up to `timeout_secs` a POST) holds one of them, not the others.
    pub concurrency: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_attempts: 8,
            backoff_initial_secs: 5,
            backoff_max_secs: 600,
            timeout_secs: 10,
            max_body_bytes: 1 << 20,
            max_objects: 100,
            every_secs: 2,
            concurrency: 4,
        }
    }
}

impl WebhooksConfig {
    /// The delivery options. Errors name the key and its bounds.
    pub fn options(&self) -> Result<concord_sync::webhook::Options> {
        let check = |ok: bool, key: &str, rule: &str| {
            anyhow::ensure!(ok, "[webhooks] {key}: must be {rule}");
            Ok(())
        };
        check(
            (1..=100).contains(&self.max_attempts),
            "max_attempts",
            "1 to 100",
        )?;
        check(
            self.backoff_initial_secs >= 1,
            "backoff_initial_secs",
            "at least 1",
        )?;
        check(
            self.backoff_max_secs >= self.backoff_initial_secs,
            "backoff_max_secs",
            "at least backoff_initial_secs",
        )?;
        check(
            (1..=300).contains(&self.timeout_secs),
            "timeout_secs",
            "1 to 300",
        )?;
        check(
            self.max_body_bytes >= 1024,
            "max_body_bytes",
            "at least 1024",
        )?;
        check(
            (1..=10_000).contains(&self.max_objects),
            "max_objects",
            "1 to 10000",
        )?;
        check(self.every_secs >= 1, "every_secs", "at least 1")?;
        check(
            (1..=64).contains(&self.concurrency),
            "concurrency",
            "1 to 64",
        )?;
        Ok(concord_sync::webhook::Options {
            max_attempts: self.max_attempts,
            backoff_initial: std::time::Duration::from_secs(self.backoff_initial_secs),
            backoff_max: std::time::Duration::from_secs(self.backoff_max_secs),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            max_body_bytes: self.max_body_bytes,
            max_objects: self.max_objects,
        })
    }
}

/// The `[audit]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `checkpoint_every`: `serve` signs a checkpoint once this many entries follow the last
    /// one (checked every few seconds); `concord audit checkpoint` signs one at once.
    pub checkpoint_every: i64,
    /// `retention_days`: how long entries stay in the database before
    /// `concord audit archive` (without `--before`) moves them to a sealed file; 0: forever.
    pub retention_days: u64,
    /// `[audit.retention_days_by_jurisdiction]`: a longer or shorter period for the entries
    /// of partners of a jurisdiction (ISO 3166-1 alpha-2). Archiving cuts a prefix of the
    /// chain, so the cut is at the longest period of the partners known (no entry leaves the
    /// database before its period).
    pub retention_days_by_jurisdiction: std::collections::BTreeMap<String, u64>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            retention_days: 0,
            retention_days_by_jurisdiction: Default::default(),
        }
    }
}

/// The `[limits]` section: the server's [`concord_server::auth::AuthLimits`],
/// [`concord_server::ConnLimits`] and [`concord_server::Limits`], and the store's
/// [`concord_store::StoreOptions`], flat, with their defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// See [`concord_server::auth::AuthLimits::hash_concurrency`].
    pub hash_concurrency: usize,
    /// See [`concord_server::auth::AuthLimits::hash_queue`].
    pub hash_queue: usize,
    /// See [`concord_server::auth::AuthLimits::failures_per_source`] (per minute).
    pub failures_per_source: u32,
    /// See [`concord_server::auth::AuthLimits::failures_per_key`] (per minute).
    pub failures_per_key: u32,
    /// See [`concord_server::auth::AuthLimits::negative_cache`] (entries).
    pub negative_cache: usize,
    /// See [`concord_server::auth::AuthLimits::partner_requests_per_sec`] (0: off).
    pub partner_requests_per_sec: u32,
    /// See [`concord_server::auth::AuthLimits::partner_request_burst`].
    pub partner_request_burst: u32,
    /// [`concord_server::ConnLimits::handshake`], seconds.
    pub tls_handshake_timeout_secs: u64,
    /// [`concord_server::ConnLimits::header_read`], seconds.
    pub header_read_timeout_secs: u64,
    /// [`concord_server::ConnLimits::write`], seconds.
    pub write_timeout_secs: u64,
    /// See [`concord_server::ConnLimits::min_send_rate`] (bytes per second; 0: off).
    pub min_send_rate_bytes_per_sec: u64,
    /// See [`concord_server::ConnLimits::send_rate_window`] (seconds).
    pub min_send_rate_window_secs: u64,
    /// See [`concord_server::ConnLimits::max_connections`].
    pub max_connections: usize,
    /// See [`concord_server::Limits::match_collections`].
    pub match_collections: usize,
    /// See [`concord_server::Limits::match_lines`].
    pub match_lines: usize,
    /// See [`concord_server::Limits::match_bytes`] (bytes).
    pub match_bytes: usize,
    /// See [`concord_server::Limits::match_cache_sets`].
    pub match_cache_sets: usize,
    /// See [`concord_server::Limits::match_cache_sets_per_audience`].
    pub match_cache_sets_per_audience: usize,
    /// See [`concord_server::Limits::match_compile_concurrency`].
    pub match_compile_concurrency: usize,
    /// See [`concord_server::Limits::match_compile_queue`].
    pub match_compile_queue: usize,
    /// See [`concord_server::Limits::page_concurrency`].
    pub page_concurrency: usize,
    /// See [`concord_server::Limits::page_queue`].
    pub page_queue: usize,
    /// See [`concord_server::Limits::page_max_bytes`] (bytes).
    pub page_max_bytes: usize,
    /// See [`concord_server::Limits::decision_cache_bytes`] (bytes).
    pub decision_cache_bytes: usize,
    /// See [`concord_server::Limits::answer_floor_ms`] (milliseconds per id).
    pub answer_floor_ms: u64,
    /// See [`concord_server::Limits::answer_jitter_ms`] (milliseconds).
    pub answer_jitter_ms: u64,
    /// See [`concord_server::Limits::stream_max`].
    pub stream_max: usize,
    /// See [`concord_server::Limits::stream_max_per_partner`].
    pub stream_max_per_partner: usize,
    /// See [`concord_server::Limits::stream_buffer`] (batches).
    pub stream_buffer: usize,
    /// See [`concord_server::Limits::stream_stall_ms`] (milliseconds).
    pub stream_stall_ms: u64,
    /// See [`concord_server::Limits::stream_batch`] (objects).
    pub stream_batch: usize,
    /// See [`concord_server::Limits::stream_heartbeat_secs`] (seconds).
    pub stream_heartbeat_secs: u64,
    /// See [`concord_server::Limits::stream_poll_ms`] (milliseconds).
    pub stream_poll_ms: u64,
    /// See [`concord_server::Limits::body_timeout_secs`] (seconds).
    pub body_timeout_secs: u64,
    /// See [`concord_server::Limits::login_body_bytes`] (bytes).
    pub login_body_bytes: usize,
    /// See [`concord_server::Limits::match_body_bytes`] (bytes).
    pub match_body_bytes: usize,
    /// See [`concord_server::Limits::join_body_bytes`] (bytes).
    pub join_body_bytes: usize,
    /// See [`concord_server::Limits::dashboard_max_sightings`].
    pub dashboard_max_sightings: usize,
    /// See [`concord_sync::RoundOptions::agreement_max_bytes`] (bytes).
    pub peer_agreement_bytes: u64,
    /// See [`concord_store::StoreOptions::sqlite_readers`].
    pub sqlite_readers: usize,
    /// See [`concord_store::StoreOptions::sqlite_cache_bytes`] (bytes).
    pub sqlite_cache_bytes: u64,
    /// See [`concord_store::StoreOptions::postgres_max_connections`].
    pub postgres_max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let auth = concord_server::auth::AuthLimits::default();
        let t = concord_server::ConnLimits::default();
        let server = concord_server::Limits::default();
        let store = concord_store::StoreOptions::default();
        Limits {
            hash_concurrency: auth.hash_concurrency,
            hash_queue: auth.hash_queue,
            failures_per_source: auth.failures_per_source,
            failures_per_key: auth.failures_per_key,
            negative_cache: auth.negative_cache,
            partner_requests_per_sec: auth.partner_requests_per_sec,
            partner_request_burst: auth.partner_request_burst,
            tls_handshake_timeout_secs: t.handshake.as_secs(),
            header_read_timeout_secs: t.header_read.as_secs(),
            write_timeout_secs: t.write.as_secs(),
            min_send_rate_bytes_per_sec: t.min_send_rate,
            min_send_rate_window_secs: t.send_rate_window.as_secs(),
            max_connections: t.max_connections,
            match_collections: server.match_collections,
            match_lines: server.match_lines,
            match_bytes: server.match_bytes,
            match_cache_sets: server.match_cache_sets,
            match_cache_sets_per_audience: server.match_cache_sets_per_audience,
            match_compile_concurrency: server.match_compile_concurrency,
            match_compile_queue: server.match_compile_queue,
            page_concurrency: server.page_concurrency,
            page_queue: server.page_queue,
            page_max_bytes: server.page_max_bytes,
            decision_cache_bytes: server.decision_cache_bytes,
            answer_floor_ms: server.answer_floor_ms,
            answer_jitter_ms: server.answer_jitter_ms,
            stream_max: server.stream_max,
            stream_max_per_partner: server.stream_max_per_partner,
            stream_buffer: server.stream_buffer,
            stream_stall_ms: server.stream_stall_ms,
            stream_batch: server.stream_batch,
            stream_heartbeat_secs: server.stream_heartbeat_secs,
            stream_poll_ms: server.stream_poll_ms,
            body_timeout_secs: server.body_timeout_secs,
            login_body_bytes: server.login_body_bytes,
            match_body_bytes: server.match_body_bytes,
            join_body_bytes: server.join_body_bytes,
            dashboard_max_sightings: server.dashboard_max_sightings,
            peer_agreement_bytes: concord_sync::RoundOptions::default().agreement_max_bytes,
            sqlite_readers: store.sqlite_readers,
            sqlite_cache_bytes: store.sqlite_cache_bytes,
            postgres_max_connections: store.postgres_max_connections,
        }
    }
}

impl Limits {
    /// The authenticator's limits.
    pub fn auth(&self) -> concord_server::auth::AuthLimits {
        concord_server::auth::AuthLimits {
            hash_concurrency: self.hash_concurrency,
            hash_queue: self.hash_queue,
            failures_per_source: self.failures_per_source,
            failures_per_key: self.failures_per_key,
            negative_cache: self.negative_cache,
            partner_requests_per_sec: self.partner_requests_per_sec,
            partner_request_burst: self.partner_request_burst,
        }
    }

    /// What one request may cost the server.
    pub fn server(&self) -> concord_server::Limits {
        concord_server::Limits {
            match_collections: self.match_collections,
            match_lines: self.match_lines,
            match_bytes: self.match_bytes,
            match_cache_sets: self.match_cache_sets,
            match_cache_sets_per_audience: self.match_cache_sets_per_audience,
            match_compile_concurrency: self.match_compile_concurrency,
            match_compile_queue: self.match_compile_queue,
            page_concurrency: self.page_concurrency,
            page_queue: self.page_queue,
            page_max_bytes: self.page_max_bytes,
            decision_cache_bytes: self.decision_cache_bytes,
            answer_floor_ms: self.answer_floor_ms,
            answer_jitter_ms: self.answer_jitter_ms,
            stream_max: self.stream_max,
            stream_max_per_partner: self.stream_max_per_partner,
            stream_buffer: self.stream_buffer,
            stream_stall_ms: self.stream_stall_ms,
            stream_batch: self.stream_batch,
            stream_heartbeat_secs: self.stream_heartbeat_secs,
            stream_poll_ms: self.stream_poll_ms,
            body_timeout_secs: self.body_timeout_secs,
            login_body_bytes: self.login_body_bytes,
            match_body_bytes: self.match_body_bytes,
            join_body_bytes: self.join_body_bytes,
            dashboard_max_sightings: self.dashboard_max_sightings,
        }
    }

    /// What a sync round reads from a peer, beyond the defaults of
    /// [`concord_sync::RoundOptions`].
    pub fn round(&self) -> concord_sync::RoundOptions {
        concord_sync::RoundOptions {
            agreement_max_bytes: self.peer_agreement_bytes,
            ..concord_sync::RoundOptions::default()
        }
    }

    /// How the store is sized.
    pub fn store(&self) -> concord_store::StoreOptions {
        concord_store::StoreOptions {
            sqlite_readers: self.sqlite_readers,
            sqlite_cache_bytes: self.sqlite_cache_bytes,
            postgres_max_connections: self.postgres_max_connections,
        }
    }

    /// The connection limits (a zero timeout is taken as 1 s and a zero `max_connections`
    /// as 1: no limit is not an option).
    pub fn connections(&self) -> concord_server::ConnLimits {
        let secs = |s: u64| std::time::Duration::from_secs(s.max(1));
        concord_server::ConnLimits {
            handshake: secs(self.tls_handshake_timeout_secs),
            header_read: secs(self.header_read_timeout_secs),
            write: secs(self.write_timeout_secs),
            min_send_rate: self.min_send_rate_bytes_per_sec,
            send_rate_window: secs(self.min_send_rate_window_secs),
            max_connections: self.max_connections.max(1),
        }
    }
}

fn default_max_object_size() -> u64 {
    concord_stix::DEFAULT_MAX_OBJECT_SIZE
}

fn default_max_unpacked() -> u64 {
    concord_stix::DEFAULT_MAX_UNPACKED
}

fn default_tlp_version() -> String {
    "2.0".into()
}

impl Config {
    /// The TLP version of `tlp_version`. Errors: a value other than "1.0" or "2.0".
    pub fn tlp_version(&self) -> Result<concord_misp::tlp::TlpVersion> {
        self.tlp_version
            .parse()
            .map_err(|e: String| anyhow::anyhow!("configuration tlp_version: {e}"))
    }

    /// The ingress limits of this configuration.
    pub fn ingress_limits(&self) -> concord_ingest::Limits {
        concord_ingest::Limits {
            max_object_size: self.max_object_size,
            max_unpacked: self.max_unpacked,
        }
    }

    /// Reads `DIR/concord.toml` (defaults when absent), then the environment overrides.
    pub fn load(data_dir: &Path) -> Result<Config> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_CONFIG.to_owned(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("invalid configuration {}", path.display()))?;
        let defaults: toml::Table = toml::from_str(DEFAULT_CONFIG).context("built-in defaults")?;
        for (key, default) in defaults {
            let var = format!("CONCORD_{}", key.to_ascii_uppercase());
            if let Ok(v) = std::env::var(&var) {
                let value = match default {
                    toml::Value::Integer(_) => toml::Value::Integer(
                        v.parse()
                            .with_context(|| format!("{var}={v:?}: expected an integer"))?,
                    ),
                    toml::Value::Boolean(_) => toml::Value::Boolean(
                        v.parse()
                            .with_context(|| format!("{var}={v:?}: expected true or false"))?,
                    ),
                    _ => toml::Value::String(v),
                };
                table.insert(key, value);
            } else {
                table.entry(key).or_insert(default);
            }
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("invalid configuration {}", path.display()))?;
        // A key of a section: the loop above overrides top-level keys only.
        if let Ok(v) = std::env::var("CONCORD_RELEASE_FOUR_EYES") {
            config.release.four_eyes = v.parse().with_context(|| {
                format!("CONCORD_RELEASE_FOUR_EYES={v:?}: expected true or false")
            })?;
        }
        if let Ok(v) = std::env::var("CONCORD_OUTBOUND_ALLOW") {
            config.outbound.allow = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Ok(v) = std::env::var("CONCORD_RELEASE_UNNAMED_PERSONS") {
            config.release.unnamed_persons = v.parse().with_context(|| {
                format!("CONCORD_RELEASE_UNNAMED_PERSONS={v:?}: expected true or false")
            })?;
        }
        if config.api_root.is_empty()
            || config.api_root.contains('/')
            || config.api_root == "taxii2"
        {
            anyhow::bail!(
                "{}: api_root {:?} must be one path segment other than taxii2",
                path.display(),
                config.api_root
            );
        }
        Ok(config)
    }
}

/// Sets `database_url` in a configuration text: replaces the key's line, or appends one.
pub fn with_database_url(text: &str, url: &str) -> String {
    let line = format!("database_url = {}", toml::Value::String(url.to_owned()));
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("database_url") && l.contains('=') {
                found = true;
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        // Before the first table (`[policy]`): a key after it would belong to the table.
        let at = out
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .unwrap_or(out.len());
        out.insert(at, line);
    }
    out.join("\n") + "\n"
}

/// Paths of a data directory.
pub struct DataDir {
    /// The directory.
    pub dir: PathBuf,
}

impl DataDir {
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }
    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each `[limits]` key reaches the server's and the store's limits; absent keys keep
    /// their defaults.
    #[test]
    fn the_outbound_section_defaults_to_public_addresses_only() {
        let defaults: Config = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert!(defaults.outbound.allow.is_empty());
        let rule = defaults.round().unwrap().outbound;
        assert_eq!(*rule, concord_sync::Outbound::public_only());
        assert!(rule.refusal("127.0.0.1".parse().unwrap()).is_some());
        let text = format!("{DEFAULT_CONFIG}\n[outbound]\nallow = [\"127.0.0.1\", \"peer.lan\"]\n");
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            c.outbound().unwrap().allowed(),
            ["127.0.0.1/32", "peer.lan"]
        );
        let bad = format!("{DEFAULT_CONFIG}\n[outbound]\nallow = [\"10.0.0.1/8\"]\n");
        let c: Config = toml::from_str(&bad).unwrap();
        let e = c.round().unwrap_err().to_string();
        assert!(
            e.starts_with("[outbound] allow[0] \"10.0.0.1/8\": bits are set"),
            "{e}"
        );
    }

    #[test]
    fn the_limits_section_reaches_the_server_and_the_store() {
        let defaults: Config = toml::from_str(DEFAULT_CONFIG).unwrap();
        assert_eq!(defaults.limits.server(), concord_server::Limits::default());
        assert_eq!(
            defaults.limits.store(),
            concord_store::StoreOptions::default()
        );
        let text = format!(
            "{DEFAULT_CONFIG}\n[limits]\nmatch_collections = 3\nmatch_lines = 4\n\
             match_bytes = 5\nmatch_cache_sets = 6\npage_concurrency = 7\npage_queue = 8\n\
             page_max_bytes = 9\nsqlite_readers = 10\nsqlite_cache_bytes = 11\n\
             postgres_max_connections = 12\nmatch_cache_sets_per_audience = 13\n\
             match_compile_concurrency = 14\nmatch_compile_queue = 15\n\
             write_timeout_secs = 16\nmax_connections = 17\nanswer_floor_ms = 18\n\
             answer_jitter_ms = 19\nstream_max = 20\n\
             stream_buffer = 21\nstream_stall_ms = 22\nstream_batch = 23\n\
             stream_heartbeat_secs = 24\nstream_poll_ms = 25\n\
             body_timeout_secs = 26\nlogin_body_bytes = 27\nmatch_body_bytes = 28\n\
             min_send_rate_bytes_per_sec = 29\nmin_send_rate_window_secs = 30\n\
             stream_max_per_partner = 31\njoin_body_bytes = 32\n\
             dashboard_max_sightings = 33\n\
             decision_cache_bytes = 34\n\
             peer_agreement_bytes = 35\n"
        );
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(c.limits.round().agreement_max_bytes, 35);
        assert_eq!(
            defaults.limits.round().agreement_max_bytes,
            concord_sync::RoundOptions::default().agreement_max_bytes
        );
        assert_eq!(
            c.limits.server(),
            concord_server::Limits {
                match_collections: 3,
                match_lines: 4,
                match_bytes: 5,
                match_cache_sets: 6,
                match_cache_sets_per_audience: 13,
                match_compile_concurrency: 14,
                match_compile_queue: 15,
                page_concurrency: 7,
                page_queue: 8,
                page_max_bytes: 9,
                decision_cache_bytes: 34,
                answer_floor_ms: 18,
                answer_jitter_ms: 19,
                stream_max: 20,
                stream_max_per_partner: 31,
                stream_buffer: 21,
                stream_stall_ms: 22,
                stream_batch: 23,
                stream_heartbeat_secs: 24,
                stream_poll_ms: 25,
                body_timeout_secs: 26,
                login_body_bytes: 27,
                match_body_bytes: 28,
                join_body_bytes: 32,
                dashboard_max_sightings: 33,
            }
        );
        assert_eq!(
            c.limits.store(),
            concord_store::StoreOptions {
                sqlite_readers: 10,
                sqlite_cache_bytes: 11,
                postgres_max_connections: 12,
            }
        );
        assert_eq!(
            c.limits.connections(),
            concord_server::ConnLimits {
                write: std::time::Duration::from_secs(16),
                max_connections: 17,
                min_send_rate: 29,
                send_rate_window: std::time::Duration::from_secs(30),
                ..concord_server::ConnLimits::default()
            }
        );
        assert_eq!(
            defaults.limits.connections(),
            concord_server::ConnLimits::default()
        );
        let bad = format!("{DEFAULT_CONFIG}\n[limits]\npage_queues = 1\n");
        let err = toml::from_str::<Config>(&bad).unwrap_err().to_string();
        assert!(err.contains("page_queues"), "{err}");
    }
}
