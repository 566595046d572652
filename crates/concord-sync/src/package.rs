//! Transfer packages (issue 22): exchange without a good link.
//!
//! A small CERT behind a data diode, removable media or a slow satellite link receives what
//! a partner receives over TAXII as a **transfer package**: a directory holding
//!
//! - `objects-000001.json.zst` (or `.json.gz`), … — the partner's egress copies, as STIX 2.1
//!   bundles of at most [`OBJECTS_PER_FILE`] objects, compressed with zstd (default) or gzip;
//! - `manifest.json` — [`Manifest`]: format version, producer (name, Ed25519 public node key
//!   and its fingerprint), partner, recipient (the public node key of the partner's node:
//!   the one node that may import it), collection, counts, the SHA-256 of every file, the
//!   cursor range covered, the policy version, the sequence number and the digest of the
//!   previous package for that partner;
//! - `manifest.sig` — the node key's Ed25519 signature (RFC 8032) over the exact bytes of
//!   `manifest.json`, as 128 hex digits.
//!
//! The digest of a package is the SHA-256 of its `manifest.json` (which names the digest of
//! every other file). Packages for one partner form a chain: package `n` names the digest of
//! package `n - 1`, so the receiver can tell that none is missing, repeated or reordered.
//!
//! Writing ([`write_package`]) reads the collection after the partner's cursor (with
//! `since_last`), sends every entry through the node's one egress door
//! ([`Egress::decide_entries`], door `package`, one audit entry per page of
//! [`PAGE`] entries), and records the new chain link and cursor in the store only once every
//! file is written. Importing ([`verify_package`] then [`import_package`]) checks the
//! signature against a trusted key (the one the manifest names), that the package is
//! addressed to this node's key, every file's size and digest, and the chain, before
//! anything is decompressed or stored; then ingests every file through the one ingest
//! ([`concord_ingest::ingest_batch`]) in one transaction, with provenance and ingress audit
//! records, together with the incoming chain: all of it is stored, or nothing.
//!
//! A package arrives on media an attacker may have written. The directory and every file in
//! it are opened relative to one directory handle without following a symbolic link
//! (`O_NOFOLLOW`) and without blocking on a FIFO (`O_NONBLOCK`); only regular files (by the
//! opened handle's metadata) of bounded size are read; and the bytes ingested are read from
//! the very handles that were verified, hashed again on the way in, so a file swapped or
//! rewritten between verification and ingest is refused before the transaction commits.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use concord_egress::{Door, Egress, EgressError};
use concord_ingest::{Accepted, Container, IngestError, IngestOptions, IngestReport};
use concord_policy::egress::PartnerProfile;
use concord_store::node_key::{NodeKey, hex, unhex32, unhex64, verify_signature};
use concord_store::{
    Collection, Cursor, Entry, ObjectFilter, PackageDirection, PackageLink, PageRequest, Store,
    StoreError, Timestamp, VersionSelector,
};

use crate::peer::Peer;

/// The `format` of the manifests this version writes and reads.
///
/// Format 2 added the [`Manifest::recipient`]; a format 1 package (addressed to no node) is
/// refused.
pub const FORMAT: &str = "concord-transfer-package/2";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The signature's file name.
pub const SIGNATURE: &str = "manifest.sig";
/// Objects per file: a file is a STIX bundle that any tool can read once decompressed, and
/// 10,000 objects (about 10 MB unpacked for typical indicators) keep each one small.
pub const OBJECTS_PER_FILE: usize = 10_000;
/// Entries read from the store and decided by the egress door at once (one audit entry each).
pub const PAGE: usize = 1_000;
/// The largest `manifest.json` read, in bytes: a manifest names one file per
/// [`OBJECTS_PER_FILE`] objects, so 16 MiB covers hundreds of millions of objects.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// The largest `manifest.sig` read, in bytes (128 hex digits and a line end; room for
/// white space).
pub const MAX_SIGNATURE_BYTES: u64 = 1024;
/// The audit door of a package write.
pub const DOOR_WRITE: &str = "package";
/// The audit door of a package import.
pub const DOOR_IMPORT: &str = "package-import";

/// How the object files are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard (RFC 8878), level 3: smaller than gzip at a fraction of its time.
    #[default]
    Zstd,
    /// gzip (RFC 1952), level 6: readable by every tool.
    Gzip,
}

impl Compression {
    /// The file name extension, after `.json`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "zst",
            Compression::Gzip => "gz",
        }
    }
}

/// Who made a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// The producing node's name (its `title`).
    pub name: String,
    /// Its Ed25519 public node key, 64 hex digits (`concord node key`).
    pub public_key: String,
    /// [`fingerprint`] of that key.
    pub fingerprint: String,
}

/// The node a package is written for: the partner's node, by its public node key. Only the
/// node holding that key imports the package ([`verify_package`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Its Ed25519 public node key, 64 hex digits (its `concord node key`).
    pub public_key: String,
    /// [`fingerprint`] of that key.
    pub fingerprint: String,
}

/// The collection a package was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCollection {
    /// Its id on the producer.
    pub id: String,
    /// Its title.
    pub title: String,
}

/// A position in a collection's `(date_added, id, version, seq)` order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageCursor {
    /// `date_added` (RFC 3339, nanoseconds).
    pub date_added: String,
    /// Object id.
    pub id: String,
    /// The version's sort key ([`Timestamp::sort_key`]).
    pub version: String,
    /// Entry sequence number.
    pub seq: i64,
}

impl PackageCursor {
    fn of(c: &Cursor) -> PackageCursor {
        PackageCursor {
            date_added: Timestamp::from_unix_nanos(c.date_added_ns, 9).to_string(),
            id: c.id.clone(),
            version: c.version_key.clone(),
            seq: c.seq,
        }
    }
}

/// The entries a package covers: strictly after `after` (from the start when `None`),
/// through `through`. Each is an opaque token: the hex Ed25519 signature, by the node key,
/// of the position ([`PackageCursor`]) under a domain tag. The manifest goes to the partner,
/// and the last entry *read* may be one withheld from it (a RED object, the stored id of a
/// renamed SCO): the token names it without revealing it, and still shows the partner that
/// package n+1 starts where package n ended (`after` of one equals `through` of the one
/// before). The position itself stays in the producer's store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRange {
    /// The previous package's end, with `--since-last`.
    pub after: Option<String>,
    /// The last entry read.
    pub through: Option<String>,
}

/// The opaque token of a position ([`CursorRange`]).
fn cursor_token(key: &NodeKey, c: &Cursor) -> String {
    let position = PackageCursor::of(c);
    let mut message = b"concord package cursor\0".to_vec();
    message.extend_from_slice(
        format!(
            "{}\0{}\0{}\0{}",
            position.date_added, position.id, position.version, position.seq
        )
        .as_bytes(),
    );
    hex(&key.sign(&message))
}

/// What a package holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Object versions in the files.
    pub objects: u64,
    /// Entries read and withheld by the egress policy: for the producer's own report only,
    /// never written into the manifest (the partner would learn how much it may not see).
    #[serde(skip)]
    pub withheld: u64,
    /// Entries read and not sent because they came from the partner (no echoes).
    pub echoes: u64,
}

/// One file of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    /// File name in the package directory (no directory part).
    pub name: String,
    /// Object versions in it.
    pub objects: u64,
    /// Its size in bytes (compressed).
    pub bytes: u64,
    /// Its size once decompressed, in bytes.
    pub unpacked_bytes: u64,
    /// SHA-256 of its bytes, 64 lower-case hex digits.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The producing node.
    pub producer: Producer,
    /// The partner of the producer the package is for (its egress copies), by the
    /// producer's name for it: informative for the receiver, which may call it otherwise.
    pub partner: String,
    /// The partner's node, by its node key: the one node that may import the package.
    pub recipient: Recipient,
    /// The collection read.
    pub collection: PackageCollection,
    /// When the package was written (RFC 3339).
    pub created: String,
    /// Position in the chain of packages for `partner`: 1, 2, …
    pub sequence: i64,
    /// SHA-256 (hex) of the previous package's manifest; `None` for the first.
    pub previous: Option<String>,
    /// The egress policy version that decided every copy (`policy_version@DIGEST`).
    pub policy_version: String,
    /// How the files are compressed.
    pub compression: Compression,
    /// The entries covered.
    pub cursor: CursorRange,
    /// What it holds.
    pub counts: Counts,
    /// The object files, in order.
    pub files: Vec<PackageFile>,
}

/// Why a package cannot be written or imported. Every refusal names the file or the rule.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The output directory is not empty.
    #[error("{0}: exists and is not empty (a package is written into a new directory)")]
    NotEmpty(String),
    /// `manifest.json` is missing, too large or not a manifest of this format.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// The signature does not verify: an edited manifest, or a package signed by another key.
    #[error("manifest.sig: {0}")]
    Signature(String),
    /// No trusted key for the producer, or the manifest names a producer key other than
    /// the trusted one.
    #[error("{0}")]
    Untrusted(String),
    /// Writing: the node key of the partner's node is not known, so the package could not
    /// be addressed to it.
    #[error("{0}")]
    NoRecipient(String),
    /// Importing: the package is addressed to another node's key.
    #[error("manifest.json: recipient: {0}")]
    NotAddressed(String),
    /// A file differs from what the manifest says (tampered, truncated, missing, unexpected).
    #[error("{name}: {message}")]
    File {
        /// The file.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The package does not follow the last one imported from its producer: missing,
    /// repeated, reordered or forked.
    #[error("chain: {0}")]
    Chain(String),
    /// The store failed (or another process moved the chain first).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The egress door failed.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// The objects could not be ingested (nothing was stored).
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The fingerprint of a public node key: the first 16 bytes of its SHA-256, in hex (32
/// digits), short enough to read out over a telephone.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    hex(&Sha256::digest(public_key)[..16])
}

/// SHA-256 of everything `r` reads.
fn sha256_of(mut r: impl Read) -> io::Result<[u8; 32]> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(hash.finalize().into()),
            n => hash.update(&buf[..n]),
        }
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Sink = Hashing<BufWriter<File>>;

/// A compressing writer of one object file.
enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
    Gzip(flate2::write::GzEncoder<Sink>),
}

impl Encoder {
    fn new(compression: Compression, sink: Sink) -> io::Result<Encoder> {
        Ok(match compression {
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(sink, 3)?),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(6),
            )),
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.write_all(bytes),
            Encoder::Gzip(e) => e.write_all(bytes),
        }
    }

    fn finish(self) -> io::Result<Sink> {
        let mut sink = match self {
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Gzip(e) => e.finish()?,
        };
        sink.flush()?;
        sink.inner.get_ref().sync_all()?;
        Ok(sink)
    }
}

/// The object file being written.
struct OpenFile {
    name: String,
    path: PathBuf,
    encoder: Encoder,
    objects: u64,
    unpacked: u64,
}

impl OpenFile {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PackageError> {
        self.unpacked += bytes.len() as u64;
        self.encoder.write_all(bytes).map_err(io_error(&self.path))
    }
}

/// The object files of a package, written one after the other.
struct Files<'a> {
    dir: &'a Path,
    compression: Compression,
    per_file: usize,
    open: Option<OpenFile>,
    done: Vec<PackageFile>,
}

impl Files<'_> {
    fn push(&mut self, body: &str) -> Result<(), PackageError> {
        if self
            .open
            .as_ref()
            .is_some_and(|f| f.objects as usize >= self.per_file)
        {
            self.close()?;
        }
        if self.open.is_none() {
            let name = format!(
                "objects-{:06}.json.{}",
                self.done.len() + 1,
                self.compression.extension()
            );
            let path = self.dir.join(&name);
            let file = File::create(&path).map_err(io_error(&path))?;
            let sink = Hashing {
                inner: BufWriter::with_capacity(1 << 16, file),
                hash: Sha256::new(),
                bytes: 0,
            };
            let encoder = Encoder::new(self.compression, sink).map_err(io_error(&path))?;
            let mut f = OpenFile {
                name,
                path,
                encoder,
                objects: 0,
                unpacked: 0,
            };
            let head = format!(
                "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[\n",
                uuid::Uuid::new_v4()
            );
            f.write(head.as_bytes())?;
            self.open = Some(f);
        }
        let f = self.open.as_mut().expect("opened above");
        if f.objects > 0 {
            f.write(b",\n")?;
        }
        f.write(body.as_bytes())?;
        f.objects += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), PackageError> {
        let Some(mut f) = self.open.take() else {
            return Ok(());
        };
        f.write(b"\n]}\n")?;
        let sink = f.encoder.finish().map_err(io_error(&f.path))?;
        self.done.push(PackageFile {
            name: f.name,
            objects: f.objects,
            bytes: sink.bytes,
            unpacked_bytes: f.unpacked,
            sha256: hex(&sink.hash.finalize()),
        });
        Ok(())
    }
}

/// How a package is written.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Only what was added after the last package for the partner (of this collection).
    pub since_last: bool,
    /// How the object files are compressed.
    pub compression: Compression,
    /// Objects per file (≥ 1; [`OBJECTS_PER_FILE`] by default).
    pub objects_per_file: usize,
    /// The producing node's name, written in the manifest.
    pub producer_name: String,
    /// The peer the partner is known as here, if any: entries received from it are not sent
    /// back (no echoes), and references to objects received from it go as written (a
    /// sighting goes home to the producer of its indicator), as a sync push does.
    pub origin: Option<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            since_last: false,
            compression: Compression::default(),
            objects_per_file: OBJECTS_PER_FILE,
            producer_name: String::new(),
            origin: None,
        }
    }
}

/// What [`write_package`] wrote.
#[derive(Clone, Debug)]
pub struct Written {
    /// The manifest as written and signed.
    pub manifest: Manifest,
    /// The package's digest: SHA-256 (hex) of `manifest.json`.
    pub digest: String,
}

/// The public node key of `partner`'s node, which a package for it is addressed to: the
/// `node_key` of the peers linked to that partner (`peer add NAME --node-key KEYFILE
/// --partner P`, with or without a URL). The receiver hands its key over once, out of band,
/// as the producer hands over its own (a one-way link needs nothing back).
///
/// Errors: [`PackageError::NoRecipient`] when no linked peer has a node key, or two linked
/// peers have different ones (a package is addressed to one node).
pub fn recipient_key(peers: &[Peer], partner: &str) -> Result<[u8; 32], PackageError> {
    let keys: BTreeSet<[u8; 32]> = peers
        .iter()
        .filter(|p| p.partner.as_deref() == Some(partner))
        .filter_map(Peer::node_key_bytes)
        .collect();
    let mut keys = keys.into_iter();
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k),
        (None, _) => Err(PackageError::NoRecipient(format!(
            "partner {partner:?}: no node key known for its node, and a transfer package is \
             addressed to the node key of the one node that may import it; record the key its \
             node prints with `concord node key -o FILE` by `concord peer add NAME --node-key \
             FILE --partner {partner}`"
        ))),
        (Some(a), Some(b)) => Err(PackageError::NoRecipient(format!(
            "partner {partner:?}: the peers linked to it have different node keys \
             (fingerprints {} and {}), and a transfer package is addressed to one node; \
             link only that node's peer to the partner",
            fingerprint(&a),
            fingerprint(&b)
        ))),
    }
}

/// Writes the transfer package of `collection` for `partner` into `dir` (created; it must
/// not exist or be empty), addressed to the partner's node key `recipient` (see
/// [`recipient_key`]), signed with `key`, and records its chain link and cursor. Every
/// object passes `egress` for the partner (door `package`, audited page by page before it is
/// written). On any error the files written are removed and nothing is recorded.
///
/// Errors: [`PackageError::NotEmpty`], I/O, the store, the egress door;
/// [`StoreError::Superseded`] when another package for the partner was recorded meanwhile.
pub fn write_package(
    egress: &Egress,
    key: &NodeKey,
    partner: &PartnerProfile,
    recipient: &[u8; 32],
    collection: &Collection,
    options: &WriteOptions,
    dir: &Path,
) -> Result<Written, PackageError> {
    let created_dir = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(PackageError::NotEmpty(dir.display().to_string()));
            }
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
            true
        }
        Err(e) => return Err(io_error(dir)(e)),
    };
    let result = write_into(egress, key, partner, recipient, collection, options, dir);
    if result.is_err() {
        // Nothing half-written stays behind: the files of this attempt go.
        if created_dir {
            let _ = std::fs::remove_dir_all(dir);
        } else if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    result
}

fn write_into(
    egress: &Egress,
    key: &NodeKey,
    partner: &PartnerProfile,
    recipient: &[u8; 32],
    collection: &Collection,
    options: &WriteOptions,
    dir: &Path,
) -> Result<Written, PackageError> {
    let store = egress.store().as_ref();
    let chain = store.package_chain(PackageDirection::Out, "", &partner.name)?;
    let start = if options.since_last {
        store.package_cursor(&partner.name, &collection.id)?
    } else {
        None
    };
    let filter = ObjectFilter {
        versions: vec![VersionSelector::All],
        spec_versions: vec!["2.1".into()],
        ..ObjectFilter::default()
    };
    let origin = options.origin.as_deref();
    let mut files = Files {
        dir,
        compression: options.compression,
        per_file: options.objects_per_file.max(1),
        open: None,
        done: Vec::new(),
    };
    let mut counts = Counts::default();
    let mut after = start.clone();
    let mut through: Option<Cursor> = None;
    loop {
        let page = store.entries(
            &collection.id,
            &filter,
            &PageRequest {
                limit: PAGE,
                after: after.clone(),
            },
            true,
        )?;
        let Some(last) = page.entries.last().map(Entry::cursor) else {
            break;
        };
        let mut candidates = Vec::with_capacity(page.entries.len());
        for e in page.entries {
            // Echoes: what the partner's node sent (pulled from its peer, or pushed by it).
            let pushed = concord_store::partner_provenance(&partner.name);
            if store
                .received_from(&e.id, Some(&e.version_text.clone().unwrap_or_default()))?
                .iter()
                .any(|p| Some(p.as_str()) == origin || *p == pushed)
            {
                counts.echoes += 1;
                continue;
            }
            candidates.push(e);
        }
        if !candidates.is_empty() {
            let n = candidates.len();
            let sent =
                egress.decide_entries(partner, DOOR_WRITE, &collection.id, candidates, origin)?;
            counts.withheld += (n - sent.len()) as u64;
            for s in &sent {
                files.push(s.body.as_deref().unwrap_or("null"))?;
                counts.objects += 1;
            }
        }
        through = Some(last.clone());
        after = Some(last);
        if !page.more {
            break;
        }
    }
    files.close()?;
    let public = key.public();
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        producer: Producer {
            name: options.producer_name.clone(),
            public_key: hex(&public),
            fingerprint: fingerprint(&public),
        },
        partner: partner.name.clone(),
        recipient: Recipient {
            public_key: hex(recipient),
            fingerprint: fingerprint(recipient),
        },
        collection: PackageCollection {
            id: collection.id.clone(),
            title: collection.title.clone(),
        },
        created: Timestamp::now_micros().to_string(),
        sequence: chain.as_ref().map_or(1, |c| c.sequence + 1),
        previous: chain.as_ref().map(|c| c.digest.clone()),
        policy_version: egress.policy().version.clone(),
        compression: options.compression,
        cursor: CursorRange {
            after: start.as_ref().map(|c| cursor_token(key, c)),
            // With nothing new, the package ends where the last one did.
            through: through
                .as_ref()
                .or(start.as_ref())
                .map(|c| cursor_token(key, c)),
        },
        counts,
        files: files.done,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    bytes.push(b'\n');
    let digest = hex(&Sha256::digest(&bytes));
    let signature = key.sign(&bytes);
    for (name, content) in [
        (MANIFEST, bytes),
        (SIGNATURE, format!("{}\n", hex(&signature)).into_bytes()),
    ] {
        let path = dir.join(name);
        let mut f = File::create(&path).map_err(io_error(&path))?;
        f.write_all(&content)
            .and_then(|()| f.sync_all())
            .map_err(io_error(&path))?;
    }
    let link = PackageLink {
        sequence: manifest.sequence,
        digest: digest.clone(),
    };
    let previous = chain.map_or(0, |c| c.sequence);
    if !store.advance_package_out(
        &partner.name,
        &collection.id,
        previous,
        &link,
        through.as_ref(),
    )? {
        return Err(StoreError::Superseded(format!(
            "another package for partner {:?} was written while this one was (sequence {} is \
             taken); write this one again",
            partner.name, manifest.sequence
        ))
        .into());
    }
    Ok(Written { manifest, digest })
}

/// A package whose signature, recipient and files were checked.
#[derive(Debug)]
pub struct Verified {
    /// The package directory, as given less any trailing slash (for messages).
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its digest: SHA-256 (hex) of `manifest.json`.
    pub digest: String,
    /// The producer's public key, verified.
    pub producer: [u8; 32],
    /// The known peer that key belongs to, if any: the provenance of what is imported.
    pub peer: Option<String>,
    /// The object files, opened once and verified, in the manifest's order: what
    /// [`import_package`] ingests is read from these very handles, never reopened by name.
    files: Vec<File>,
}

impl Verified {
    /// The name recorded as the provenance of the objects and in the ingress audit: the
    /// peer's name, else `node:` and the producer's fingerprint.
    pub fn source(&self) -> String {
        match &self.peer {
            Some(p) => p.clone(),
            None => format!("node:{}", fingerprint(&self.producer)),
        }
    }
}

/// Reads a public node key file: 64 hex digits, as `concord node key -o FILE` writes it.
///
/// Errors: I/O; [`PackageError::Untrusted`] when the file does not hold a key.
pub fn read_key_file(path: &Path) -> Result<[u8; 32], PackageError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    unhex32(text.trim()).ok_or_else(|| {
        PackageError::Untrusted(format!(
            "{}: not a public node key (64 hex digits, as `concord node key -o FILE` writes)",
            path.display()
        ))
    })
}

/// What a file system object is, in a refusal.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Opens `path` (relative to the directory `at`) for reading as a package is read: without
/// following a symbolic link in its last component (`O_NOFOLLOW`), without blocking on a
/// FIFO (`O_NONBLOCK`: a FIFO opens at once and is then refused), and only if the opened
/// handle is a directory (`dir`) or else a regular file. Returns it with its size, from the
/// handle (the caller caps it before reading); `None` when it does not exist. The refusals
/// name the file (`name`).
fn open_no_follow(
    at: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    dir: bool,
) -> Result<Option<(File, u64)>, PackageError> {
    let refuse = |message: String| PackageError::File {
        name: name.to_owned(),
        message,
    };
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd: OwnedFd = match rustix::fs::openat(at, path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => {
            return Err(refuse(
                "a symbolic link: a package is read from its own files, never through a link; \
                 nothing stored"
                    .to_owned(),
            ));
        }
        Err(e) => {
            return Err(PackageError::Io {
                path: name.to_owned(),
                source: e.into(),
            });
        }
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|source| PackageError::Io {
        path: name.to_owned(),
        source,
    })?;
    let (want, ok) = if dir {
        ("a directory", meta.is_dir())
    } else {
        ("a regular file", meta.is_file())
    };
    if !ok {
        return Err(refuse(format!(
            "{}, not {want}: refused; nothing stored",
            kind_of(meta.file_type())
        )));
    }
    Ok(Some((file, meta.len())))
}

/// Checks a package in `dir` before anything of it is decompressed or stored: the manifest
/// (size, format), the producer key it names against `signed_by` (or, without it, finds the
/// known peer with that key), the signature against that trusted key, that the package is
/// addressed to `this_node` (this node's public node key, [`Manifest::recipient`]), and
/// every file: a regular file (no symbolic link, FIFO or device, opened without following
/// one), present, of the size and SHA-256 the manifest says, and no file that the manifest
/// does not name. The object files stay open in the result, for [`import_package`].
///
/// Errors: [`PackageError::Manifest`], [`PackageError::Untrusted`] (no key given and no peer
/// known by the producer's key; or the manifest names a producer key other than the one
/// given, naming both fingerprints), [`PackageError::Signature`] (tampered manifest, or
/// signed by another key), [`PackageError::NotAddressed`] (written for another node),
/// [`PackageError::File`] (a link, FIFO or other non-regular file; tampered, truncated,
/// missing or unexpected file), I/O.
pub fn verify_package(
    dir: &Path,
    this_node: &[u8; 32],
    signed_by: Option<[u8; 32]>,
    peers: &[Peer],
) -> Result<Verified, PackageError> {
    // Without trailing slashes: `LINK/` would make the system follow the link.
    let dir: PathBuf = dir.components().collect();
    let shown = dir.display().to_string();
    // The directory itself is no link either: every file below is opened relative to this
    // one handle, so swapping the directory afterwards changes nothing read.
    let (dir_handle, _) =
        open_no_follow(rustix::fs::CWD, &dir, &shown, true)?.ok_or_else(|| PackageError::Io {
            path: shown.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
    let at = dir_handle.as_fd();
    let (manifest_file, size) = open_no_follow(at, Path::new(MANIFEST), MANIFEST, false)?
        .ok_or_else(|| {
            PackageError::Manifest(format!("missing in {shown} (not a transfer package)"))
        })?;
    let mut bytes = Vec::new();
    // Capped before reading by its size, and while reading (it may grow meanwhile).
    if size <= MAX_MANIFEST_BYTES {
        manifest_file
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error(Path::new(MANIFEST)))?;
    }
    if size > MAX_MANIFEST_BYTES || bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(PackageError::Manifest(format!(
            "more than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    // The format first: a manifest of another format is named as such, not as a missing
    // field.
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    let format: Format = serde_json::from_slice(&bytes)
        .map_err(|e| PackageError::Manifest(format!("not a {FORMAT} manifest: {e}")))?;
    if format.format != FORMAT {
        return Err(PackageError::Manifest(format!(
            "format {:?}: this node reads {FORMAT:?}",
            format.format
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| PackageError::Manifest(format!("not a {FORMAT} manifest: {e}")))?;
    let claimed = unhex32(&manifest.producer.public_key).ok_or_else(|| {
        PackageError::Manifest("producer.public_key: not 64 hex digits".to_owned())
    })?;
    if manifest.producer.fingerprint != fingerprint(&claimed) {
        return Err(PackageError::Manifest(format!(
            "producer.fingerprint {:?} is not the fingerprint of producer.public_key ({})",
            manifest.producer.fingerprint,
            fingerprint(&claimed)
        )));
    }
    // The key to verify with: given, or a known peer's. Given, it must be the key the
    // manifest names: a package verified with one key must not name another producer (its
    // name, fingerprint and chain would be someone else's).
    let (trusted, peer) = match signed_by {
        Some(k) => {
            if k != claimed {
                return Err(PackageError::Untrusted(format!(
                    "manifest.json: producer: a foreign package: the manifest names producer \
                     key fingerprint {}, but --signed-by gives key fingerprint {}; nothing \
                     stored",
                    fingerprint(&claimed),
                    fingerprint(&k)
                )));
            }
            (k, peers.iter().find(|p| p.node_key_bytes() == Some(k)))
        }
        None => {
            let peer = peers
                .iter()
                .find(|p| p.node_key_bytes() == Some(claimed))
                .ok_or_else(|| {
                    PackageError::Untrusted(format!(
                        "no known peer has the producer's node key (fingerprint {}): give the \
                         producer's key with --signed-by KEYFILE, or record it with \
                         `concord peer add … --node-key KEYFILE`",
                        fingerprint(&claimed)
                    ))
                })?;
            (claimed, Some(peer))
        }
    };
    let (sig_file, size) = open_no_follow(at, Path::new(SIGNATURE), SIGNATURE, false)?
        .ok_or_else(|| PackageError::Signature("missing".to_owned()))?;
    if size > MAX_SIGNATURE_BYTES {
        return Err(PackageError::Signature(format!(
            "{size} bytes, more than {MAX_SIGNATURE_BYTES}: not an Ed25519 signature"
        )));
    }
    let mut sig_text = String::new();
    sig_file
        .take(MAX_SIGNATURE_BYTES)
        .read_to_string(&mut sig_text)
        .map_err(io_error(Path::new(SIGNATURE)))?;
    let signature = unhex64(sig_text.trim()).ok_or_else(|| {
        PackageError::Signature("not an Ed25519 signature (128 hex digits)".to_owned())
    })?;
    if !verify_signature(&trusted, &bytes, &signature) {
        return Err(PackageError::Signature(format!(
            "does not verify with the producer's key (fingerprint {}): manifest.json was \
             altered after signing, or the package was signed by another key",
            fingerprint(&trusted)
        )));
    }
    // Signed, so the recipient is the producer's word: written for this node, or refused.
    let recipient = unhex32(&manifest.recipient.public_key).ok_or_else(|| {
        PackageError::Manifest("recipient.public_key: not 64 hex digits".to_owned())
    })?;
    if recipient != *this_node {
        return Err(PackageError::NotAddressed(format!(
            "the package is addressed to the node with key fingerprint {} (the producer's \
             partner {:?}), not to this node (fingerprint {}): a package is imported only by \
             the node it was written for; nothing stored",
            fingerprint(&recipient),
            manifest.partner,
            fingerprint(this_node)
        )));
    }
    // Every file named, as named; nothing else.
    let mut named = BTreeSet::new();
    for f in &manifest.files {
        if f.name.is_empty()
            || f.name.contains(['/', '\\', '\0'])
            || f.name.starts_with('.')
            || f.name == MANIFEST
            || f.name == SIGNATURE
            || !named.insert(f.name.clone())
        {
            return Err(PackageError::Manifest(format!(
                "files: {:?} is not a plain, unique object file name",
                f.name
            )));
        }
    }
    let listing = rustix::fs::Dir::read_from(at).map_err(|e| PackageError::Io {
        path: shown.clone(),
        source: e.into(),
    })?;
    for entry in listing {
        let entry = entry.map_err(|e| PackageError::Io {
            path: shown.clone(),
            source: e.into(),
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "."
            && name != ".."
            && name != MANIFEST
            && name != SIGNATURE
            && !named.contains(&name)
        {
            return Err(PackageError::File {
                name,
                message: "not named in the manifest (added to the package after signing)"
                    .to_owned(),
            });
        }
    }
    let mut files = Vec::with_capacity(manifest.files.len());
    for f in &manifest.files {
        let Some((mut file, size)) = open_no_follow(at, Path::new(&f.name), &f.name, false)? else {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: "named in the manifest but missing from the package".to_owned(),
            });
        };
        // The signed manifest's size is the cap: any other size is refused before reading.
        if size != f.bytes {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: format!(
                    "{size} bytes, the manifest says {} (truncated or altered)",
                    f.bytes
                ),
            });
        }
        let got = hex(&sha256_of((&mut file).take(f.bytes)).map_err(io_error(Path::new(&f.name)))?);
        if got != f.sha256 {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: format!(
                    "SHA-256 {got}, the manifest says {} (altered after signing)",
                    f.sha256
                ),
            });
        }
        files.push(file);
    }
    Ok(Verified {
        dir,
        digest: hex(&Sha256::digest(&bytes)),
        manifest,
        producer: trusted,
        peer: peer.map(|p| p.name.clone()),
        files,
    })
}

/// Checks that `package` is the next of its chain (producer, partner) on this node: its
/// sequence follows the last one imported, and it names that package's digest as its
/// previous. Returns the last sequence imported (0: none).
///
/// Errors: [`PackageError::Chain`], naming the missing packages, the repeated or reordered
/// one, or the fork.
pub fn check_chain(store: &dyn Store, package: &Verified) -> Result<i64, PackageError> {
    let m = &package.manifest;
    let producer = hex(&package.producer);
    let last = store.package_chain(PackageDirection::In, &producer, &m.partner)?;
    let (last_seq, last_digest) = match &last {
        Some(l) => (l.sequence, Some(l.digest.as_str())),
        None => (0, None),
    };
    let who = format!(
        "from producer {} (fingerprint {}) for partner {:?}",
        m.producer.name, m.producer.fingerprint, m.partner
    );
    if m.sequence <= last_seq {
        let what = if m.sequence == last_seq && last_digest == Some(package.digest.as_str()) {
            "a repeated package: it was already imported".to_owned()
        } else {
            format!(
                "a repeated or reordered package: package {last_seq} was already imported, so \
                 package {} comes too late",
                m.sequence
            )
        };
        return Err(PackageError::Chain(format!(
            "package {} {who} is {what}; nothing stored",
            m.sequence
        )));
    }
    if m.sequence > last_seq + 1 {
        let missing = if m.sequence == last_seq + 2 {
            format!("package {} is missing", last_seq + 1)
        } else {
            format!(
                "packages {} to {} are missing",
                last_seq + 1,
                m.sequence - 1
            )
        };
        return Err(PackageError::Chain(format!(
            "package {} {who} does not follow the last one imported ({}): {missing} (import \
             them first, in order); nothing stored",
            m.sequence,
            if last_seq == 0 {
                "none".to_owned()
            } else {
                format!("package {last_seq}")
            }
        )));
    }
    if m.previous.as_deref() != last_digest {
        return Err(PackageError::Chain(format!(
            "package {} {who} names previous digest {}, but package {last_seq} imported here \
             has digest {}: the producer's chain forked; nothing stored",
            m.sequence,
            m.previous.as_deref().unwrap_or("(none)"),
            last_digest.unwrap_or("(none)")
        )));
    }
    Ok(last_seq)
}

/// A verified file read again for ingest: hashes what passes and, at its end, compares the
/// digest with the manifest's, so a file rewritten after verification (on media another
/// process writes) fails the read and the import rolls back.
struct Rehash<'a, R> {
    inner: R,
    hash: Sha256,
    name: &'a str,
    expected: &'a str,
    /// Counts the files whose end was reached with the expected digest.
    complete: Rc<Cell<usize>>,
    done: bool,
}

impl<R: Read> Read for Rehash<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let got = hex(&std::mem::take(&mut self.hash).finalize());
            if got != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: changed after it was verified (SHA-256 now {got}, the manifest \
                         says {})",
                        self.name, self.expected
                    ),
                ));
            }
            self.complete.set(self.complete.get() + 1);
        }
        Ok(n)
    }
}

/// Where [`import_package`] stores the objects.
#[derive(Clone, Copy, Debug)]
pub enum Destination<'a> {
    /// An existing collection (id).
    Existing(&'a str),
    /// A collection created in the import's transaction.
    Create(&'a Collection),
}

/// Limits of one import.
#[derive(Clone, Copy, Debug)]
pub struct ImportLimits {
    /// Largest object, in bytes as written (`max_object_size`).
    pub max_object_size: u64,
    /// Largest object file once decompressed, in bytes (`max_unpacked`): a file whose
    /// manifest says more is refused before it is read, and no file is read past what its
    /// manifest says.
    pub max_unpacked: u64,
}

/// Ingests a verified package (after [`verify_package`] and [`check_chain`]): every file
/// through the one ingest, in one transaction with the objects' provenance
/// ([`Verified::source`]), their ingress audit records (door `package-import`) and the
/// incoming chain. The files are read from the handles [`verify_package`] opened and hashed
/// again as they are read. Returns the ingest's report.
///
/// Errors: [`PackageError::File`] for a file over `limits.max_unpacked`;
/// [`PackageError::Ingest`] (malformed JSON, an object over `max_object_size`, a file longer
/// once decompressed than its manifest says, a file whose bytes changed after it was
/// verified, counts that differ from the manifest's, or another import that moved the chain
/// first). Nothing is stored on any error.
pub fn import_package(
    store: &dyn Store,
    package: &Verified,
    destination: Destination<'_>,
    limits: ImportLimits,
    progress: impl FnMut(usize),
) -> Result<IngestReport, PackageError> {
    let m = &package.manifest;
    for f in &m.files {
        if f.unpacked_bytes > limits.max_unpacked {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: format!(
                    "{} bytes once decompressed, over max_unpacked ({} bytes); nothing stored",
                    f.unpacked_bytes, limits.max_unpacked
                ),
            });
        }
    }
    let previous = check_chain(store, package)?;
    let source = package.source();
    let who = format!("peer:{source}");
    let collection_id = match destination {
        Destination::Existing(id) => id.to_owned(),
        Destination::Create(c) => c.id.clone(),
    };
    let door = Door {
        door: DOOR_IMPORT,
        partner: &who,
        collection: &collection_id,
        policy_version: concord_egress::BASE_POLICY_VERSION,
    };
    let make = |accepted: &[Accepted]| -> Vec<concord_store::AuditRecord> {
        accepted
            .iter()
            .map(|a| door.ingress(a.vid, &a.id, &a.version, a.added))
            .collect()
    };
    let options = IngestOptions {
        container: Container::Bundle,
        list_accepted: false,
        audit: Some(&make),
        provenance: &[&source],
        settings: &[],
        max_object_size: limits.max_object_size,
        cancel: None,
        // Ingested as a sync pull is: the producer node wrote it, not a partner's key.
        unseen: None,
    };
    // The verified handles, from their start: the bytes ingested are hashed again on the
    // way in and must be the ones verified (checked at each file's end and before commit).
    let complete = Rc::new(Cell::new(0usize));
    let mut inputs = Vec::with_capacity(m.files.len());
    for (f, mut handle) in m.files.iter().zip(&package.files) {
        let path = Path::new(&f.name);
        handle.rewind().map_err(io_error(path))?;
        let rehashed = Rehash {
            inner: handle.take(f.bytes),
            hash: Sha256::new(),
            name: &f.name,
            expected: &f.sha256,
            complete: complete.clone(),
            done: false,
        };
        let file = BufReader::with_capacity(1 << 16, rehashed);
        let decoded: Box<dyn Read + '_> = match m.compression {
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(io_error(path))?)
            }
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        };
        inputs.push(concord_stix::CappedReader::new(decoded, f.unpacked_bytes));
    }
    let link = PackageLink {
        sequence: m.sequence,
        digest: package.digest.clone(),
    };
    let producer = hex(&package.producer);
    let expected: u64 = m.files.iter().map(|f| f.objects).sum();
    let mut finish = |batch: &mut dyn concord_store::WriteBatch,
                      report: &IngestReport|
     -> Result<(), IngestError> {
        // Every file read to its end, where its digest was checked again (the bundle reader
        // reads to the end of each input; this holds should that ever change).
        if complete.get() != m.files.len() {
            return Err(IngestError::Refused(format!(
                "{}: {} of {} files read to their end and checked again; nothing stored",
                package.dir.display(),
                complete.get(),
                m.files.len()
            )));
        }
        // Cannot happen for a package whose digests verified, unless its producer signed a
        // manifest that disagrees with its own files.
        if report.total as u64 != expected {
            return Err(IngestError::Refused(format!(
                "manifest.json: counts: the files hold {} objects, the manifest says \
                 {expected}; nothing stored",
                report.total
            )));
        }
        if batch.advance_package_in(&producer, &m.partner, previous, &link)? {
            Ok(())
        } else {
            Err(StoreError::Superseded(format!(
                "package {} from producer {} was imported by another process meanwhile; \
                 nothing stored by this import",
                m.sequence, m.producer.fingerprint
            ))
            .into())
        }
    };
    let batch = match destination {
        Destination::Existing(id) => store.begin_write(id)?,
        Destination::Create(c) => store.begin_write_creating(c)?,
    };
    let report = concord_ingest::ingest_batch(batch, inputs, options, &mut finish, progress)?;
    Ok(report)
}
