//! Signed notices to the node's own operator (issue 18, item 6): `serve` POSTs a JSON
//! document to a webhook the operator configured when a request for assistance addressed to
//! this node arrives. Here because `concord-sync` is the node's one HTTP client.
//!
//! The signature is the one GitHub and Stripe made familiar: the header
//! `X-Concord-Signature: sha256=HEX`, HEX the HMAC-SHA-256 (RFC 2104) of the exact body bytes
//! under the shared secret, so the receiver checks it before parsing anything.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Concord-Signature";

/// `sha256=HEX`: the HMAC-SHA-256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Why a notice was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The request failed (connection, TLS, timeout).
    #[error("webhook {url}: {message}")]
    Transport {
        /// The webhook.
        url: String,
        /// What failed.
        message: String,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("webhook {url}: answered HTTP {status}")]
    Status {
        /// The webhook.
        url: String,
        /// The status.
        status: u16,
    },
}

/// POSTs `body` (JSON) to `url`, signed with `secret` ([`signature`]), within `timeout`.
/// Errors: the request failed, or the answer is not 2xx (the caller tries again later).
pub fn post_signed(
    url: &str,
    secret: &[u8],
    body: &str,
    timeout: Duration,
) -> Result<(), NotifyError> {
    post_signed_with(url, secret, body, timeout, &[])
}

/// [`post_signed`] with further `headers` (name, value). Redirects are not followed: a 3xx
/// answer is a failure like any other non-2xx, so a receiver cannot send the signed body on
/// to another host.
pub fn post_signed_with(
    url: &str,
    secret: &[u8],
    body: &str,
    timeout: Duration,
    headers: &[(&str, &str)],
) -> Result<(), NotifyError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send(body).map_err(|e| NotifyError::Transport {
        url: url.to_owned(),
        message: e.to_string(),
    })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(NotifyError::Status {
            url: url.to_owned(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
