//! # concord-oidc: the OpenID Connect relying party of the web UI's login (issue 20, item 5)
//!
//! The authorization code flow of OpenID Connect Core 1.0 §3.1 with PKCE (RFC 7636, `S256`
//! only), `state` (RFC 6749 §10.12) and `nonce` (Core §3.1.2.1), against one provider named
//! by its issuer URL:
//!
//! - [`Client::begin`]: the provider's metadata (OpenID Connect Discovery 1.0 §4, cached for
//!   [`DISCOVERY_TTL`]; its `issuer` must be exactly the one configured, §4.3), fresh random
//!   `state`, `nonce` and `code_verifier`, and the authorization request's URL (Core
//!   §3.1.2.1). The caller keeps the three secrets (Concord: in the database, single-use).
//! - [`Client::finish`]: the code exchanged at the token endpoint (Core §3.1.3.1, client
//!   authentication `client_secret_basic`, else `client_secret_post` when the provider lists
//!   only that), and the ID token validated as Core §3.1.3.7 requires ([`Client::validate`]):
//!   signature by a key of the provider's JWKS (fetched from `jwks_uri`, cached, fetched
//!   again when a token names an unknown `kid`), `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`.
//!
//! Every answer of the provider (discovery, JWKS, token response) is read up to
//! [`Settings::max_response_bytes`] and within [`Settings::timeout`]; larger or slower
//! answers fail the login with [`OidcError::TooLarge`] or [`OidcError::TimedOut`].
//!
//! Who the token names is not decided here: the caller maps a claim to its own user and
//! takes the role from its own record (the provider grants no rights).
//!
//! Blocking (ureq); call from a blocking thread.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long the provider's metadata is used before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// The JWKS is fetched again for an unknown `kid` at most this often (a provider that rotated
/// its keys is followed at once; a stream of tokens naming made-up keys costs one fetch per
/// interval, not one each).
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// The signature algorithms accepted for ID tokens: asymmetric only (Core §3.1.3.7 step 7:
/// RS256 is the default; `none` and the HMAC algorithms, keyed by the client secret, are
/// never accepted, so a token cannot be forged by anyone who knows the secret).
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The relying party's settings (`[oidc]` of `concord.toml`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer identifier (an `https` URL; `http` on loopback for tests), exactly as the
    /// provider's metadata and ID tokens write it.
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (read from a file by the caller; never logged).
    pub client_secret: String,
    /// The redirection URI registered at the provider (Concord's `/ui/oidc/callback`).
    pub redirect_url: String,
    /// The scopes asked for; `openid` is added when missing (Core §3.1.2.1: REQUIRED).
    pub scopes: Vec<String>,
    /// The longest one request to the provider may take (connect, send, answer).
    pub timeout: Duration,
    /// The largest answer of the provider read, in bytes (discovery, JWKS, token response).
    pub max_response_bytes: u64,
    /// Clock skew allowed on `exp` and `iat`, seconds.
    pub leeway_secs: u64,
}

/// Why a login through the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A setting is unusable.
    #[error("[oidc] {0}")]
    Config(String),
    /// The provider could not be reached, or answered with an HTTP error.
    #[error("identity provider: {what} at {url}: {detail}")]
    Unreachable {
        /// `discovery`, `JWKS`, `token request`.
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The transport's error or the HTTP status.
        detail: String,
    },
    /// An answer took longer than [`Settings::timeout`].
    #[error("identity provider: {what} at {url} took longer than {secs} s ([oidc] timeout_secs)")]
    TimedOut {
        /// As in [`OidcError::Unreachable`].
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The limit.
        secs: u64,
    },
    /// An answer was larger than [`Settings::max_response_bytes`].
    #[error(
        "identity provider: {what} at {url} is larger than {limit} bytes ([oidc] max_response_bytes)"
    )]
    TooLarge {
        /// As in [`OidcError::Unreachable`].
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// An answer is not what the specification says it must be.
    #[error("identity provider: {what} at {url}: {detail}")]
    Invalid {
        /// As in [`OidcError::Unreachable`].
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The rule broken.
        detail: String,
    },
    /// The token endpoint refused the code (RFC 6749 §5.2).
    #[error("identity provider refused the authorization code: {error}{description}")]
    CodeRefused {
        /// The `error` code (`invalid_grant`, …).
        error: String,
        /// `: ` and the `error_description`, when given.
        description: String,
    },
    /// The ID token broke a rule of Core §3.1.3.7.
    #[error("ID token refused: {claim}: {detail} (OpenID Connect Core 1.0 §3.1.3.7)")]
    IdToken {
        /// The claim or part checked (`signature`, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`).
        claim: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// No randomness for `state`, `nonce` or the verifier.
    #[error("no randomness: {0}")]
    Random(String),
}

/// What the caller keeps of a login it began, and where to send the browser.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The authorization request (Core §3.1.2.1), the browser's next stop.
    pub url: String,
    /// `state`: 256 random bits, base64url.
    pub state: String,
    /// `nonce`: 256 random bits, base64url.
    pub nonce: String,
    /// The PKCE `code_verifier` (RFC 7636 §4.1): 256 random bits, base64url (43 characters).
    pub code_verifier: String,
}

/// A validated ID token's claims.
#[derive(Clone, Debug)]
pub struct IdToken {
    /// Every claim, as the provider signed them.
    pub claims: Map<String, Value>,
}

impl IdToken {
    /// The claim `name` when it is a string.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// `sub`: the provider's identifier of the person (Core §2, REQUIRED).
    pub fn sub(&self) -> &str {
        self.string("sub").unwrap_or_default()
    }

    /// `amr`: the authentication methods used (Core §2; values of RFC 8176), empty when
    /// absent.
    pub fn amr(&self) -> Vec<String> {
        self.claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The parts of the provider's metadata used (Discovery §3).
#[derive(Clone, Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// The relying party of one provider: its settings, HTTP agent and caches. Shared by the
/// server's requests (the caches behind mutexes, held only to copy).
pub struct Client {
    settings: Settings,
    agent: ureq::Agent,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    jwks: Mutex<Option<(JwkSet, Instant)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("issuer", &self.settings.issuer)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Percent-encodes a query or form value (RFC 3986 unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn random_b64(bytes: usize) -> Result<String, OidcError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| OidcError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The PKCE `code_challenge` of a verifier: `BASE64URL(SHA256(ASCII(code_verifier)))`
/// (RFC 7636 §4.2, `S256`).
pub fn code_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `url` is `https`, or `http` to a loopback host (a provider on the same machine,
/// as in tests).
fn acceptable_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// A relying party with `settings`. Nothing is fetched yet.
    ///
    /// Errors: [`OidcError::Config`] for an issuer or redirect URL that is neither `https`
    /// nor `http` on loopback, an empty client id, a zero limit.
    pub fn new(mut settings: Settings) -> Result<Client, OidcError> {
        for (key, url) in [
            ("issuer", &settings.issuer),
            ("redirect_url", &settings.redirect_url),
        ] {
            if !acceptable_url(url) {
                return Err(OidcError::Config(format!(
                    "{key} {url:?}: must be an https URL (http only to a loopback address)"
                )));
            }
        }
        if settings.client_id.is_empty() {
            return Err(OidcError::Config("client_id is empty".to_owned()));
        }
        if settings.max_response_bytes == 0 || settings.timeout.is_zero() {
            return Err(OidcError::Config(
                "max_response_bytes and timeout_secs must be at least 1".to_owned(),
            ));
        }
        if !settings.scopes.iter().any(|s| s == "openid") {
            settings.scopes.insert(0, "openid".to_owned());
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            // A provider's answer is read whole, never followed elsewhere.
            .max_redirects(0)
            .build()
            .into();
        Ok(Client {
            settings,
            agent,
            metadata: Mutex::new(None),
            jwks: Mutex::new(None),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A GET of JSON from the provider, bounded in size and time.
    fn get_json(&self, what: &'static str, url: &str) -> Result<Value, OidcError> {
        let resp = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call();
        self.read_json(what, url, resp, |status, _| {
            Err(OidcError::Unreachable {
                what,
                url: url.to_owned(),
                detail: format!("HTTP {status}"),
            })
        })
    }

    /// Reads a JSON answer within the limits; `on_error` decides on a non-2xx status (with
    /// the body's JSON, when it is JSON).
    fn read_json(
        &self,
        what: &'static str,
        url: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        on_error: impl FnOnce(u16, Option<Value>) -> Result<Value, OidcError>,
    ) -> Result<Value, OidcError> {
        let transport = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => OidcError::TimedOut {
                what,
                url: url.to_owned(),
                secs: self.settings.timeout.as_secs(),
            },
            ureq::Error::BodyExceedsLimit(_) => OidcError::TooLarge {
                what,
                url: url.to_owned(),
                limit: self.settings.max_response_bytes,
            },
            other => OidcError::Unreachable {
                what,
                url: url.to_owned(),
                detail: other.to_string(),
            },
        };
        let mut resp = resp.map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.settings.max_response_bytes)
            .read_to_vec()
            .map_err(transport)?;
        let value = serde_json::from_slice::<Value>(&bytes).ok();
        if !(200..300).contains(&status) {
            return on_error(status, value);
        }
        match value {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(OidcError::Invalid {
                what,
                url: url.to_owned(),
                detail: "the answer is not a JSON object".to_owned(),
            }),
        }
    }

    /// The provider's metadata, cached for [`DISCOVERY_TTL`] (Discovery §4: at
    /// `{issuer}/.well-known/openid-configuration`; §4.3: its `issuer` must be identical to
    /// the one configured, or the document is refused).
    fn metadata(&self) -> Result<Metadata, OidcError> {
        if let Some((m, at)) = lock(&self.metadata).as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(m.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let invalid = |detail: String| OidcError::Invalid {
            what: "discovery",
            url: url.clone(),
            detail,
        };
        let value = self.get_json("discovery", &url)?;
        let m: Metadata = serde_json::from_value(value)
            .map_err(|e| invalid(format!("not a provider metadata document: {e}")))?;
        if m.issuer != self.settings.issuer {
            return Err(invalid(format!(
                "issuer {:?} is not the configured {:?} (OpenID Connect Discovery 1.0 §4.3)",
                m.issuer, self.settings.issuer
            )));
        }
        for (key, u) in [
            ("authorization_endpoint", &m.authorization_endpoint),
            ("token_endpoint", &m.token_endpoint),
            ("jwks_uri", &m.jwks_uri),
        ] {
            if !acceptable_url(u) {
                return Err(invalid(format!(
                    "{key} {u:?} is not https (http only to a loopback address)"
                )));
            }
        }
        if let Some(methods) = &m.code_challenge_methods_supported
            && !methods.iter().any(|x| x == "S256")
        {
            return Err(invalid(
                "code_challenge_methods_supported does not list S256 (RFC 7636 §4.2)".to_owned(),
            ));
        }
        *lock(&self.metadata) = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Begins a login: fresh `state`, `nonce` and verifier, and the authorization request
    /// (Core §3.1.2.1: `response_type=code`, `scope`, `client_id`, `redirect_uri`, `state`,
    /// `nonce`; RFC 7636 §4.3: `code_challenge`, `code_challenge_method=S256`).
    ///
    /// Errors: the metadata could not be fetched or is invalid; no randomness.
    pub fn begin(&self) -> Result<Authorization, OidcError> {
        let m = self.metadata()?;
        let state = random_b64(32)?;
        let nonce = random_b64(32)?;
        let code_verifier = random_b64(32)?;
        let s = &self.settings;
        let query = [
            ("response_type", "code"),
            ("client_id", s.client_id.as_str()),
            ("redirect_uri", s.redirect_url.as_str()),
            ("scope", &s.scopes.join(" ")),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &code_challenge(&code_verifier)),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let sep = if m.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(Authorization {
            url: format!("{}{sep}{query}", m.authorization_endpoint),
            state,
            nonce,
            code_verifier,
        })
    }

    /// Finishes a login: exchanges `code` with `code_verifier` at the token endpoint and
    /// validates the ID token of the answer against `nonce` ([`Client::validate`]);
    /// `started_unix`: when the login began (seconds since the epoch), `now_unix`: now.
    ///
    /// Errors: the provider is unreachable, slow, or answers too much; it refused the code;
    /// the answer has no ID token; the ID token broke a rule.
    pub fn finish(
        &self,
        code: &str,
        code_verifier: &str,
        nonce: &str,
        started_unix: i64,
        now_unix: i64,
    ) -> Result<IdToken, OidcError> {
        let m = self.metadata()?;
        let s = &self.settings;
        let url = m.token_endpoint.clone();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", s.redirect_url.as_str()),
            ("code_verifier", code_verifier),
        ];
        // RFC 6749 §2.3.1: client_secret_basic is the one a provider MUST support; the
        // secret goes in the body only for a provider that lists client_secret_post alone.
        let post_only = m
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|l| {
                !l.iter().any(|x| x == "client_secret_basic")
                    && l.iter().any(|x| x == "client_secret_post")
            });
        let mut req = self.agent.post(&url).header("Accept", "application/json");
        if post_only {
            form.push(("client_id", s.client_id.as_str()));
            form.push(("client_secret", s.client_secret.as_str()));
        } else {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                url_encode(&s.client_id),
                url_encode(&s.client_secret)
            ));
            req = req.header("Authorization", &format!("Basic {basic}"));
        }
        let resp = req.send_form(form);
        let answer = self.read_json("token request", &url, resp, |status, body| {
            let err = body.as_ref().and_then(|b| b.get("error")?.as_str());
            match err {
                Some(e) => Err(OidcError::CodeRefused {
                    error: printable(e, 100),
                    description: body
                        .as_ref()
                        .and_then(|b| b.get("error_description")?.as_str())
                        .map(|d| format!(": {}", printable(d, 300)))
                        .unwrap_or_default(),
                }),
                None => Err(OidcError::Unreachable {
                    what: "token request",
                    url: url.clone(),
                    detail: format!("HTTP {status}"),
                }),
            }
        })?;
        let Some(token) = answer.get("id_token").and_then(Value::as_str) else {
            return Err(OidcError::Invalid {
                what: "token request",
                url,
                detail: "the answer has no id_token (OpenID Connect Core 1.0 §3.1.3.3)".to_owned(),
            });
        };
        self.validate(token, nonce, started_unix, now_unix)
    }

    /// The JWKS, fetched when not cached, or again when `refetch` and the last fetch is older
    /// than [`JWKS_MIN_REFETCH`].
    fn jwks(&self, refetch: bool) -> Result<JwkSet, OidcError> {
        if let Some((set, at)) = lock(&self.jwks).as_ref()
            && (!refetch || at.elapsed() < JWKS_MIN_REFETCH)
        {
            return Ok(set.clone());
        }
        let url = self.metadata()?.jwks_uri;
        let value = self.get_json("JWKS", &url)?;
        // Keys of types or algorithms this build does not know are left out, not fatal.
        let keys: Vec<_> = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| OidcError::Invalid {
                what: "JWKS",
                url: url.clone(),
                detail: "no \"keys\" array (RFC 7517 §5)".to_owned(),
            })?
            .iter()
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect();
        let set = JwkSet { keys };
        *lock(&self.jwks) = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// Validates an ID token as OpenID Connect Core 1.0 §3.1.3.7 requires. Its step 6 lets a
    /// client that got the token from the token endpoint over TLS skip the signature; it is
    /// checked all the same (the endpoint may be plain HTTP on loopback, and a signature
    /// costs little).
    ///
    /// - step 1: not encrypted (Concord registers no encryption key): a JWE is refused;
    /// - step 2: `iss` is exactly the configured issuer;
    /// - step 3: `aud` contains the client id;
    /// - steps 4, 5: with several audiences `azp` is present, and `azp`, when present, is the
    ///   client id;
    /// - steps 6 to 8: the JWS signature verifies with the provider's key named by `kid` (the
    ///   JWKS fetched again once for an unknown `kid`), by an asymmetric algorithm
    ///   ([`ALGORITHMS`]; a key that names its `alg` must be used with that one);
    /// - step 9: `exp` is in the future (less [`Settings::leeway_secs`]);
    /// - step 10: `iat` is not in the future and not before the login began (both with the
    ///   leeway): a token issued for another, earlier login is refused;
    /// - step 11: `nonce` is the one sent for this login.
    ///
    /// Errors: [`OidcError::IdToken`] naming the claim; fetching the JWKS.
    pub fn validate(
        &self,
        token: &str,
        nonce: &str,
        started_unix: i64,
        now_unix: i64,
    ) -> Result<IdToken, OidcError> {
        let refuse = |claim: &'static str, detail: String| OidcError::IdToken { claim, detail };
        if token.split('.').count() != 3 {
            return Err(refuse(
                "signature",
                "not a JWS in compact serialisation (an encrypted ID token is not accepted)"
                    .to_owned(),
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refuse("signature", format!("unreadable JOSE header: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(refuse(
                "signature",
                format!(
                    "algorithm {:?} is not accepted (asymmetric algorithms only)",
                    header.alg
                ),
            ));
        }
        let find = |set: &JwkSet| -> Option<jsonwebtoken::jwk::Jwk> {
            match &header.kid {
                Some(kid) => set.find(kid).cloned(),
                // Without a `kid`, only a JWKS of one key is unambiguous (Core §10.1).
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            }
        };
        let jwk = match find(&self.jwks(false)?) {
            Some(k) => k,
            None => find(&self.jwks(true)?).ok_or_else(|| {
                refuse(
                    "signature",
                    format!(
                        "no key {:?} in the provider's JWKS",
                        header.kid.as_deref().unwrap_or("(no kid)")
                    ),
                )
            })?,
        };
        if let Some(ka) = &jwk.common.key_algorithm
            && format!("{ka:?}") != format!("{:?}", header.alg)
        {
            return Err(refuse(
                "signature",
                format!(
                    "the key {:?} is for {ka:?}, the token is signed with {:?}",
                    jwk.common.key_id, header.alg
                ),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| refuse("signature", format!("unusable key in the JWKS: {e}")))?;
        let s = &self.settings;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[s.issuer.as_str()]);
        v.set_audience(&[s.client_id.as_str()]);
        v.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        v.leeway = s.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidIssuer => refuse("iss", format!("not the issuer {:?}", s.issuer)),
                K::InvalidAudience => refuse(
                    "aud",
                    format!("the client {:?} is not an audience", s.client_id),
                ),
                K::ExpiredSignature => refuse("exp", "the token has expired".to_owned()),
                K::ImmatureSignature => refuse("nbf", "the token is not valid yet".to_owned()),
                K::MissingRequiredClaim(c) => refuse("claims", format!("no {c:?} claim")),
                K::InvalidSignature => {
                    refuse("signature", "the signature does not verify".to_owned())
                }
                _ => refuse("signature", e.to_string()),
            }
        })?;
        let claims = data.claims;
        let audiences = match claims.get("aud") {
            Some(Value::Array(a)) => a.len(),
            _ => 1,
        };
        let azp = claims.get("azp").and_then(Value::as_str);
        if audiences > 1 && azp.is_none() {
            return Err(refuse(
                "azp",
                "several audiences and no azp (authorized party)".to_owned(),
            ));
        }
        if let Some(azp) = azp
            && azp != s.client_id
        {
            return Err(refuse(
                "azp",
                format!("the authorized party {azp:?} is not this client"),
            ));
        }
        let leeway = i64::try_from(s.leeway_secs).unwrap_or(i64::MAX);
        let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
            return Err(refuse("iat", "missing or not a number".to_owned()));
        };
        if iat > now_unix.saturating_add(leeway) {
            return Err(refuse("iat", "issued in the future".to_owned()));
        }
        if iat < started_unix.saturating_sub(leeway) {
            return Err(refuse(
                "iat",
                "issued before this login began (a token of another login)".to_owned(),
            ));
        }
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n) if bool::from(n.as_bytes().ct_eq(nonce.as_bytes())) => {}
            Some(_) => return Err(refuse("nonce", "not the nonce of this login".to_owned())),
            None => return Err(refuse("nonce", "missing".to_owned())),
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(refuse("sub", "missing or empty".to_owned()));
        }
        Ok(IdToken { claims })
    }
}

/// At most `max` characters of a provider's text, control characters replaced (it is shown
/// on an error page and written to the log).
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    #[test]
    fn pkce_s256_vector() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_https_or_loopback_http() {
        assert!(acceptable_url("https://id.example.org"));
        assert!(acceptable_url("http://127.0.0.1:8080/x"));
        assert!(acceptable_url("http://localhost/x"));
        assert!(!acceptable_url("http://id.example.org"));
        assert!(!acceptable_url("http://127.0.0.1.evil.example/"));
        assert!(!acceptable_url("ftp://x"));
    }

    #[test]
    fn settings_are_checked_and_openid_added() {
        let s = Settings {
            issuer: "https://id.example.org".to_owned(),
            client_id: "concord".to_owned(),
            client_secret: "s".to_owned(),
            redirect_url: "https://node.example.org/ui/oidc/callback".to_owned(),
            scopes: vec!["profile".to_owned()],
            timeout: Duration::from_secs(5),
            max_response_bytes: 1000,
            leeway_secs: 60,
        };
        let c = Client::new(s.clone()).unwrap();
        assert_eq!(c.settings().scopes, ["openid", "profile"]);
        let bad = Settings {
            issuer: "http://id.example.org".to_owned(),
            ..s
        };
        assert!(matches!(Client::new(bad), Err(OidcError::Config(_))));
    }
}
