//! The agreement with a partner as a signed document (issue 19, item 5): built and signed
//! with the node's Ed25519 key ([`NodeKey`]), served to that partner alone
//! (`GET /{api-root}/agreement/`), fetched by the partner's node at each sync round, verified
//! and kept with its version, so that `concord partner show` says which version each side
//! holds.
//!
//! # The document
//!
//! ```json
//! {"signed": "<statement as JSON text>", "key": "<64 hex: the issuer's node key>",
//!  "signature": "<128 hex: Ed25519 over the bytes of `signed`>"}
//! ```
//!
//! The signature covers the exact bytes of `signed`, so no canonical form is needed to check
//! it. The statement ([`Statement`]) names the issuer's key, the partner, the agreement's
//! version and its clauses ([`concord_policy::agreement::Agreement::document_body`]), or says
//! that no agreement applies (`version` and `agreement` null: the partner is told there is
//! none, signed as well).
//!
//! An agreement's version is `NAME@DIGEST`, DIGEST the first 12 hex digits of the SHA-256 of
//! its clauses' JSON: it changes exactly when what the partner agreed to changes (the policy
//! version, which every audit entry names, changes too).
//!
//! # Kept
//!
//! Node settings (no table: one small record per partner and per peer):
//! `agreement/fetched/PARTNER` is the version the partner last fetched from this node
//! ([`record_fetched`]); `agreement/received/PEER` the document received from that peer's node
//! ([`Received`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use concord_policy::actions::Policy;
use concord_policy::egress::PartnerProfile;
use concord_store::node_key::{NodeKey, hex, unhex32, unhex64, verify_signature};
use concord_store::{Store, StoreError};

/// The setting prefix of the version each partner last fetched (`…/PARTNER`).
pub const FETCHED_PREFIX: &str = "agreement/fetched/";
/// The setting prefix of the document received from each peer's node (`…/PEER`).
pub const RECEIVED_PREFIX: &str = "agreement/received/";

/// What the issuer states and signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always `concord-agreement/1`.
    pub format: String,
    /// The issuer's node key (64 hex digits).
    pub issuer: String,
    /// The partner it is for (the issuer's name for it).
    pub partner: String,
    /// The agreement's version (`NAME@DIGEST`); `None`: no agreement applies.
    pub version: Option<String>,
    /// The clauses ([`concord_policy::agreement::Agreement::document_body`]); `None`: none.
    pub agreement: Option<Value>,
    /// When it was signed (RFC 3339).
    pub issued: String,
}

/// The document's `format`.
pub const FORMAT: &str = "concord-agreement/1";

/// A signed agreement document, as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The [`Statement`] as JSON text: the signed bytes.
    pub signed: String,
    /// The issuer's node key, 64 hex digits.
    pub key: String,
    /// Ed25519 signature of `signed`, 128 hex digits.
    pub signature: String,
}

/// The version of an agreement: `NAME@` and the first 12 hex digits of the SHA-256 of its
/// clauses' JSON.
pub fn agreement_version(name: &str, body: &Value) -> String {
    let digest = sha2::Sha256::digest(body.to_string().as_bytes());
    format!("{name}@{}", hex(&digest[..6]))
}

/// The agreement `policy` applies to `partner`, as the partner receives it: its version and
/// clauses; `None` when no agreement applies.
pub fn partner_agreement(policy: &Policy, partner: &PartnerProfile) -> Option<(String, Value)> {
    let (name, a, _) = policy.agreement(partner)?;
    let body = a.document_body(name, &partner.name);
    Some((agreement_version(name, &body), body))
}

/// Builds and signs the agreement document for `partner` under `policy` (what
/// `GET /{api-root}/agreement/` serves it, and what a join exchange carries). `now`: RFC 3339.
pub fn build_document(
    policy: &Policy,
    partner: &PartnerProfile,
    key: &NodeKey,
    now: &str,
) -> Document {
    let (version, agreement) = match partner_agreement(policy, partner) {
        Some((v, b)) => (Some(v), Some(b)),
        None => (None, None),
    };
    let statement = Statement {
        format: FORMAT.to_owned(),
        issuer: key.public_hex(),
        partner: partner.name.clone(),
        version,
        agreement,
        issued: now.to_owned(),
    };
    let signed = serde_json::to_string(&statement).unwrap_or_default();
    Document {
        signature: hex(&key.sign(signed.as_bytes())),
        key: key.public_hex(),
        signed,
    }
}

/// Verifies a document received from a peer: JSON of the [`Document`] shape, the signature
/// by the key it names over `signed`, a statement of [`FORMAT`] whose issuer is that key,
/// and, when the peer's node key is pinned (`peer add --node-key`, a join), that key. Errors
/// name the rule broken.
pub fn verify_document(text: &str, pinned: Option<[u8; 32]>) -> Result<Statement, String> {
    let doc: Document =
        serde_json::from_str(text).map_err(|e| format!("agreement document: {e}"))?;
    let key = unhex32(&doc.key).ok_or("agreement document: key: not 64 hex digits")?;
    let sig = unhex64(&doc.signature).ok_or("agreement document: signature: not 128 hex digits")?;
    if let Some(p) = pinned
        && p != key
    {
        return Err(format!(
            "agreement document: signed by {}, not by the peer's node key {}",
            doc.key,
            hex(&p)
        ));
    }
    if !verify_signature(&key, doc.signed.as_bytes(), &sig) {
        return Err("agreement document: the signature does not verify (Ed25519)".to_owned());
    }
    let statement: Statement = serde_json::from_str(&doc.signed)
        .map_err(|e| format!("agreement document: signed statement: {e}"))?;
    if statement.format != FORMAT {
        return Err(format!(
            "agreement document: format {:?}, expected {FORMAT:?}",
            statement.format
        ));
    }
    if statement.issuer != doc.key {
        return Err("agreement document: the statement's issuer is not the signing key".to_owned());
    }
    // Signed by the peer's key, so the peer's word: its texts are shown to this node's
    // operator (`partner show`, the partner page, logs) and must be nothing else than text.
    let value: Value = serde_json::from_str(&doc.signed)
        .map_err(|e| format!("agreement document: signed statement: {e}"))?;
    if let Some(path) = hostile_text(&value, "statement") {
        return Err(format!(
            "agreement document: {path}: a control or format character (Unicode Cc, Cf) in a \
             text of the statement"
        ));
    }
    if let Some(v) = &statement.version
        && !is_version(v)
    {
        return Err(format!(
            "agreement document: version {:?}: expected NAME@ and 12 hex digits",
            v.chars().take(80).collect::<String>()
        ));
    }
    Ok(statement)
}

/// Whether `v` has the shape of [`agreement_version`]: an agreement's name (1 to 128
/// characters; control and format characters are refused with every text of the
/// statement), `@`, 12 lower-case hex digits.
fn is_version(v: &str) -> bool {
    v.rsplit_once('@').is_some_and(|(name, digest)| {
        (1..=128).contains(&name.chars().count())
            && digest.len() == 12
            && digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// The path of the first member name or string in `v` that holds a control or format
/// character (Unicode Cc, Cf), if any.
fn hostile_text(v: &Value, path: &str) -> Option<String> {
    let bad = |s: &str| {
        s.chars()
            .any(|c| c.is_control() || concord_store::is_format_char(c))
    };
    match v {
        Value::String(s) if bad(s) => Some(path.to_owned()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| hostile_text(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let at = format!("{path}.{}", k.chars().take(64).collect::<String>());
            if bad(k) {
                Some(at)
            } else {
                hostile_text(x, &at)
            }
        }),
        _ => None,
    }
}

/// Records that `partner` fetched the version `version` (`None`: told there is none).
pub fn record_fetched(
    store: &dyn Store,
    partner: &str,
    version: Option<&str>,
) -> Result<(), StoreError> {
    let key = format!("{FETCHED_PREFIX}{partner}");
    let value = version.unwrap_or("none");
    if store.setting(&key)?.as_deref() != Some(value) {
        store.set_setting(&key, value)?;
    }
    Ok(())
}

/// The version `partner` last fetched: `Some("none")` when it was told there is none, `None`
/// when it never fetched.
pub fn fetched(store: &dyn Store, partner: &str) -> Result<Option<String>, StoreError> {
    store.setting(&format!("{FETCHED_PREFIX}{partner}"))
}

/// An agreement document received from a peer's node, as kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The document as received (JSON text of a [`Document`]), verified.
    pub document: String,
    /// Its statement.
    pub statement: Statement,
    /// When it was fetched (RFC 3339).
    pub fetched: String,
}

impl Received {
    /// The node key that signed the kept document ([`Document::key`], checked when it was
    /// received); `None` when the kept text is unreadable. A peer without a pinned node key
    /// is held to it for every later document (trust on first use, `concord-sync`'s round).
    pub fn signing_key(&self) -> Option<[u8; 32]> {
        let doc: Document = serde_json::from_str(&self.document).ok()?;
        unhex32(&doc.key)
    }

    /// The received agreement's `end_date` (IEP 2.0 §11), in ns since the epoch, if any.
    pub fn end_ns(&self) -> Option<i64> {
        let end = self
            .statement
            .agreement
            .as_ref()?
            .get("end_date")?
            .as_str()?;
        concord_stix::Timestamp::parse(end)
            .ok()
            .map(|t| t.unix_nanos())
    }

    /// The received agreement's `end_date` as written.
    pub fn end_date(&self) -> Option<&str> {
        self.statement.agreement.as_ref()?.get("end_date")?.as_str()
    }

    /// Whether the received agreement requires encryption in transit.
    pub fn requires_encryption(&self) -> bool {
        self.statement
            .agreement
            .as_ref()
            .and_then(|a| a.get("encrypt_in_transit"))
            .and_then(Value::as_str)
            == Some("must")
    }
}

/// Keeps the document received from `peer`'s node.
pub fn store_received(
    store: &dyn Store,
    peer: &str,
    received: &Received,
) -> Result<(), StoreError> {
    let key = format!("{RECEIVED_PREFIX}{peer}");
    let text = serde_json::to_string(received).unwrap_or_default();
    store.set_setting(&key, &text)
}

/// The setting prefix of the document received from a partner's node, by the partner's name
/// (`…/PARTNER`): what the egress door reads to enforce it.
pub const RECEIVED_FOR_PARTNER_PREFIX: &str = "agreement/received-for-partner/";

/// Keeps the document received from the node of `partner` (the peer's partner) under the
/// partner's name too, for the egress door ([`received_for_partner`]).
pub fn store_received_for_partner(
    store: &dyn Store,
    partner: &str,
    received: &Received,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(received).unwrap_or_default();
    store.set_setting(&format!("{RECEIVED_FOR_PARTNER_PREFIX}{partner}"), &text)
}

/// The document last received from `partner`'s node (by any peer linked to it); `None`
/// when none was, or the record is unreadable.
pub fn received_for_partner(
    store: &dyn Store,
    partner: &str,
) -> Result<Option<Received>, StoreError> {
    Ok(store
        .setting(&format!("{RECEIVED_FOR_PARTNER_PREFIX}{partner}"))?
        .filter(|t| !t.is_empty())
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// The document last received from `peer`'s node; `None` when none was (or the record is
/// unreadable: then it is fetched again at the next round).
pub fn received(store: &dyn Store, peer: &str) -> Result<Option<Received>, StoreError> {
    Ok(store
        .setting(&format!("{RECEIVED_PREFIX}{peer}"))?
        .filter(|t| !t.is_empty())
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// The node key that signed the agreement document kept from `peer`, for trust on first use
/// (`concord-sync`'s round): `Ok(None)` when nothing is kept. `Err` naming the peer when
/// something is kept but neither it nor its document can be read: its key is then unknown,
/// and taking the next document's key instead would let whoever answers next replace it.
pub fn kept_signing_key(store: &dyn Store, peer: &str) -> Result<Option<[u8; 32]>, String> {
    let Some(text) = store
        .setting(&format!("{RECEIVED_PREFIX}{peer}"))
        .map_err(|e| e.to_string())?
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    serde_json::from_str::<Received>(&text)
        .ok()
        .and_then(|r| r.signing_key())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "the agreement document kept from peer {peer} cannot be read, so the key it \
                 was signed with is unknown: pin the peer's node key (`concord peer add {peer} \
                 … --node-key KEYFILE`)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_policy::actions::{PolicyConfig, PseudonymKeys};
    use concord_policy::agreement::Agreement;

    #[test]
    fn documents_verify_and_refuse_tampering_and_other_keys() {
        let mut config = PolicyConfig::default();
        config.agreements.insert(
            "eu".into(),
            Agreement {
                groups: vec!["eu".into()],
                end_date: Some("2027-01-01T00:00:00Z".into()),
                ..Agreement::default()
            },
        );
        let policy = Policy::new(config, PseudonymKeys::default()).unwrap();
        let key = NodeKey::from_seed(&[3; 32]);
        let bsi = PartnerProfile {
            name: "bsi".into(),
            jurisdiction: "DE".into(),
            groups: vec!["eu".into()],
        };
        let doc = build_document(&policy, &bsi, &key, "2026-12-07T00:00:00Z");
        let text = serde_json::to_string(&doc).unwrap();
        let s = verify_document(&text, Some(key.public())).unwrap();
        assert!(s.version.as_deref().unwrap().starts_with("eu@"));
        assert_eq!(s.agreement.as_ref().unwrap()["partner"], "bsi");
        assert!(s.agreement.as_ref().unwrap().get("groups").is_none());
        let r = Received {
            document: text.clone(),
            statement: s,
            fetched: String::new(),
        };
        assert_eq!(r.end_date(), Some("2027-01-01T00:00:00Z"));
        assert!(r.end_ns().is_some() && !r.requires_encryption());
        // Tampered: the signature no longer verifies.
        let mut bad = doc.clone();
        bad.signed = bad.signed.replace("2027", "2099");
        let e = verify_document(&serde_json::to_string(&bad).unwrap(), None).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        // Another key than the pinned one.
        let e = verify_document(&text, Some([9; 32])).unwrap_err();
        assert!(e.contains("not by the peer's node key"), "{e}");
        // No agreement: a signed "none".
        let other = PartnerProfile {
            name: "cert-br".into(),
            jurisdiction: "BR".into(),
            groups: vec![],
        };
        let none = build_document(&policy, &other, &key, "2026-12-07T00:00:00Z");
        let s = verify_document(&serde_json::to_string(&none).unwrap(), None).unwrap();
        assert!(s.version.is_none() && s.agreement.is_none());
    }
}
