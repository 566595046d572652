//! # concord-taxii: TAXII 2.1 on the wire, without HTTP
//!
//! The resources of TAXII 2.1 (OASIS Standard, 2021) as Rust types ([`resources`]), its media
//! types and content negotiation ([`media`]), the query parameters of §3.4 parsed into typed
//! filters ([`query`]), the shape of opaque `next` tokens ([`query::check_next`]; the egress door makes and reads them), and the error message
//! resource with one table of every error Concord answers ([`error`]).
//!
//! This crate knows nothing of sockets or frameworks: `concord-server` maps these types to
//! HTTP, and a TAXII client can reuse them.

pub mod error;
pub mod media;
pub mod query;
pub mod resources;

pub use error::{ErrorCode, TaxiiError};
pub use query::{Query, VersionMatch, check_next};
