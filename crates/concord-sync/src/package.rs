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
//! The same files may travel as **one file**: an uncompressed POSIX tar ([`Form::Tar`],
//! `FILE.tar`) holding exactly those files at its top level (the object files are
//! compressed already), verified exactly as the directory is.
//!
//! The digest of a package is the SHA-256 of its `manifest.json` (which names the digest of
//! every other file). Packages for one partner form a chain: each names the sequence and
//! digest of the package recorded before it, so the receiver can tell that none is missing,
//! repeated or reordered. A sequence number is reserved in the store before its package is
//! written, and the package recorded once it is complete: a crash in between leaves a
//! complete package that was never recorded, whose number is not handed out again (the next
//! package skips it and names the same previous one, see [`check_chain`]).
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
//! it are opened relative to one directory handle (a tar: the file itself) without
//! following a symbolic link (`O_NOFOLLOW`) and without blocking on a FIFO (`O_NONBLOCK`);
//! only regular files (by the opened handle's metadata; in a tar, regular-file members by
//! bare names, each once) of bounded size are read; and the bytes ingested are read from
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
use std::sync::Arc;

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
/// Format 2 added the [`Manifest::recipient`]; format 3 the
/// [`Manifest::previous_sequence`] (sequence numbers are handed out before a package is
/// written, so the chain may skip one that was never completed). Packages of other formats
/// are refused.
pub const FORMAT: &str = "concord-transfer-package/3";
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
/// The most members a package tar may hold before it is refused unread: two more than the
/// object files of the largest manifest read ([`MAX_MANIFEST_BYTES`], at least 64 bytes
/// per file entry), far above any real package (150 files for 1.5 million objects).
pub const MAX_TAR_MEMBERS: usize = (MAX_MANIFEST_BYTES / 64) as usize + 2;
/// The most bytes after a tar's end-of-archive marker: tar tools pad an archive to whole
/// records of 20 blocks (10,240 bytes) with zeros.
const MAX_TAR_TRAILER: u64 = 10_240;
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
    /// Position in the chain of packages for `partner`: 1, 2, … Numbers are handed out
    /// before a package is written, so one whose writing failed or was cut short (a crash)
    /// is skipped, never reused.
    pub sequence: i64,
    /// The sequence of the previous package recorded for `partner` (0: none), the one
    /// [`Manifest::previous`] names: `sequence - 1` unless numbers were skipped.
    pub previous_sequence: i64,
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
    /// The output tar file exists.
    #[error("{0}: exists (a package tar is written as a new file)")]
    Exists(String),
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
    /// In a tar: where the member's header goes, written once the size is known.
    header_at: Option<u64>,
}

impl OpenFile {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PackageError> {
        self.unpacked += bytes.len() as u64;
        self.encoder.write_all(bytes).map_err(io_error(&self.path))
    }
}

/// Where the files of a package go.
#[derive(Clone, Copy)]
enum Out<'a> {
    /// One file each in this directory.
    Dir(&'a Path),
    /// Members of this tar file (being written at `path`), one after the other: each
    /// object file is compressed straight into the tar and its header written once its
    /// size is known, so nothing is written twice and no temporary file is needed.
    Tar { file: &'a File, path: &'a Path },
}

/// The header of a package tar member: a regular file `name` of `size` bytes (POSIX ustar,
/// mode 0644, owner 0).
fn member_header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_cksum();
    Ok(h)
}

/// Zeros that fill a tar member to whole 512-byte blocks after `size` bytes.
fn tar_padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; 512] = [0; 512];
    &ZEROS[..((512 - size % 512) % 512) as usize]
}

/// The object files of a package, written one after the other.
struct Files<'a> {
    out: Out<'a>,
    compression: Compression,
    per_file: usize,
    /// The members' modification time (seconds since the epoch): when the write started.
    mtime: u64,
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
            let (path, file, header_at) = match self.out {
                Out::Dir(dir) => {
                    let path = dir.join(&name);
                    let file = File::create(&path).map_err(io_error(&path))?;
                    (path, file, None)
                }
                Out::Tar { mut file, path } => {
                    // The header's place, filled in by `close`; the member's bytes follow
                    // it through a second handle on the same open file (same offset).
                    let at = file.stream_position().map_err(io_error(path))?;
                    file.write_all(&[0; 512]).map_err(io_error(path))?;
                    let clone = file.try_clone().map_err(io_error(path))?;
                    (path.to_owned(), clone, Some(at))
                }
            };
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
                header_at,
            };
            let head = format!(
                "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[\n",
                uuid::Uuid::new_v4()
            );
            f.write(head.as_bytes())?;
            self.open = Some(f);
        }
        let Some(f) = self.open.as_mut() else {
            unreachable!("a file was opened above");
        };
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
        match (self.out, f.header_at) {
            (Out::Tar { mut file, path }, Some(at)) => {
                use std::os::unix::fs::FileExt;
                let header = member_header(&f.name, sink.bytes, self.mtime)
                    .and_then(|h| file.write_all_at(h.as_bytes(), at))
                    .and_then(|()| file.write_all(tar_padding(sink.bytes)));
                header.map_err(io_error(path))?;
            }
            // Each file durable before the manifest that names it is written.
            _ => sink.inner.get_ref().sync_all().map_err(io_error(&f.path))?,
        }
        self.done.push(PackageFile {
            name: f.name,
            objects: f.objects,
            bytes: sink.bytes,
            unpacked_bytes: f.unpacked,
            sha256: hex(&sink.hash.finalize()),
        });
        Ok(())
    }

    /// Writes `manifest.json` and `manifest.sig` after the object files: as files of the
    /// directory, or as the tar's last members and its end-of-archive marker. Each is
    /// durable (synced) when this returns.
    fn finish(&mut self, manifest: &[u8], signature: &[u8]) -> Result<(), PackageError> {
        match self.out {
            Out::Dir(dir) => {
                for (name, content) in [(MANIFEST, manifest), (SIGNATURE, signature)] {
                    let path = dir.join(name);
                    let mut f = File::create(&path).map_err(io_error(&path))?;
                    f.write_all(content)
                        .and_then(|()| f.sync_all())
                        .map_err(io_error(&path))?;
                }
            }
            Out::Tar { file, path } => {
                let mut tar = tar::Builder::new(file);
                for (name, content) in [(MANIFEST, manifest), (SIGNATURE, signature)] {
                    member_header(name, content.len() as u64, self.mtime)
                        .and_then(|h| tar.append(&h, content))
                        .map_err(io_error(path))?;
                }
                tar.finish()
                    .and_then(|()| file.sync_all())
                    .map_err(io_error(path))?;
            }
        }
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

/// The two forms of a package on disk: a directory of files, or the same files as the
/// members of one uncompressed POSIX tar (the object files are compressed already).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A directory: `manifest.json`, `manifest.sig`, `objects-NNNNNN.json.{zst,gz}`.
    Directory,
    /// One tar file holding those files at its top level, and nothing else.
    Tar,
}

impl Form {
    /// The form `path` names for writing and, on the command line, for reading: a name
    /// ending in `.tar` is a tar, anything else a directory.
    pub fn of(path: &Path) -> Form {
        if path.extension().is_some_and(|e| e == "tar") {
            Form::Tar
        } else {
            Form::Directory
        }
    }
}

/// Where a package tar is written before it is complete: `FILE.tar.partial`, renamed to
/// `FILE.tar` once every member is written and synced (a `.partial` file is never a
/// package: `concord import` takes only `.tar` names as tars).
/// Gives `partial` the name `output` only if nothing has that name: a file created at
/// `output` after the check at the start of the write is never replaced (the check and the
/// rename are one step). `renameat2(RENAME_NOREPLACE)`; where the file system has no such
/// flag (`EINVAL`, as on some network file systems), a hard link (which also fails on an
/// existing name) and the removal of `partial`.
///
/// Errors: [`PackageError::Exists`] when `output` exists, [`PackageError::Io`] otherwise.
fn rename_no_replace(partial: &Path, output: &Path) -> Result<(), PackageError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let exists = || PackageError::Exists(output.display().to_string());
    match renameat_with(CWD, partial, CWD, output, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(exists()),
        Err(Errno::INVAL) | Err(Errno::NOSYS) => match std::fs::hard_link(partial, output) {
            Ok(()) => std::fs::remove_file(partial).map_err(io_error(partial)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
            Err(e) => Err(io_error(output)(e)),
        },
        Err(e) => Err(io_error(output)(io::Error::from(e))),
    }
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes the transfer package of `collection` for `partner` at `output` (its [`Form`] by
/// the name: a new or empty directory, or a new `.tar` file), addressed to the partner's
/// node key `recipient` (see [`recipient_key`]), signed with `key`, and records its chain
/// link and cursor: [`write_unrecorded`], then [`Unrecorded::record`]. Every object passes
/// `egress` for the partner (door `package`, audited page by page before it is written).
/// On any error the files written are removed and nothing is recorded.
///
/// Errors: those of [`write_unrecorded`] and [`Unrecorded::record`].
pub fn write_package(
    egress: &Egress,
    key: &NodeKey,
    partner: &PartnerProfile,
    recipient: &[u8; 32],
    collection: &Collection,
    options: &WriteOptions,
    output: &Path,
) -> Result<Written, PackageError> {
    write_unrecorded(egress, key, partner, recipient, collection, options, output)?
        .record(egress.store().as_ref())
}

/// The first of the two steps of [`write_package`]: reserves the package's sequence number
/// in the store ([`Store::reserve_package_out`], committed before anything is written),
/// then writes the package at `output` in full and makes it durable under its name (a tar
/// is written as `FILE.tar.partial`, synced, then renamed). On any error the files written
/// are removed. The package is not recorded yet: a process that stops here (a crash) leaves
/// a complete package that was never recorded, whose number is not handed out again, and
/// the next package names the same previous one ([`check_chain`] takes either or both).
///
/// Errors: [`PackageError::NotEmpty`], [`PackageError::Exists`], I/O, the store, the egress
/// door.
pub fn write_unrecorded(
    egress: &Egress,
    key: &NodeKey,
    partner: &PartnerProfile,
    recipient: &[u8; 32],
    collection: &Collection,
    options: &WriteOptions,
    output: &Path,
) -> Result<Unrecorded, PackageError> {
    let write = |out: Out<'_>, remove: Remove| {
        write_into(egress, key, partner, recipient, collection, options, out)
            .map(|w| Unrecorded { remove, ..w })
    };
    match Form::of(output) {
        Form::Directory => {
            let dir = output;
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
            let remove = if created_dir {
                Remove::Dir(dir.to_owned())
            } else {
                Remove::FilesIn(dir.to_owned())
            };
            let result = write(Out::Dir(dir), remove.clone());
            if result.is_err() {
                remove.run();
            }
            result
        }
        Form::Tar => {
            match std::fs::symlink_metadata(output) {
                Ok(_) => return Err(PackageError::Exists(output.display().to_string())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(output)(e)),
            }
            let partial = partial_path(output);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .map_err(io_error(&partial))?;
            let result = write(
                Out::Tar {
                    file: &file,
                    path: &partial,
                },
                Remove::File(output.to_owned()),
            )
            .and_then(|w| {
                rename_no_replace(&partial, output)?;
                // The new name durable before the package may be recorded as written.
                let parent = match output.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                if let Err(e) = File::open(parent).and_then(|d| d.sync_all()) {
                    w.remove.run();
                    return Err(io_error(parent)(e));
                }
                Ok(w)
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        }
    }
}

/// What to remove when a package written is not recorded after all.
#[derive(Clone, Debug)]
enum Remove {
    /// The directory the write created.
    Dir(PathBuf),
    /// The files in the empty directory it was given.
    FilesIn(PathBuf),
    /// The tar file.
    File(PathBuf),
}

impl Remove {
    /// Removes it, as far as possible: nothing half-written stays behind.
    fn run(&self) {
        match self {
            Remove::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Remove::FilesIn(d) => {
                if let Ok(entries) = std::fs::read_dir(d) {
                    for e in entries.flatten() {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Remove::File(f) => {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// A package written in full and durable under its name, its sequence number reserved, not
/// yet recorded in the store ([`write_unrecorded`]). Dropped without
/// [`Unrecorded::record`], it stays what a crash between writing and recording leaves.
#[derive(Debug)]
pub struct Unrecorded {
    written: Written,
    /// The partner and collection it is for.
    partner: String,
    collection: String,
    /// The last entry of the collection it covers (`None`: nothing new).
    through: Option<Cursor>,
    /// Its files, removed if recording fails.
    remove: Remove,
}

impl Unrecorded {
    /// The manifest as written and signed.
    pub fn manifest(&self) -> &Manifest {
        &self.written.manifest
    }

    /// Records the package: the partner's chain moves to it (only from the previous package
    /// it names) and the collection's cursor to its end, in one transaction. On failure the
    /// package's files are removed.
    ///
    /// Errors: the store; [`StoreError::Superseded`] when another package for the partner
    /// was recorded meanwhile (this one names a previous package that is no longer the
    /// last).
    pub fn record(self, store: &dyn Store) -> Result<Written, PackageError> {
        let m = &self.written.manifest;
        let link = PackageLink {
            sequence: m.sequence,
            digest: self.written.digest.clone(),
        };
        let recorded = store.advance_package_out(
            &self.partner,
            &self.collection,
            m.previous_sequence,
            &link,
            self.through.as_ref(),
        );
        match recorded {
            Ok(true) => Ok(self.written),
            Ok(false) => {
                self.remove.run();
                Err(StoreError::Superseded(format!(
                    "another package for partner {:?} was recorded while package {} was \
                     written (it names package {} as its previous, no longer the last); write \
                     it again",
                    self.partner, m.sequence, m.previous_sequence
                ))
                .into())
            }
            Err(e) => {
                self.remove.run();
                Err(e.into())
            }
        }
    }
}

fn write_into(
    egress: &Egress,
    key: &NodeKey,
    partner: &PartnerProfile,
    recipient: &[u8; 32],
    collection: &Collection,
    options: &WriteOptions,
    out: Out<'_>,
) -> Result<Unrecorded, PackageError> {
    let store = egress.store().as_ref();
    // The number first, committed: a crash from here on never lets another package take it.
    let (sequence, chain) = store.reserve_package_out(&partner.name)?;
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
        out,
        compression: options.compression,
        per_file: options.objects_per_file.max(1),
        mtime: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
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
        sequence,
        previous_sequence: chain.as_ref().map_or(0, |c| c.sequence),
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
        files: std::mem::take(&mut files.done),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PackageError::Manifest(format!("cannot be written: {e}")))?;
    bytes.push(b'\n');
    let digest = hex(&Sha256::digest(&bytes));
    let signature = format!("{}\n", hex(&key.sign(&bytes)));
    files.finish(&bytes, signature.as_bytes())?;
    Ok(Unrecorded {
        written: Written { manifest, digest },
        partner: partner.name.clone(),
        collection: collection.id.clone(),
        through,
        // Set by the caller, which knows what it created.
        remove: Remove::FilesIn(PathBuf::new()),
    })
}

/// A package whose signature, recipient and files were checked.
#[derive(Debug)]
pub struct Verified {
    /// The package (directory or tar file), as given less any trailing slash (for
    /// messages).
    pub path: PathBuf,
    /// Its form: what `path` turned out to be when opened.
    pub form: Form,
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
    files: Vec<Member>,
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

/// Where the bytes of one verified object file are: `len` bytes from `start` of an open
/// handle (a file of a package directory from its start, or a member's data in a package
/// tar).
#[derive(Debug)]
struct Member {
    file: Arc<File>,
    start: u64,
    len: u64,
}

impl Member {
    /// A reader of the member's bytes, by positioned reads (the handle's offset is not
    /// used, so members of one tar are read independently).
    fn reader(&self) -> Section<'_> {
        Section {
            file: &self.file,
            pos: self.start,
            end: self.start + self.len,
        }
    }
}

/// `end - pos` bytes of `file` from `pos`: ends early if the file became shorter (which
/// the digest checked at the end then refuses).
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
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

/// What [`open_no_follow`] accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A regular file only.
    File,
    /// A package: a directory or a regular file (a tar).
    Package,
}

/// Opens `path` (relative to the directory `at`) for reading as a package is read: without
/// following a symbolic link in its last component (`O_NOFOLLOW`), without blocking on a
/// FIFO (`O_NONBLOCK`: a FIFO opens at once and is then refused), and only if the opened
/// handle is what `want` says. Returns it with its size, from the handle (the caller caps
/// it before reading), and whether it is a directory; `None` when it does not exist. The
/// refusals name the file (`name`).
fn open_no_follow(
    at: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    want: Want,
) -> Result<Option<(File, u64, bool)>, PackageError> {
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
    let (what, ok) = match want {
        Want::File => ("a regular file", meta.is_file()),
        Want::Package => (
            "a package directory or tar file",
            meta.is_dir() || meta.is_file(),
        ),
    };
    if !ok {
        return Err(refuse(format!(
            "{}, not {what}: refused; nothing stored",
            kind_of(meta.file_type())
        )));
    }
    Ok(Some((file, meta.len(), meta.is_dir())))
}

/// Reads `len` bytes at `start` of `file`, `name` in errors.
fn read_member(file: &File, start: u64, len: u64, name: &str) -> Result<Vec<u8>, PackageError> {
    let mut bytes = Vec::new();
    Section {
        file,
        pos: start,
        end: start + len,
    }
    .read_to_end(&mut bytes)
    .map_err(io_error(Path::new(name)))?;
    Ok(bytes)
}

/// Checks a package at `path`, a directory or a tar file ([`Form`]: what the path turns out
/// to be when opened, without following a link), before anything of it is decompressed or
/// stored: the manifest (size, format), the producer key it names against `signed_by` (or,
/// without it, finds the known peer with that key), the signature against that trusted
/// key, that the package is addressed to `this_node` (this node's public node key,
/// [`Manifest::recipient`]), and every file: present, of the size and SHA-256 the manifest
/// says, and no file that the manifest does not name. A directory's files must be regular
/// files (no symbolic link, FIFO or device, opened without following one); a tar's members
/// regular files at its top level by their bare names (no link, directory, extension
/// header, absolute path or `..`, no name twice), each within the file, followed by the
/// end-of-archive marker and nothing but zeros. Sizes are checked before anything is read
/// (`manifest.json` at most [`MAX_MANIFEST_BYTES`], `manifest.sig`
/// [`MAX_SIGNATURE_BYTES`], object files exactly the signed size). The object files stay
/// open in the result, for [`import_package`]; a tar is opened once, and its members are
/// read again from that handle.
///
/// Errors: [`PackageError::Manifest`], [`PackageError::Untrusted`] (no key given and no peer
/// known by the producer's key; or the manifest names a producer key other than the one
/// given, naming both fingerprints), [`PackageError::Signature`] (tampered manifest, or
/// signed by another key), [`PackageError::NotAddressed`] (written for another node),
/// [`PackageError::File`] (a link, FIFO or other non-regular file or member; tampered,
/// truncated, missing, repeated or unexpected file), I/O.
pub fn verify_package(
    path: &Path,
    this_node: &[u8; 32],
    signed_by: Option<[u8; 32]>,
    peers: &[Peer],
) -> Result<Verified, PackageError> {
    // Without trailing slashes: `LINK/` would make the system follow the link.
    let path: PathBuf = path.components().collect();
    let shown = path.display().to_string();
    // The package itself is no link either: a directory's files are opened relative to
    // this one handle, and a tar is read from it alone, so swapping the path afterwards
    // changes nothing read.
    let (handle, size, is_dir) = open_no_follow(rustix::fs::CWD, &path, &shown, Want::Package)?
        .ok_or_else(|| PackageError::Io {
            path: shown.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
    let trust = Trust {
        this_node,
        signed_by,
        peers,
    };
    let (form, signed, files) = if is_dir {
        let (signed, files) = verify_directory(&handle, &shown, &trust)?;
        (Form::Directory, signed, files)
    } else {
        let (signed, files) = verify_tar(handle, size, &shown, &trust)?;
        (Form::Tar, signed, files)
    };
    Ok(Verified {
        path,
        form,
        digest: signed.digest,
        manifest: signed.manifest,
        producer: signed.producer,
        peer: signed.peer,
        files,
    })
}

/// The keys a package is checked against.
struct Trust<'a> {
    this_node: &'a [u8; 32],
    signed_by: Option<[u8; 32]>,
    peers: &'a [Peer],
}

/// A manifest whose signature and recipient verified.
struct Signed {
    manifest: Manifest,
    digest: String,
    producer: [u8; 32],
    peer: Option<String>,
}

/// The checks of `manifest.json` (its `bytes`, at most [`MAX_MANIFEST_BYTES`]) and
/// `manifest.sig` (its `signature`, at most [`MAX_SIGNATURE_BYTES`]) that do not depend on
/// the form: format, producer key (against `--signed-by` or a known peer), signature,
/// recipient, chain fields, and the file names it lists.
fn check_signed(bytes: &[u8], signature: &[u8], trust: &Trust<'_>) -> Result<Signed, PackageError> {
    // The format first: a manifest of another format is named as such, not as a missing
    // field.
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    let format: Format = serde_json::from_slice(bytes)
        .map_err(|e| PackageError::Manifest(format!("not a {FORMAT} manifest: {e}")))?;
    if format.format != FORMAT {
        return Err(PackageError::Manifest(format!(
            "format {:?}: this node reads {FORMAT:?}",
            format.format
        )));
    }
    let manifest: Manifest = serde_json::from_slice(bytes)
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
    let (trusted, peer) = match trust.signed_by {
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
            (
                k,
                trust.peers.iter().find(|p| p.node_key_bytes() == Some(k)),
            )
        }
        None => {
            let peer = trust
                .peers
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
    let signature = std::str::from_utf8(signature)
        .ok()
        .and_then(|t| unhex64(t.trim()))
        .ok_or_else(|| {
            PackageError::Signature("not an Ed25519 signature (128 hex digits)".to_owned())
        })?;
    if !verify_signature(&trusted, bytes, &signature) {
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
    if recipient != *trust.this_node {
        return Err(PackageError::NotAddressed(format!(
            "the package is addressed to the node with key fingerprint {} (the producer's \
             partner {:?}), not to this node (fingerprint {}): a package is imported only by \
             the node it was written for; nothing stored",
            fingerprint(&recipient),
            manifest.partner,
            fingerprint(trust.this_node)
        )));
    }
    // The chain fields agree: a previous package is named by sequence and digest, or not
    // at all (the first).
    let previous_ok = match &manifest.previous {
        None => manifest.previous_sequence == 0,
        Some(d) => {
            (1..manifest.sequence).contains(&manifest.previous_sequence)
                && d.len() == 64
                && d.bytes().all(|b| b.is_ascii_hexdigit())
        }
    };
    if manifest.sequence < 1 || !previous_ok {
        return Err(PackageError::Manifest(format!(
            "sequence {}, previous_sequence {}, previous {:?}: a package follows a lower \
             sequence named with its SHA-256 (64 hex digits), or none (previous_sequence 0)",
            manifest.sequence, manifest.previous_sequence, manifest.previous
        )));
    }
    // Every file named plainly, once.
    let mut named = BTreeSet::new();
    for f in &manifest.files {
        if f.name.is_empty()
            || f.name.contains(['/', '\\', '\0'])
            || f.name.starts_with('.')
            || f.name == MANIFEST
            || f.name == SIGNATURE
            || !named.insert(f.name.as_str())
        {
            return Err(PackageError::Manifest(format!(
                "files: {:?} is not a plain, unique object file name",
                f.name
            )));
        }
    }
    Ok(Signed {
        digest: hex(&Sha256::digest(bytes)),
        producer: trusted,
        peer: peer.map(|p| p.name.clone()),
        manifest,
    })
}

/// Checks the object file `f` of a package: `len` bytes at `start` of `file` (its size
/// from the handle or the tar header, checked against the signed size before anything is
/// read), hashed.
fn check_member(
    file: Arc<File>,
    start: u64,
    len: u64,
    f: &PackageFile,
) -> Result<Member, PackageError> {
    // The signed manifest's size is the cap: any other size is refused before reading.
    if len != f.bytes {
        return Err(PackageError::File {
            name: f.name.clone(),
            message: format!(
                "{len} bytes, the manifest says {} (truncated or altered)",
                f.bytes
            ),
        });
    }
    let member = Member { file, start, len };
    let got = hex(&sha256_of(member.reader()).map_err(io_error(Path::new(&f.name)))?);
    if got != f.sha256 {
        return Err(PackageError::File {
            name: f.name.clone(),
            message: format!(
                "SHA-256 {got}, the manifest says {} (altered after signing)",
                f.sha256
            ),
        });
    }
    Ok(member)
}

/// [`verify_package`] of a directory (`dir`, opened): each file opened relative to it.
fn verify_directory(
    dir: &File,
    shown: &str,
    trust: &Trust<'_>,
) -> Result<(Signed, Vec<Member>), PackageError> {
    let at = dir.as_fd();
    let (manifest_file, size, _) = open_no_follow(at, Path::new(MANIFEST), MANIFEST, Want::File)?
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
    let (sig_file, size, _) = open_no_follow(at, Path::new(SIGNATURE), SIGNATURE, Want::File)?
        .ok_or_else(|| PackageError::Signature("missing".to_owned()))?;
    if size > MAX_SIGNATURE_BYTES {
        return Err(PackageError::Signature(format!(
            "{size} bytes, more than {MAX_SIGNATURE_BYTES}: not an Ed25519 signature"
        )));
    }
    let mut signature = Vec::new();
    sig_file
        .take(MAX_SIGNATURE_BYTES)
        .read_to_end(&mut signature)
        .map_err(io_error(Path::new(SIGNATURE)))?;
    let signed = check_signed(&bytes, &signature, trust)?;
    // Every file named, as named; nothing else.
    let named: BTreeSet<&str> = signed
        .manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let listing = rustix::fs::Dir::read_from(at).map_err(|e| PackageError::Io {
        path: shown.to_owned(),
        source: e.into(),
    })?;
    for entry in listing {
        let entry = entry.map_err(|e| PackageError::Io {
            path: shown.to_owned(),
            source: e.into(),
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "."
            && name != ".."
            && name != MANIFEST
            && name != SIGNATURE
            && !named.contains(name.as_str())
        {
            return Err(PackageError::File {
                name,
                message: "not named in the manifest (added to the package after signing)"
                    .to_owned(),
            });
        }
    }
    let mut files = Vec::with_capacity(signed.manifest.files.len());
    for f in &signed.manifest.files {
        let Some((file, size, _)) = open_no_follow(at, Path::new(&f.name), &f.name, Want::File)?
        else {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: "named in the manifest but missing from the package".to_owned(),
            });
        };
        files.push(check_member(Arc::new(file), 0, size, f)?);
    }
    Ok((signed, files))
}

/// A member of a package tar, as its header says.
struct TarMember {
    name: String,
    /// Where its data starts in the file.
    start: u64,
    /// Its size in bytes.
    len: u64,
}

/// What kind of tar member a header announces, in a refusal.
fn member_kind(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Symlink => "a symbolic link member",
        tar::EntryType::Link => "a hard link member",
        tar::EntryType::Directory => "a directory member",
        tar::EntryType::Char | tar::EntryType::Block => "a device member",
        tar::EntryType::Fifo => "a FIFO member",
        tar::EntryType::XHeader
        | tar::EntryType::XGlobalHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => "an extension header (PAX or GNU)",
        tar::EntryType::GNUSparse => "a sparse file member",
        _ => "a member that is not a regular file",
    }
}

/// Walks the headers of a package tar (`file`, `size` bytes; `shown` in messages) without
/// reading any member's data, and checks each one: a regular file, at the top level by a
/// bare name, named once, within the file; then the end-of-archive marker and nothing but
/// zero padding after it.
fn tar_members(file: &File, size: u64, shown: &str) -> Result<Vec<TarMember>, PackageError> {
    let refuse = |name: &str, message: String| PackageError::File {
        name: name.to_owned(),
        message,
    };
    let damaged = |e: io::Error| {
        refuse(
            shown,
            format!("not a tar archive, or a damaged or truncated one ({e}); nothing stored"),
        )
    };
    let mut archive = tar::Archive::new(file);
    let mut members: Vec<TarMember> = Vec::new();
    let mut end = 0u64;
    // Raw: every header is a member of its own (no PAX or GNU extension is applied), so a
    // name is what its header says and an extension header is refused, not obeyed.
    for entry in archive.entries_with_seek().map_err(damaged)?.raw(true) {
        let entry = entry.map_err(damaged)?;
        if members.len() == MAX_TAR_MEMBERS {
            return Err(refuse(
                shown,
                format!(
                    "more than {MAX_TAR_MEMBERS} members: not a transfer package; nothing stored"
                ),
            ));
        }
        let header = entry.header();
        let raw = header.path_bytes();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = header.entry_type();
        if kind != tar::EntryType::Regular {
            let to = match header.link_name_bytes() {
                Some(t) if kind.is_symlink() || kind.is_hard_link() => {
                    format!(" (to {})", String::from_utf8_lossy(&t))
                }
                _ => String::new(),
            };
            return Err(refuse(
                &name,
                format!(
                    "{}{to}: a package tar holds only regular files, and a package is read \
                     from its own members, never through a link; nothing stored",
                    member_kind(kind)
                ),
            ));
        }
        if raw.is_empty() || std::str::from_utf8(&raw).is_err() {
            return Err(refuse(
                &name,
                "a member without a UTF-8 name: refused; nothing stored".to_owned(),
            ));
        }
        if raw.starts_with(b"/") {
            return Err(refuse(
                &name,
                "an absolute path: a package tar holds its files by their bare names; \
                 nothing stored"
                    .to_owned(),
            ));
        }
        if raw.split(|&b| b == b'/').any(|c| c == b"..") {
            return Err(refuse(
                &name,
                "a path out of the package (`..`): refused; nothing stored".to_owned(),
            ));
        }
        if raw.contains(&b'/') || raw.contains(&b'\\') {
            return Err(refuse(
                &name,
                "a member inside a directory: a package tar holds its files at its top \
                 level by their bare names; nothing stored"
                    .to_owned(),
            ));
        }
        if members.iter().any(|m| m.name == name) {
            return Err(refuse(
                &name,
                "a second member of that name in the tar: refused; nothing stored".to_owned(),
            ));
        }
        let start = entry.raw_file_position();
        let len = header.entry_size().map_err(damaged)?;
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(refuse(
                &name,
                format!(
                    "truncated: its header says {len} bytes, the tar ends {} bytes into it (an \
                     incomplete copy); nothing stored",
                    size.saturating_sub(start)
                ),
            ));
        }
        end = (start + len).div_ceil(512) * 512;
        members.push(TarMember { name, start, len });
    }
    // The end-of-archive marker (two zero blocks) must be there: without it the tar was
    // cut after a member. After it, zeros only (tar tools pad to whole records).
    let rest = size.saturating_sub(end);
    if rest < 1024 {
        return Err(refuse(
            shown,
            "truncated: no end-of-archive marker after the last member (an incomplete copy); \
             nothing stored"
                .to_owned(),
        ));
    }
    if rest > 1024 + MAX_TAR_TRAILER || read_member(file, end, rest, shown)?.iter().any(|&b| b != 0)
    {
        return Err(refuse(
            shown,
            format!(
                "{} bytes after the end-of-archive marker that are not zero padding: refused; \
                 nothing stored",
                rest - 1024
            ),
        ));
    }
    Ok(members)
}

/// [`verify_package`] of a tar (`file`, opened, `size` bytes): the headers walked first
/// (nothing of a member read), then the manifest and signature read from their members,
/// then each object member hashed from the same handle.
fn verify_tar(
    file: File,
    size: u64,
    shown: &str,
    trust: &Trust<'_>,
) -> Result<(Signed, Vec<Member>), PackageError> {
    let members = tar_members(&file, size, shown)?;
    let find = |name: &str| members.iter().find(|m| m.name == name);
    let manifest = find(MANIFEST).ok_or_else(|| {
        PackageError::Manifest(format!("missing in {shown} (not a transfer package)"))
    })?;
    if manifest.len > MAX_MANIFEST_BYTES {
        return Err(PackageError::Manifest(format!(
            "more than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let sig = find(SIGNATURE).ok_or_else(|| PackageError::Signature("missing".to_owned()))?;
    if sig.len > MAX_SIGNATURE_BYTES {
        return Err(PackageError::Signature(format!(
            "{} bytes, more than {MAX_SIGNATURE_BYTES}: not an Ed25519 signature",
            sig.len
        )));
    }
    let bytes = read_member(&file, manifest.start, manifest.len, MANIFEST)?;
    let signature = read_member(&file, sig.start, sig.len, SIGNATURE)?;
    let signed = check_signed(&bytes, &signature, trust)?;
    let named: BTreeSet<&str> = signed
        .manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    if let Some(m) = members
        .iter()
        .find(|m| m.name != MANIFEST && m.name != SIGNATURE && !named.contains(m.name.as_str()))
    {
        return Err(PackageError::File {
            name: m.name.clone(),
            message: "not named in the manifest (added to the package after signing)".to_owned(),
        });
    }
    let file = Arc::new(file);
    let mut files = Vec::with_capacity(signed.manifest.files.len());
    for f in &signed.manifest.files {
        let Some(m) = find(&f.name) else {
            return Err(PackageError::File {
                name: f.name.clone(),
                message: "named in the manifest but missing from the package".to_owned(),
            });
        };
        files.push(check_member(file.clone(), m.start, m.len, f)?);
    }
    Ok((signed, files))
}

/// Checks that `package` may be imported on this node after the packages of its chain
/// (producer, partner) imported so far: it was not imported before (by digest, nor another
/// package under its sequence number: the producer's chain forked), and the package it
/// names as its previous (sequence and digest) was imported, so none before it is missing.
///
/// Sequence numbers are handed out before a package is written ([`write_package`]), so a
/// producer whose write failed or crashed before recording skips that number: the next
/// package names the same previous package. The receiver takes it whether or not it
/// imported the skipped package (its objects are covered again), and the chain stays whole.
///
/// Errors: [`PackageError::Chain`], naming the repeated package, the missing one, or the
/// fork.
pub fn check_chain(store: &dyn Store, package: &Verified) -> Result<(), PackageError> {
    let m = &package.manifest;
    let producer = hex(&package.producer);
    let who = format!(
        "from producer {} (fingerprint {}) for partner {:?}",
        m.producer.name, m.producer.fingerprint, m.partner
    );
    let this = store.package_imports(&producer, &m.partner, m.sequence, &package.digest)?;
    if let Some(l) = this.iter().find(|l| l.digest == package.digest) {
        return Err(PackageError::Chain(format!(
            "package {} {who} is a repeated package: it was already imported{}; nothing stored",
            m.sequence,
            if l.sequence == m.sequence {
                String::new()
            } else {
                format!(" (as package {})", l.sequence)
            }
        )));
    }
    if let Some(l) = this.first() {
        return Err(PackageError::Chain(format!(
            "package {} {who} has digest {}, but package {} imported here has digest {}: two \
             packages of one number, so the producer's chain forked (was its store restored \
             from an older copy?); nothing stored",
            m.sequence, package.digest, l.sequence, l.digest
        )));
    }
    let Some(previous) = m.previous.as_deref() else {
        return Ok(());
    };
    let p = m.previous_sequence;
    let found = store.package_imports(&producer, &m.partner, p, previous)?;
    if found
        .iter()
        .any(|l| l.sequence == p && l.digest == previous)
    {
        return Ok(());
    }
    if let Some(l) = found.iter().find(|l| l.sequence == p) {
        return Err(PackageError::Chain(format!(
            "package {} {who} names package {p} with digest {previous} as its previous, but \
             package {p} imported here has digest {}: the producer's chain forked; nothing \
             stored",
            m.sequence, l.digest
        )));
    }
    let last = store.package_chain(PackageDirection::In, &producer, &m.partner)?;
    Err(PackageError::Chain(format!(
        "package {} {who} follows package {p}, which was not imported here (the last one \
         imported is {}): package {p} is missing (import the packages in order); nothing \
         stored",
        m.sequence,
        last.map_or("none".to_owned(), |l| format!("package {}", l.sequence))
    )))
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
#[derive(Clone, Debug)]
pub struct ImportLimits {
    /// Largest object, in bytes as written (`max_object_size`).
    pub max_object_size: u64,
    /// Largest object file once decompressed, in bytes (`max_unpacked`): a file whose
    /// manifest says more is refused before it is read, and no file is read past what its
    /// manifest says.
    pub max_unpacked: u64,
    /// Who imports (issue 20), as the audit entries name it (`user:NAME`, `operator`).
    pub person: Option<String>,
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
    check_chain(store, package)?;
    let source = package.source();
    let who = format!("peer:{source}");
    let collection_id = match destination {
        Destination::Existing(id) => id.to_owned(),
        Destination::Create(c) => c.id.clone(),
    };
    let door = Door {
        door: DOOR_IMPORT,
        partner: &who,
        person: limits.person.as_deref(),
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
    for (f, member) in m.files.iter().zip(&package.files) {
        let path = Path::new(&f.name);
        let rehashed = Rehash {
            inner: member.reader(),
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
                package.path.display(),
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
        if batch.advance_package_in(&producer, &m.partner, &link)? {
            Ok(())
        } else {
            Err(StoreError::Superseded(format!(
                "package {} from producer {} (or another of that number) was imported by \
                 another process meanwhile; nothing stored by this import",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that appears under the package's name while the package is being written is
    /// kept, and the written package stays under its partial name (to be removed by the
    /// caller), never replacing it.
    #[test]
    fn the_finished_package_never_replaces_a_file_created_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("p.tar");
        let partial = partial_path(&output);
        std::fs::write(&partial, b"package").unwrap();
        std::fs::write(&output, b"someone else's").unwrap();
        let err = rename_no_replace(&partial, &output).unwrap_err();
        assert!(
            matches!(err, PackageError::Exists(ref p) if p.ends_with("p.tar")),
            "{err}"
        );
        assert_eq!(std::fs::read(&output).unwrap(), b"someone else's");
        assert_eq!(std::fs::read(&partial).unwrap(), b"package");

        std::fs::remove_file(&output).unwrap();
        rename_no_replace(&partial, &output).unwrap();
        assert_eq!(std::fs::read(&output).unwrap(), b"package");
        assert!(!partial.exists());
    }
}
