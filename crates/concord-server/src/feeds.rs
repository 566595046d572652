//! Feeds for sensors (issue 21, item 3): `GET /{api-root}/collections/{id}/feeds/{format}`
//! with `format` one of `suricata`, `zeek-intel`, `rpz`, `csv`, `plain`
//! ([`concord_feeds::Format`]).
//!
//! A feed is built from the indicators the principal receives: every page read through the
//! egress door ([`concord_egress::Egress::scan`], door `feed-{format}`, one audit transfer
//! entry per page, the newest version of each object), then converted by
//! [`concord_feeds::FeedBuilder`] (values on the node's warninglists left out).
//!
//! Conditional GET (RFC 9110 §8.8.3, §13.1.2): the answer carries a strong `ETag` derived
//! from the bytes of the answer and nothing else, and an RPZ zone an SOA serial that grows
//! exactly when those bytes change: both follow the feed's [`Edition`], the digest of the
//! text this audience receives and its serial, kept per (audience, collection, format) in
//! the store's settings ([`edition_key`]), so every `serve` process and `concord export`
//! number one audience's zone alike. A write the audience does not receive (withheld by
//! the egress policy) changes neither: a tag or serial that moved would tell a partner
//! that, and when, something it may not see was written. A request whose `If-None-Match`
//! names the current tag is answered `304 Not Modified` without a body; while the
//! collection's version counter, the policy and the validity of the indicators are as at
//! the last build, without reading the collection (so without an audit entry: nothing
//! leaves). That last build's tag is kept in memory per (collection, audience, format);
//! another process or a restart builds once more.
//!
//! A collection the principal may not read answers exactly as the TAXII 404 for it; an
//! unknown format 404 naming the formats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_egress::Audience;
use concord_feeds::{Edition, FeedBuilder, Format, Header, Report};
use concord_misp::Warninglists;
use concord_store::{ObjectFilter, Store, StoreError};
use concord_taxii::{ErrorCode, TaxiiError};
use sha2::{Digest, Sha256};

use crate::{Access, AppState, Error, Handler, Principal, audience_of, blocking, find_collection};

/// Entries of the tag cache at most; past it, the cache starts again empty.
const TAG_CACHE: usize = 1024;

/// The node's feed settings and the tags of the last builds.
#[derive(Default)]
pub struct Feeds {
    /// Values on these lists are left out of every feed.
    pub warninglists: Option<Arc<Warninglists>>,
    tags: Mutex<HashMap<String, Built>>,
}

impl Feeds {
    /// Feeds that leave out values on `warninglists`.
    pub fn new(warninglists: Option<Arc<Warninglists>>) -> Feeds {
        Feeds {
            warninglists,
            tags: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field(
                "warninglists",
                &self.warninglists.as_ref().map(|w| w.lists().len()),
            )
            .finish_non_exhaustive()
    }
}

/// What is remembered of one build.
#[derive(Clone)]
struct Built {
    version: i64,
    policy: String,
    /// Why nothing went to the partner when it was built ([`concord_egress::Egress::agreement_stop`]):
    /// a feed built while its agreement was in effect is not current after its end.
    stop: Option<String>,
    /// Until when (ns) the validity of its indicators leaves it unchanged.
    stable_until_ns: i64,
    etag: String,
}

/// The strong entity tag of a feed: of its format and edition (so of its bytes) only.
fn etag(format: Format, edition: &Edition) -> String {
    let mut h = Sha256::new();
    for part in [
        format.name().as_bytes(),
        edition.digest.as_bytes(),
        &edition.serial.to_be_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The settings key under which the last [`Edition`] of the feed `format` of a collection
/// for `audience` is kept: per partner, and one for the operator (`admin` over HTTP,
/// `operator` in the CLI).
pub fn edition_key(audience: &Audience, collection_id: &str, format: Format) -> String {
    let who = match audience {
        Audience::Operator(_) => "operator".to_owned(),
        Audience::Partner(p) => format!("partner:{}", p.name),
    };
    format!("feed-edition/{collection_id}/{who}/{}", format.name())
}

/// Finishes a feed as the edition after the last one `audience` received of it
/// ([`FeedBuilder::finish_edition`], the last edition read from and a new one written to
/// the store's settings under [`edition_key`]): its text, what was left out, and its
/// edition. Blocking. Errors: the store failed.
pub fn finish_edition(
    store: &dyn Store,
    audience: &Audience,
    collection_id: &str,
    builder: FeedBuilder<'_>,
    header: &Header,
) -> Result<(String, Report, Edition), StoreError> {
    let key = edition_key(audience, collection_id, builder.format());
    let last = store.setting(&key)?.as_deref().and_then(Edition::parse);
    let (text, report, edition) = builder.finish_edition(header, last.as_ref());
    if last.as_ref() != Some(&edition) {
        store.set_setting(&key, &edition.to_line())?;
    }
    Ok((text, report, edition))
}

/// Whether `If-None-Match` names `tag` (or is `*`), RFC 9110 §13.1.2 (weak comparison).
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

fn not_modified(tag: &str) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// `GET …/collections/{id}/feeds/{format}`.
pub(crate) async fn feed(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    Path((name, format_name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Handler<Response> {
    let c = find_collection(&state, &principal, name, Access::Read).await?;
    let Some(format) = Format::from_name(&format_name) else {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        return Err(Error(TaxiiError::new(
            ErrorCode::NotFound,
            format!(
                "no feed format {format_name:?} (formats: {})",
                names.join(", ")
            ),
        )));
    };
    let audience = audience_of(&principal);
    let egress = state.egress_for(&principal);
    let policy = egress.policy().version.clone();
    let key = edition_key(&audience, &c.id, format);
    let store = state.store.clone();
    let cid = c.id.clone();
    let now_ns = concord_stix::Timestamp::now_micros().unix_nanos();
    let (version, stop) = {
        let (egress, audience) = (egress.clone(), audience.clone());
        blocking(move || {
            let stop = match &audience {
                Audience::Partner(p) => egress.agreement_stop(p, now_ns)?,
                Audience::Operator(_) => None,
            };
            Ok((store.collection_version(&cid)?, stop))
        })
        .await?
    };
    let cached = state
        .feeds
        .tags
        .lock()
        .ok()
        .and_then(|t| t.get(&key).cloned());
    if let Some(b) = cached
        && b.version == version
        && b.policy == policy
        && b.stop == stop
        && now_ns < b.stable_until_ns
        && none_match(&headers, &b.etag)
    {
        return Ok(not_modified(&b.etag));
    }
    let lists = state.feeds.warninglists.clone();
    let title = c.alias.clone().unwrap_or_else(|| c.id.clone());
    let cid = c.id.clone();
    let door = format!("feed-{}", format.name());
    let store = state.store.clone();
    let built = blocking(move || {
        let mut builder = FeedBuilder::new(format, lists.as_deref(), now_ns);
        let mut after = None;
        loop {
            let (page, resume) = egress.scan(
                &audience,
                &door,
                &cid,
                &ObjectFilter::default(),
                after,
                1000,
                true,
            )?;
            for e in &page.entries {
                if let Some(v) = e
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                {
                    builder.add(&v);
                }
            }
            match resume {
                Some(r) if page.more => after = Some(r),
                _ => break,
            }
        }
        let header = Header {
            title,
            ..Header::default()
        };
        Ok(finish_edition(
            store.as_ref(),
            &audience,
            &cid,
            builder,
            &header,
        )?)
    })
    .await?;
    let (text, report, edition) = built;
    let stable_until_ns = report.next_change_ns.unwrap_or(i64::MAX);
    let tag = etag(format, &edition);
    if let Ok(mut tags) = state.feeds.tags.lock() {
        if tags.len() >= TAG_CACHE {
            tags.clear();
        }
        tags.insert(
            key,
            Built {
                version,
                policy,
                stop,
                stable_until_ns,
                etag: tag.clone(),
            },
        );
    }
    if none_match(&headers, &tag) {
        return Ok(not_modified(&tag));
    }
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.media_type())],
        text,
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-concord-feed-written", HeaderValue::from(report.written));
    h.insert(
        "x-concord-feed-skipped",
        HeaderValue::from(report.skipped()),
    );
    Ok(resp)
}
