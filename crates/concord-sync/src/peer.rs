//! Peers and their state, kept as node settings.

use serde::{Deserialize, Serialize};

use concord_store::{Store, StoreError};

use crate::client::TlsFiles;

/// Prefix of the settings that hold peers (`peer/NAME` → [`Peer`] as JSON).
const PEER_PREFIX: &str = "peer/";
/// Prefix of the settings that hold the state of each peer.
const STATE_PREFIX: &str = "peer_state/";

/// A remote TAXII 2.1 API root this node syncs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Unique name on this node.
    pub name: String,
    /// Base URL of the server, `http(s)://host:port`.
    pub url: String,
    /// Path of the API root on that server, e.g. `/concord/` (always with both slashes).
    pub api_root: String,
    /// Collection mappings.
    pub mappings: Vec<Mapping>,
    /// Credentials.
    pub auth: PeerAuth,
    /// The partner of this node whose egress policy applies to what is pushed to the peer;
    /// required for push and for sending sightings home.
    pub partner: Option<String>,
    /// Seconds between two rounds under `concord serve`.
    pub interval_secs: u64,
    /// Seconds a request to the peer may take, connection included.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// TLS: trusted roots and a client certificate (mTLS).
    #[serde(default)]
    pub tls: TlsFiles,
    /// The peer's public node key (Ed25519, 64 hex digits, from its `concord node key`):
    /// transfer packages signed with it import without `--signed-by` (issue 22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
}

impl Peer {
    /// [`Peer::node_key`] as bytes, when it is set and readable.
    pub fn node_key_bytes(&self) -> Option<[u8; 32]> {
        concord_store::node_key::unhex32(self.node_key.as_deref()?)
    }
}

fn default_timeout() -> u64 {
    60
}

/// One collection of the peer mapped onto one local collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// The remote collection as given: its id, or its title when unambiguous.
    pub remote: String,
    /// The local collection's id.
    pub local: String,
    /// Pull the remote collection into the local one.
    pub pull: bool,
    /// Push the local collection's new versions to the remote one.
    pub push: bool,
}

/// How the node authenticates to a peer. Secrets stay in files, read at every round, so a
/// rotated token needs no `peer add` again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerAuth {
    /// No credentials.
    None,
    /// `Authorization: Bearer` with the token in this file (trimmed).
    Token {
        /// Path of the file.
        file: String,
    },
    /// HTTP Basic with this user and the password in this file (trimmed).
    Basic {
        /// User name.
        user: String,
        /// Path of the password file.
        password_file: String,
    },
}

/// What the last rounds of a peer did; `concord peer show` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// Start of the last round (RFC 3339).
    pub last_round: Option<String>,
    /// End of the last round that succeeded.
    pub last_success: Option<String>,
    /// The error of the last failed round, naming the request.
    pub last_error: Option<String>,
    /// When that error happened.
    pub last_error_at: Option<String>,
    /// Rounds failed in a row (0 after a success): the scheduler backs off on it.
    pub consecutive_failures: u32,
    /// Totals over the node's life.
    pub pulled: u64,
    /// Versions pushed.
    pub pushed: u64,
}

/// Why a peer cannot be stored or found.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No peer of that name.
    #[error("no peer named {0:?}")]
    NotFound(String),
    /// A stored record is unreadable.
    #[error("setting {key}: {message}")]
    Corrupt {
        /// The setting.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, text: &str) -> Result<T, PeerError> {
    serde_json::from_str(text).map_err(|e| PeerError::Corrupt {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Every peer, ordered by name.
pub fn peers(store: &dyn Store) -> Result<Vec<Peer>, PeerError> {
    store
        .settings_with_prefix(PEER_PREFIX)?
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| parse(k, v))
        .collect()
}

/// One peer.
pub fn load_peer(store: &dyn Store, name: &str) -> Result<Peer, PeerError> {
    let key = format!("{PEER_PREFIX}{name}");
    match store.setting(&key)? {
        Some(text) if !text.is_empty() => parse(&key, &text),
        _ => Err(PeerError::NotFound(name.to_owned())),
    }
}

/// Creates or replaces a peer.
pub fn save_peer(store: &dyn Store, peer: &Peer) -> Result<(), PeerError> {
    let text = serde_json::to_string(peer).expect("a peer serialises");
    store.set_setting(&format!("{PEER_PREFIX}{}", peer.name), &text)?;
    Ok(())
}

/// Removes a peer: its record and state. Its cursors stay (a peer added again under the
/// same name resumes where it was). `Ok(false)`: no such peer.
pub fn remove_peer(store: &dyn Store, name: &str) -> Result<bool, PeerError> {
    // Settings cannot be deleted; an empty record marks a removed peer and is skipped.
    let key = format!("{PEER_PREFIX}{name}");
    if store.setting(&key)?.is_none_or(|t| t.is_empty()) {
        return Ok(false);
    }
    store.set_setting(&key, "")?;
    Ok(true)
}

/// The state of a peer (default when it never ran).
pub fn load_state(store: &dyn Store, name: &str) -> Result<PeerState, PeerError> {
    let key = format!("{STATE_PREFIX}{name}");
    match store.setting(&key)? {
        Some(text) if !text.is_empty() => parse(&key, &text),
        _ => Ok(PeerState::default()),
    }
}

/// Stores the state of a peer.
pub fn save_state(store: &dyn Store, name: &str, state: &PeerState) -> Result<(), PeerError> {
    let text = serde_json::to_string(state).expect("a state serialises");
    store.set_setting(&format!("{STATE_PREFIX}{name}"), &text)?;
    Ok(())
}

/// The setting of a cursor of a peer's mapping: `sync/PEER/LOCAL/REMOTE/WHAT`.
pub(crate) fn cursor_key(peer: &str, m: &Mapping, what: &str) -> String {
    format!("sync/{peer}/{}/{}/{what}", m.local, m.remote)
}
