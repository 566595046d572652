//! # concord-stix: the STIX 2.1 object model
//!
//! Concord stores and serves objects *as the producer wrote them*: the bytes of an object are
//! never re-serialised. This crate therefore does not deserialise objects into typed structs;
//! it reads what the node needs to know about an object — its [`ObjectHeader`] (`id`, `type`,
//! `spec_version`, `created`, `modified`) — and checks every MUST that STIX 2.1 puts on the
//! object ([`validate_object`]), answering with [`Violation`]s that name the object id, the
//! property and the rule broken.
//!
//! - [`timestamp`]: STIX timestamps that keep their written precision (STIX 2.1 §3.2).
//! - [`id`]: identifiers `type--UUID` (STIX 2.1 §2.9).
//! - [`validate`]: the MUST rules on common properties (§3.2) and per object type (§4–§7).
//! - [`json`]: strict JSON (no duplicate member names, I-JSON) for every object in and out.
//! - [`bundle`]: a streaming reader for bundles (§8) that holds one object at a time.
//! - [`limit`]: caps on input size and object size, enforced while reading.
//!
//! No I/O happens here except reading from a caller-supplied `Read` in [`bundle`].

pub mod bundle;
pub mod id;
pub mod json;
pub mod limit;
pub mod timestamp;
pub mod validate;

pub use bundle::{BundleError, BundleReader};
pub use id::StixId;
pub use json::{JsonError, parse_object};
pub use limit::{CappedReader, DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MAX_UNPACKED, TooLarge};
pub use timestamp::{Timestamp, TimestampError};
pub use validate::{ObjectHeader, ObjectKind, SpecVersion, Violation, validate_object};
