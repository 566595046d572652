//! Matching observables and log lines against the indicators of collections (issue 4): the
//! compiled indicator set that `concord match` and `POST /api/match` share.

use concord_match::{IndicatorSet, SetBuilder};
use concord_policy::actions::Policy;
use concord_policy::egress::{
    CollectionSharing, Decision, EgressContext, PartnerProfile, egress, sharing_setting_key,
};
use concord_store::{ObjectFilter, PageRequest, Store, StoreError, VersionSelector};
use serde_json::Value;

/// Who the set is for: the operator (every indicator as stored) or a partner (each indicator
/// as the egress function gives it to that partner; withheld ones are left out, so a
/// partner can only match what it may see).
pub enum Audience<'a> {
    /// The node's own operator or SIEM.
    Operator,
    /// A partner, under the node's policy.
    Partner(&'a PartnerProfile, &'a Policy),
}

/// Why a set cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such collection.
    #[error("no collection {0:?}")]
    NoCollection(String),
    /// A stored object or setting is unreadable.
    #[error("{0}")]
    Corrupt(String),
}

/// Compiles every version of every indicator of `collections` (aliases or ids) into one set:
/// the newest version of each wins and revoked ones drop out ([`SetBuilder`]).
pub fn indicator_set(
    store: &dyn Store,
    collections: &[String],
    audience: &Audience<'_>,
) -> Result<IndicatorSet, SetError> {
    let mut builder = SetBuilder::new();
    let filter = ObjectFilter {
        types: vec!["indicator".into()],
        versions: vec![VersionSelector::All],
        ..ObjectFilter::default()
    };
    for name in collections {
        let c = store
            .collection(name)?
            .ok_or_else(|| SetError::NoCollection(name.clone()))?;
        let sharing = match store.setting(&sharing_setting_key(&c.id))? {
            Some(t) => CollectionSharing::from_json(&t).map_err(SetError::Corrupt)?,
            None => CollectionSharing::default(),
        };
        let mut page = PageRequest {
            limit: 5000,
            after: None,
        };
        loop {
            let p = store.entries(&c.id, &filter, &page, true)?;
            for e in &p.entries {
                let stored = e.body.as_deref().unwrap_or("null");
                let body = match audience {
                    Audience::Operator => std::borrow::Cow::Borrowed(stored),
                    Audience::Partner(partner, policy) => {
                        let cx = EgressContext {
                            sharing: &sharing,
                            partner,
                            policy,
                        };
                        match egress(stored, &cx) {
                            Decision::Unchanged => std::borrow::Cow::Borrowed(stored),
                            Decision::Rewritten { body, .. } => std::borrow::Cow::Owned(body),
                            Decision::Withheld { .. } => continue,
                        }
                    }
                };
                let v: Value = serde_json::from_str(&body)
                    .map_err(|err| SetError::Corrupt(format!("stored object {}: {err}", e.id)))?;
                builder.add(&v);
            }
            match (p.more, p.entries.last()) {
                (true, Some(last)) => page.after = Some(last.cursor()),
                _ => break,
            }
        }
    }
    Ok(builder.build())
}
