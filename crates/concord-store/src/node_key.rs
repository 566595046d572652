//! The node key: one Ed25519 key pair per node (RFC 8032), generated once and kept in the
//! data directory, that signs what the node vouches for — audit checkpoints and archives
//! (issue 17), later invitations and transfer packages (issues 19, 22).
//!
//! The private half is a 32-byte seed in a file of its own (`node.key`, lower-case hex, mode
//! 0600 on Unix), outside the database: whoever can write the database alone cannot sign a
//! checkpoint. The public half is what auditors are given (`concord node key`) and what
//! [`crate::audit`] checks signatures against.

use std::path::Path;

use ed25519_dalek::{Signer, Verifier};

/// The file name of the key in the data directory.
pub const NODE_KEY_FILE: &str = "node.key";

/// A node's Ed25519 signing key.
pub struct NodeKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.public_hex())
    }
}

/// Why a key could not be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// The key file could not be read or written.
    #[error("node key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error("node key {0}: not 64 hex digits (a 32-byte Ed25519 seed)")]
    Malformed(String),
    /// The system's random source failed.
    #[error("no random seed for a node key: {0}")]
    Random(String),
}

impl NodeKey {
    /// A new random key (seed from the operating system's random source).
    pub fn generate() -> Result<NodeKey, NodeKeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NodeKeyError::Random(e.to_string()))?;
        Ok(NodeKey::from_seed(&seed))
    }

    /// The key of a 32-byte seed (RFC 8032 §5.1.5).
    pub fn from_seed(seed: &[u8; 32]) -> NodeKey {
        NodeKey {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Reads the key in `path`, or makes one and writes it there (created exclusively, so
    /// two processes racing keep the first): what `concord node key` and the checkpointing
    /// commands use.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, NodeKeyError> {
        let io = |source| NodeKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(&text, path),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            Err(_) => {}
        }
        let key = NodeKey::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(format!("{}\n", hex(&key.key.to_bytes())).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(&std::fs::read_to_string(path).map_err(io)?, path)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<NodeKey, NodeKeyError> {
        let seed = unhex32(text.trim())
            .ok_or_else(|| NodeKeyError::Malformed(path.display().to_string()))?;
        Ok(NodeKey::from_seed(&seed))
    }

    /// The public key (32 bytes, RFC 8032 §5.1.5).
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key as 64 lower-case hex digits: what an auditor is given.
    pub fn public_hex(&self) -> String {
        hex(&self.public())
    }

    /// Signs `message` (Ed25519, RFC 8032 §5.1.6): 64 bytes.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Whether `signature` is `public`'s Ed25519 signature of `message` (RFC 8032 §5.1.7, strict
/// about the encoding of the point and the scalar).
pub fn verify_signature(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of hex text (either case); `None` when it is not hex of an even length.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// 32 bytes of 64 hex digits.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    unhex(text)?.try_into().ok()
}

/// 64 bytes of 128 hex digits.
pub fn unhex64(text: &str) -> Option<[u8; 64]> {
    unhex(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NODE_KEY_FILE);
        let a = NodeKey::load_or_create(&path).unwrap();
        let b = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(a.public(), b.public());
        let sig = a.sign(b"checkpoint");
        assert!(verify_signature(&b.public(), b"checkpoint", &sig));
        assert!(!verify_signature(&b.public(), b"checkpoinT", &sig));
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(
            NodeKey::load_or_create(&path),
            Err(NodeKeyError::Malformed(_))
        ));
    }
}
