//! TAXII 2.1 resources (§4–§5), as serialised on the wire.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Discovery resource (TAXII 2.1 §4.1.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Discovery {
    /// Required title.
    pub title: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Contact information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// URL of the default API root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// URLs of the API roots.
    pub api_roots: Vec<String>,
}

/// API root resource (TAXII 2.1 §4.2.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiRoot {
    /// Required title.
    pub title: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Supported versions; MUST include `application/taxii+json;version=2.1`.
    pub versions: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_content_length: u64,
}

/// Collection resource (TAXII 2.1 §5.2.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CollectionResource {
    /// Identifier used in URLs.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Alias, usable in URLs in place of `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether the requester may read.
    pub can_read: bool,
    /// Whether the requester may write.
    pub can_write: bool,
    /// Media types of the objects.
    pub media_types: Vec<String>,
}

/// Collections resource (TAXII 2.1 §5.1.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Collections {
    /// The collections the requester can see.
    #[serde(default)]
    pub collections: Vec<CollectionResource>,
}

/// Envelope (TAXII 2.1 §3.7): a page of objects, each the producer's bytes.
#[derive(Debug, Serialize)]
pub struct Envelope {
    /// Whether more pages follow.
    pub more: bool,
    /// Token for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Box<RawValue>>,
}

/// Manifest record (TAXII 2.1 §5.3.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// Object id.
    pub id: String,
    /// When the version was added to the collection.
    pub date_added: String,
    /// The version (`modified`, `created` or `date_added`).
    pub version: String,
    /// Its media type.
    pub media_type: String,
}

/// Manifest resource (TAXII 2.1 §5.3.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Whether more pages follow.
    pub more: bool,
    /// Token for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The records.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub objects: Vec<ManifestRecord>,
}

/// Versions resource (TAXII 2.1 §5.7.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Versions {
    /// Whether more pages follow.
    pub more: bool,
    /// Token for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The versions, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub versions: Vec<String>,
}

/// One entry of a status resource's `successes`/`failures`/`pendings` (TAXII 2.1 §4.3.1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusDetails {
    /// Object id.
    pub id: String,
    /// Its version (`modified`, or `created`; empty when the object had neither).
    pub version: String,
    /// Why it failed, or what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Status resource (TAXII 2.1 §4.3.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Identifier of this status resource.
    pub id: String,
    /// `complete` or `pending`.
    pub status: String,
    /// When the request was received.
    pub request_timestamp: String,
    /// Objects in the request.
    pub total_count: u64,
    /// Objects stored (or already present).
    pub success_count: u64,
    /// Details of the successes.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub successes: Vec<StatusDetails>,
    /// Objects refused.
    pub failure_count: u64,
    /// Details of the failures.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub failures: Vec<StatusDetails>,
    /// Objects not yet processed.
    pub pending_count: u64,
    /// Details of the pending ones.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pendings: Vec<StatusDetails>,
}
