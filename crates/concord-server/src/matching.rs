//! Matching observables and log lines against the indicators of collections (issue 4): the
//! compiled indicator set that `concord match` and `POST /api/match` share.

use concord_egress::{Egress, EgressError};
use concord_match::{IndicatorSet, SetBuilder};
use concord_policy::egress::PartnerProfile;
use concord_store::{ObjectFilter, PageRequest, StoreError, VersionSelector};
use serde_json::Value;

/// Who the set is for: the operator (every indicator as stored) or a partner (each indicator
/// as the egress door gives it to that partner, audited; withheld ones are left out, so a
/// partner can only match what it may see).
pub enum Audience<'a> {
    /// The node's own operator or SIEM.
    Operator,
    /// A partner, under the node's policy.
    Partner(&'a PartnerProfile),
}

/// Why a set cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The egress door failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// No such collection.
    #[error("no collection {0:?}")]
    NoCollection(String),
    /// A stored object or setting is unreadable.
    #[error("{0}")]
    Corrupt(String),
}

/// Compiles every version of every indicator of `collections` (aliases or ids) into one set:
/// the newest version of each wins and revoked ones drop out ([`SetBuilder`]). For a
/// partner, every indicator passes the egress door (door `api-match`, audited).
pub fn indicator_set(
    egress: &Egress,
    collections: &[String],
    audience: &Audience<'_>,
) -> Result<IndicatorSet, SetError> {
    let store = egress.store();
    let mut builder = SetBuilder::new();
    let filter = ObjectFilter {
        types: vec!["indicator".into()],
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    let mut add = |id: &str, body: &str| -> Result<(), SetError> {
        let v: Value = serde_json::from_str(body)
            .map_err(|err| SetError::Corrupt(format!("stored object {id}: {err}")))?;
        builder.add(&v);
        Ok(())
    };
    for name in collections {
        let c = store
            .collection(name)?
            .ok_or_else(|| SetError::NoCollection(name.clone()))?;
        let mut after = None;
        loop {
            match audience {
                Audience::Operator => {
                    let p = store.entries(
                        &c.id,
                        &filter,
                        &PageRequest {
                            limit: 5000,
                            after: after.take(),
                        },
                        true,
                    )?;
                    for e in &p.entries {
                        add(&e.id, e.body.as_deref().unwrap_or("null"))?;
                    }
                    match (p.more, p.entries.last()) {
                        (true, Some(last)) => after = Some(last.cursor()),
                        _ => break,
                    }
                }
                Audience::Partner(partner) => {
                    let who = concord_egress::Audience::Partner((*partner).clone());
                    let (t, resume) =
                        egress.scan(&who, "api-match", &c.id, &filter, after.take(), 5000, true)?;
                    for e in &t.entries {
                        add(&e.id, e.body.as_deref().unwrap_or("null"))?;
                    }
                    match resume {
                        Some(r) if t.more => after = Some(r),
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(builder.build())
}
