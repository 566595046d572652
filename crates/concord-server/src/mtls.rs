//! Client certificates pinned to partners (issue 19: `concord join --mtls`).
//!
//! A join with `--mtls` gives each node that calls the other a self-signed client
//! certificate, and each side records the SHA-256 of the other's DER with the partner
//! (`client_cert_sha256` of the partner directory). The server then:
//!
//! - accepts, in the TLS handshake, a client certificate whose SHA-256 is one of its
//!   partners' pins ([`PinnedClientVerifier`]; with `tls_client_ca`, also one issued by those
//!   CAs). Client authentication is optional unless `tls_client_ca` is set, so partners
//!   without a pin and the web UI connect as before;
//! - carries the presented certificate's pin into each request of the connection
//!   ([`ClientCertificate`], set by the connection loop after the handshake, as
//!   [`crate::Transport`] and `ConnectInfo` are);
//! - binds the certificate to the partner: a partner with a pin is authenticated only over a
//!   connection that presented that certificate ([`crate::auth::Authenticator::authenticate`]:
//!   otherwise exactly the answer of a wrong key).
//!
//! The pins are read from the store ([`ClientPins`]): by the connection loop before a
//! handshake when the set is over [`ClientPins::MAX_AGE`] old, or when the last handshake
//! presented a certificate the set did not hold (a partner admitted a moment ago by another
//! process; its client retries a refused handshake). The handshake itself reads nothing.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use concord_store::Store;
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::DistinguishedName;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

/// The SHA-256 (lower-case hex) of the DER of the client certificate a TLS connection
/// presented, in every request of that connection's extensions; absent when it presented
/// none (or the connection is plain HTTP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate(pub String);

/// The pin of a certificate: SHA-256 (lower-case hex) of its DER, as the partner directory
/// keeps it.
pub fn certificate_pin(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The client certificate pin of a request (see [`ClientCertificate`]).
pub fn client_cert_sha256(extensions: &axum::http::Extensions) -> Option<&str> {
    extensions.get::<ClientCertificate>().map(|c| c.0.as_str())
}

/// The partners' client certificate pins, as last read from the store.
pub struct ClientPins {
    store: Arc<dyn Store>,
    pins: RwLock<Pins>,
    /// One reload at a time; the others wait for it and use what it read.
    reload: tokio::sync::Mutex<()>,
}

struct Pins {
    set: HashSet<String>,
    read_at: Option<Instant>,
    /// A handshake presented a certificate not in `set`: read again before the next one.
    stale: bool,
}

impl std::fmt::Debug for ClientPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPins").finish_non_exhaustive()
    }
}

impl ClientPins {
    /// How long a set read from the store is used before the next handshake reads it again.
    pub const MAX_AGE: Duration = Duration::from_secs(1);

    /// The pins of `store`'s partners, not read yet (the first handshake reads them).
    pub fn new(store: Arc<dyn Store>) -> Arc<ClientPins> {
        Arc::new(ClientPins {
            store,
            pins: RwLock::new(Pins {
                set: HashSet::new(),
                read_at: None,
                stale: true,
            }),
            reload: tokio::sync::Mutex::new(()),
        })
    }

    fn due(&self) -> bool {
        let p = self.pins.read().unwrap_or_else(|e| e.into_inner());
        p.stale || p.read_at.is_none_or(|t| t.elapsed() >= Self::MAX_AGE)
    }

    /// Reads the pins again when they are due (see the module); a store failure keeps the
    /// set it had (and is logged): a handshake then judges by the last set read.
    pub async fn refresh(self: &Arc<Self>) {
        if !self.due() {
            return;
        }
        let _one = self.reload.lock().await;
        if !self.due() {
            return;
        }
        let this = self.clone();
        let read = tokio::task::spawn_blocking(move || this.store.partners()).await;
        match read {
            Ok(Ok(partners)) => {
                let set = partners
                    .into_iter()
                    .filter_map(|p| p.details.client_cert_sha256)
                    .collect();
                let mut p = self.pins.write().unwrap_or_else(|e| e.into_inner());
                *p = Pins {
                    set,
                    read_at: Some(Instant::now()),
                    stale: false,
                };
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the partners' client certificate pins")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the partners' client certificate pins")
            }
        }
    }

    fn holds(&self, pin: &str) -> bool {
        let held = self
            .pins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .contains(pin);
        if !held {
            self.pins.write().unwrap_or_else(|e| e.into_inner()).stale = true;
        }
        held
    }
}

/// The server's client certificate check: a certificate is accepted when its pin is a
/// partner's ([`ClientPins`]), or, with `tls_client_ca`, when it chains to those CAs
/// (then a certificate is required, as before). No name or validity period is consulted
/// for a pinned certificate: the pin names exactly one, and the handshake proves the
/// client holds its key.
#[derive(Debug)]
pub struct PinnedClientVerifier {
    pins: Arc<ClientPins>,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedClientVerifier {
    /// The verifier over `pins`, and the CA verifier of `tls_client_ca` when set.
    pub fn new(
        pins: Arc<ClientPins>,
        ca: Option<Arc<dyn ClientCertVerifier>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> PinnedClientVerifier {
        PinnedClientVerifier { pins, ca, provider }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.ca.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.as_ref().map_or(&[], |ca| ca.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.pins.holds(&certificate_pin(end_entity.as_ref())) {
            return Ok(ClientCertVerified::assertion());
        }
        match &self.ca {
            Some(ca) => ca.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "the client certificate is not the pinned certificate of any partner".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
