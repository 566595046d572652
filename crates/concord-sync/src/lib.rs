//! Federation (issue 7): a node pulls from and pushes to its peers, any TAXII 2.1 server.
//!
//! # Shape
//!
//! - A [`Peer`] is a remote API root with credentials, TLS options and collection mappings
//!   (`REMOTE:LOCAL`, pull and/or push). Peers are node settings (`peer/NAME`, JSON), so
//!   every process of a node on one database sees the same ones.
//! - [`round`] runs one round for one peer: pull every mapping with `--pull`, push every
//!   mapping with `--push`, then send sightings home. Its outcome is recorded in
//!   `peer_state/NAME` ([`PeerState`]), which `concord peer show` prints.
//! - Pull (TAXII 2.1 §5.4 "Get Objects"): `match[version]=all`, `added_after` from a
//!   persisted cursor (the last page's `X-TAXII-Date-Added-Last`), pages followed by `next`.
//!   Each page is ingested (validated, stored, audited as ingress through the door
//!   `sync-pull`) in one transaction together with its provenance (which peer) and the
//!   cursor, so a process killed at any moment resumes with no gap and no duplicate. The
//!   cursor is rewound by one microsecond on resume: versions that share the last
//!   `date_added` are fetched again (and found already present) rather than missed.
//! - Push (TAXII 2.1 §5.5 "Add Objects"): the versions added locally since the push cursor,
//!   minus those received from this very peer (no echoes) and those the peer already holds
//!   (asked with one manifest request per envelope, so a version travels a ring of nodes
//!   once), each through the node's one egress function for the partner linked to the peer;
//!   envelopes stay under the peer's `max_content_length`; the status resource is polled
//!   until complete; the cursor advances only then.
//! - Deletions (issue 21): before each pull, the peer's tombstones of the collection (the
//!   versions it deleted that it had given this node, a Concord resource beside TAXII's)
//!   delete the same versions here when they were received from that peer.
//! - Faults: every request is retried with exponential backoff (connection refused,
//!   timeouts, 5xx, unreadable answers, TLS failures); the last error is recorded in the
//!   peer's state, and the next round starts from the cursors.
//! - Without a link ([`package`], issue 22): signed, chained transfer packages written for a
//!   partner through the same egress door, and imported with the same ingest, provenance and
//!   audit as a pull.
//! - [`join`] (issue 19): invitations, the join exchange's documents and client, and the
//!   preview of what will flow to a new partner.
//! - [`webhook`] (issue 21): new objects POSTed to a receiver, signed, through the same door.
//! - [`outbound`] (issue 19): every request to a URL from outside (a peer's, an invitation's,
//!   a partner's webhook) reaches public addresses only, unless the operator allows more;
//!   checked when the URL is accepted and on the resolved addresses of each connection.

mod client;
pub mod join;
pub mod notify;
pub mod outbound;
pub mod package;
mod peer;
mod pin;
mod round;
pub mod webhook;

pub use client::{Client, ClientError, TlsFiles, Tombstones};
pub use outbound::{Outbound, Refused};
pub use peer::{
    Mapping, Peer, PeerAuth, PeerError, PeerState, load_peer, load_state, peers, remove_peer,
    save_peer, save_state,
};
pub use round::{LEASE, PolicyContext, RoundOptions, RoundReport, SyncError, round};
