//! `concord import` and `concord export`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use concord_ingest::IngestReport;
use concord_store::{Collection, NewCollection, ObjectFilter, Store, VersionSelector};

/// The ingress limits of this process's node (`max_object_size` of its `concord.toml`), set
/// once by the command that imports. A process-wide value because one CLI process runs one
/// command for one node, and every path into [`import_one`] (STIX, MISP, IOC lists, the
/// quickstart bundle) must apply the same limit without each caller threading it through.
static LIMITS: std::sync::OnceLock<concord_ingest::Limits> = std::sync::OnceLock::new();

/// Sets the ingress limits of this process (first call wins).
pub fn set_limits(limits: concord_ingest::Limits) {
    let _ = LIMITS.set(limits);
}

fn limits() -> concord_ingest::Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// The collection an import writes into. One that does not exist yet is created by the first
/// file that imports, in that file's own transaction
/// ([`concord_store::Store::begin_write_creating`]): a file that cannot be read or is not a
/// bundle leaves nothing behind, not even an empty collection (issue 16, item 7c).
pub(crate) struct Target {
    /// The collection, once it exists.
    existing: Option<Collection>,
    /// What is created by the first file that imports (same id for every attempt: a failed
    /// attempt rolled back).
    planned: Collection,
}

impl Target {
    /// The collection with this alias or id, or a new one with this alias.
    ///
    /// Errors: an alias that breaks [`concord_store::check_alias`] (naming the alias and the
    /// rule), a store error.
    pub(crate) fn resolve(store: &dyn Store, name: &str) -> Result<Target> {
        let new = NewCollection {
            alias: name.to_owned(),
            ..Default::default()
        };
        let existing = store.collection(name)?;
        if existing.is_none() {
            concord_store::check_alias(name)?;
        }
        Ok(Target {
            existing,
            planned: new.with_new_id(),
        })
    }

    /// The collection's id, once it exists (`None` while no file has imported into a new one).
    pub(crate) fn id(&self) -> Option<&str> {
        self.existing.as_ref().map(|c| c.id.as_str())
    }
}

/// Opens a file, `-` for stdin; `.gz` files are decompressed. Their size once decompressed is
/// not capped (`max_unpacked` is for uploads): the operator's own file is streamed one
/// object at a time, and each object is capped by `max_object_size`.
pub fn open_input(path: &Path) -> Result<Box<dyn Read>> {
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?)
    };
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        reader
    })
}

/// `concord import`: every file into one collection, each file one transaction. Returns
/// `false` (exit 1) when any file failed or any object was rejected.
pub fn import(store: &dyn Store, collection: &str, files: &[PathBuf], json: bool) -> Result<bool> {
    let mut target = Target::resolve(store, collection)?;
    let mut all_ok = true;
    let mut reports = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let outcome =
            open_input(path).and_then(|input| import_one(store, &mut target, &name, input));
        let (ok, doc) = report(&name, outcome, json);
        all_ok &= ok;
        reports.push(doc);
    }
    if json {
        out!(
            "{}",
            serde_json::json!({ "collection": target.id(), "files": reports })
        );
    }
    Ok(all_ok)
}

/// Imports one already-open stream; used by `quickstart` for the shipped bundle.
pub fn import_reader(
    store: &dyn Store,
    collection: &str,
    name: &str,
    input: Box<dyn Read>,
    json: bool,
) -> Result<bool> {
    let mut target = Target::resolve(store, collection)?;
    let (ok, _) = report(name, import_one(store, &mut target, name, input), json);
    Ok(ok)
}

/// Imports one stream of a STIX bundle into `target` (one transaction, audited; a new
/// collection is created in it); also the way in for converted MISP events (`misp.rs`),
/// IOC lists and sightings (`matching.rs`).
pub(crate) fn import_one(
    store: &dyn Store,
    target: &mut Target,
    name: &str,
    input: Box<dyn Read>,
) -> Result<IngestReport> {
    import_at(store, target, name, "import", input)
}

/// [`import_one`] audited as door `door` (by `operator`): the CLI's writes that are not an
/// import of the operator's file, such as `concord indicator revoke`.
pub(crate) fn import_as(
    store: &dyn Store,
    target: &mut Target,
    door: &str,
    input: Box<dyn Read>,
) -> Result<IngestReport> {
    import_at(store, target, door, door, input)
}

fn import_at(
    store: &dyn Store,
    target: &mut Target,
    name: &str,
    door: &str,
    input: Box<dyn Read>,
) -> Result<IngestReport> {
    let bar = if crate::interactive() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg}: {pos} objects ({rate}, {elapsed})",
            )
            .map(|s| {
                s.with_key(
                    "rate",
                    |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&crate::rate(st.per_sec()));
                    },
                )
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(name.to_owned());
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress = |n: usize| bar.set_position(n as u64);
    let person = crate::users::actor().audit_name();
    let result = match &target.existing {
        Some(c) => concord_server::audit::import_bundle(
            store,
            &c.id,
            door,
            "operator",
            Some(&person),
            input,
            limits().max_object_size,
            progress,
        ),
        None => {
            let c = &target.planned;
            let r = concord_server::audit::import_bundle_creating(
                store,
                c,
                door,
                "operator",
                Some(&person),
                input,
                limits().max_object_size,
                progress,
            );
            if r.is_ok() {
                eprintln!("created collection {} ({})", name_of(c), c.id);
                target.existing = Some(c.clone());
            }
            r
        }
    };
    bar.finish_and_clear();
    Ok(result?)
}

fn name_of(c: &Collection) -> &str {
    c.alias.as_deref().unwrap_or(&c.id)
}

/// Prints one file's report (human form on stderr unless `json`) and returns it as JSON.
pub(crate) fn report(
    name: &str,
    outcome: Result<IngestReport>,
    json: bool,
) -> (bool, serde_json::Value) {
    match outcome {
        Ok(r) => {
            if !json {
                eprintln!(
                    "{name}: {} read, {} added, {} already present, {} rejected",
                    crate::count(r.total as u64, "object"),
                    r.added,
                    r.already_present,
                    r.rejected.len()
                );
                for rej in &r.rejected {
                    let who = rej.id.clone().unwrap_or_else(|| "(no id)".to_owned());
                    for reason in &rej.reasons {
                        eprintln!("  rejected objects[{}] {who}: {reason}", rej.index);
                    }
                }
            }
            let ok = r.rejected.is_empty();
            (
                ok,
                serde_json::json!({
                    "file": name, "total": r.total, "added": r.added,
                    "already_present": r.already_present, "rejected": r.rejected,
                }),
            )
        }
        Err(e) => {
            let mut message = format!("{e:#}");
            // A plain text file given as a bundle (issue 24, item 13): say what it may be.
            if message.contains("malformed JSON at line 1,") {
                message.push_str(
                    " (not a STIX bundle or MISP event; for a list of indicators, one per \
                     line, use --format ioc-list)",
                );
            }
            if !json {
                eprintln!("{name}: {message}; nothing imported from this file");
            }
            (false, serde_json::json!({ "file": name, "error": message }))
        }
    }
}

/// `concord export`: every object version of a collection as one bundle, streamed page by
/// page through the egress door (`concord_egress`): as stored for the operator, as the
/// partner receives them with `--partner` (the same decisions, rewrites, keyed ids and
/// references as its TAXII reads), audited page by page before each page is written.
pub fn export(
    store: Arc<dyn Store>,
    collection: &str,
    output: Option<&Path>,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
) -> Result<bool> {
    let door = export_door(&store, collection, partner)?;
    let sink: Box<dyn Write> = match output {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let bundle_id = format!("bundle--{}", uuid_v4());
    write!(
        out,
        "{{\"type\":\"bundle\",\"id\":\"{bundle_id}\",\"objects\":["
    )?;
    let mut n = 0usize;
    export_pages(&door, collection, partner, &mut |body| {
        if n > 0 {
            out.write_all(b",\n")?;
        } else {
            out.write_all(b"\n")?;
        }
        out.write_all(body.as_bytes())?;
        n += 1;
        Ok(())
    })?;
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(true)
}

/// Every object version of the collection of `door` ([`export_door`]) as its audience
/// receives it: read page by page (1,000 entries) through the egress door (door `export`,
/// one audit entry per page), each body (STIX JSON; `null` for an entry without one) handed
/// to `each` in `(date_added, id, modified)` order, one page held at a time; then the count
/// (and what the egress policy withheld for `partner`) on stderr, `collection` as named on
/// the command line. Returns the count. Errors: the store, the first error of `each`.
pub fn export_pages(
    door: &(Collection, concord_egress::Audience, concord_egress::Egress),
    collection: &str,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
    each: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<usize> {
    let (c, audience, egress) = door;
    let filter = ObjectFilter {
        versions: vec![VersionSelector::All],
        spec_versions: vec!["2.0".into(), "2.1".into()],
        ..Default::default()
    };
    let mut after = None;
    let mut n = 0usize;
    let mut withheld = 0usize;
    loop {
        let (page, resume) = egress.scan(audience, "export", &c.id, &filter, after, 1000, true)?;
        withheld += page.withheld;
        for e in &page.entries {
            each(e.body.as_deref().unwrap_or("null"))?;
            n += 1;
        }
        match resume {
            Some(r) if page.more => after = Some(r),
            _ => break,
        }
    }
    match partner {
        Some((name, _)) => eprintln!(
            "exported {n} object versions from {collection} as {name} receives them ({withheld} withheld by the egress policy)"
        ),
        None => eprintln!("exported {n} object versions from {collection}"),
    }
    Ok(n)
}

/// The profile of partner `name`, which must be allowed to read collection `c` (named `collection` on
/// the command line): the same permission as the TAXII door; no read, nothing leaves.
fn reader(
    store: &dyn Store,
    name: &str,
    c: &Collection,
    collection: &str,
) -> Result<concord_policy::egress::PartnerProfile> {
    let p = store
        .partners()?
        .into_iter()
        .find(|p| p.name == name)
        .with_context(|| format!("no partner named {name:?}"))?;
    if !p.read.contains(&c.id) {
        bail!("partner {name:?} may not read collection {collection:?} (partner add --read)");
    }
    Ok(concord_policy::egress::PartnerProfile {
        name: p.name,
        jurisdiction: p.jurisdiction,
        groups: p.groups,
    })
}

/// `export --package --compression`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PackageCompression {
    /// Zstandard: smaller and faster (`zstd -d` reads the files).
    #[default]
    Zstd,
    /// gzip: readable by every tool.
    Gzip,
}

/// What `concord export --package` writes.
pub struct PackageRequest<'a> {
    /// Collection (alias or id).
    pub collection: &'a str,
    /// The partner the package is for.
    pub partner: &'a str,
    /// The new package: a directory, or one tar file when the name ends in `.tar`
    /// ([`concord_sync::package::Form::of`]).
    pub output: &'a Path,
    /// The public node key of the partner's node, from a key file (`--recipient-key`),
    /// instead of the key of the peer linked to the partner.
    pub recipient_key: Option<&'a Path>,
    /// Only what was added since the last package for the partner.
    pub since_last: bool,
    /// How the object files are compressed.
    pub compression: PackageCompression,
    /// This node's name (its `title`), written in the manifest.
    pub producer: &'a str,
}

/// `concord export --package`: the partner's copies of a collection as a signed transfer
/// package ([`concord_sync::package`]; a directory, or one tar file for a `.tar` name),
/// through the egress door (door `package`, audited page by page), chained after the last
/// package for the partner, addressed to the node key of the partner's node: the key file
/// given (`--recipient-key`), else the key of the peer linked to it (`peer add --node-key F
/// --partner P`; none known: refused). Both given and different: refused. A peer linked
/// to the partner is the origin: what came from it is not sent back.
pub fn export_package(
    store: Arc<dyn Store>,
    request: &PackageRequest<'_>,
    policy: concord_policy::actions::Policy,
    key: &concord_store::node_key::NodeKey,
) -> Result<bool> {
    use concord_sync::package::{
        Compression, WriteOptions, fingerprint, read_key_file, recipient_key, write_package,
    };
    let c = store
        .collection(request.collection)?
        .with_context(|| format!("no collection {:?}", request.collection))?;
    let profile = reader(store.as_ref(), request.partner, &c, request.collection)?;
    let peers = concord_sync::peers(store.as_ref())?;
    let recipient = match request.recipient_key {
        None => recipient_key(&peers, request.partner)?,
        Some(file) => {
            let given = read_key_file(file)?;
            // A node key already known for the partner's node must be the same one: a
            // package addressed elsewhere than the linked peer is a mistake to name.
            match recipient_key(&peers, request.partner) {
                Ok(known) if known != given => bail!(
                    "--recipient-key {}: key fingerprint {}, but the peer linked to partner \
                     {:?} has node key fingerprint {}: a package is addressed to one node; \
                     give that node's key, or change the peer (`peer add --node-key`); \
                     nothing written",
                    file.display(),
                    fingerprint(&given),
                    request.partner,
                    fingerprint(&known)
                ),
                _ => given,
            }
        }
    };
    let origin = peers
        .into_iter()
        .find(|p| p.partner.as_deref() == Some(request.partner))
        .map(|p| p.name);
    let egress = concord_egress::Egress::new(store.clone(), Arc::new(policy))
        .acting_as(crate::users::actor().audit_name());
    let options = WriteOptions {
        since_last: request.since_last,
        compression: match request.compression {
            PackageCompression::Zstd => Compression::Zstd,
            PackageCompression::Gzip => Compression::Gzip,
        },
        producer_name: request.producer.to_owned(),
        origin,
        ..WriteOptions::default()
    };
    let written = write_package(
        &egress,
        key,
        &profile,
        &recipient,
        &c,
        &options,
        request.output,
    )?;
    let m = &written.manifest;
    eprintln!(
        "package {} for partner {} (node key fingerprint {}): {} in {} ({} withheld by the \
         egress policy, {} received from the partner not sent back), written to {}; digest {}",
        m.sequence,
        m.partner,
        m.recipient.fingerprint,
        crate::count(m.counts.objects, "object version"),
        match concord_sync::package::Form::of(request.output) {
            concord_sync::package::Form::Tar => format!(
                "{} in one tar",
                crate::count(m.files.len() as u64, "object file")
            ),
            concord_sync::package::Form::Directory => crate::count(m.files.len() as u64, "file"),
        },
        m.counts.withheld,
        m.counts.echoes,
        request.output.display(),
        written.digest
    );
    Ok(true)
}

/// The collection, the audience and the egress door of an export: the operator, or with
/// `--partner` that partner under `policy`, which must be allowed to read the collection (the
/// same permission as its TAXII reads). Errors: no such collection or partner, no read.
pub(crate) fn export_door(
    store: &Arc<dyn Store>,
    collection: &str,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
) -> Result<(Collection, concord_egress::Audience, concord_egress::Egress)> {
    let c = store
        .collection(collection)?
        .with_context(|| format!("no collection {collection:?}"))?;
    let (audience, policy) = match partner {
        None => (
            concord_egress::Audience::Operator("operator".to_owned()),
            None,
        ),
        Some((name, policy)) => (
            concord_egress::Audience::Partner(reader(store.as_ref(), name, &c, collection)?),
            Some(policy.clone()),
        ),
    };
    let policy = Arc::new(match policy {
        Some(p) => p,
        // The operator receives objects as stored: no policy applies.
        None => concord_policy::actions::Policy::node_default(None, Default::default()),
    });
    let egress = concord_egress::Egress::new(store.clone(), policy)
        .acting_as(crate::users::actor().audit_name());
    Ok((c, audience, egress))
}

/// `concord export --format suricata|zeek-intel|rpz|csv|plain`: the indicators of a
/// collection as a sensor loads them ([`concord_feeds`]), read page by page through the
/// egress door (door `feed-{format}`, each page audited) as the operator or, with
/// `--partner`, as that partner receives them; values on `warninglists` left out. What was
/// left out is counted, by reason, on stderr. The RPZ SOA serial is the audience's
/// feed edition ([`concord_server::feeds::finish_edition`]), shared with its HTTP feed.
pub fn export_feed(
    store: Arc<dyn Store>,
    collection: &str,
    format: concord_feeds::Format,
    output: Option<&Path>,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
    warninglists: Option<&concord_misp::Warninglists>,
) -> Result<bool> {
    let (c, audience, egress) = export_door(&store, collection, partner)?;
    let now_ns = concord_stix::Timestamp::now_micros().unix_nanos();
    let mut builder = concord_feeds::FeedBuilder::new(format, warninglists, now_ns);
    let door = format!("feed-{}", format.name());
    let mut after = None;
    loop {
        let (page, resume) = egress.scan(
            &audience,
            &door,
            &c.id,
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
    // Numbered as the HTTP feed of the same audience: the RPZ serial follows the bytes it
    // receives, not the collection's version (which withheld writes move too).
    let (text, report, _) = concord_server::feeds::finish_edition(
        store.as_ref(),
        &audience,
        &c.id,
        builder,
        &concord_feeds::Header {
            title: c.alias.clone().unwrap_or_else(|| c.id.clone()),
            ..Default::default()
        },
    )?;
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    eprintln!(
        "{} {} values from {collection}; left out: {} not indicators, {} other pattern types, \
         {} unparsable, {} not simple comparisons, {} revoked, {} expired, {} not yet valid, \
         {} on warninglists, {} not carried by {}, {} duplicates",
        format.name(),
        report.written,
        report.not_indicator,
        report.other_pattern_type,
        report.unparsable,
        report.not_representable,
        report.revoked,
        report.expired,
        report.not_yet_valid,
        report.warninglisted,
        report.not_in_format,
        format.name(),
        report.duplicate
    );
    Ok(true)
}

/// `concord import DIR…|FILE.tar…` of transfer packages: each verified (signature against
/// `signed_by`, or a known peer's node key; addressed to `this_node`, this node's public
/// node key; every file a regular file (in a tar, a regular-file member by its bare name,
/// once), opened without following links, of the size and SHA-256 the manifest says; the
/// chain of packages from its producer) before anything is decompressed, then ingested
/// with the
/// producer as provenance, audited (door `package-import`), in one transaction with the
/// chain. Returns `false` (exit 1) when any package was refused or any object rejected.
/// With `verify_only`, each package is checked (signature, digests, chain) and nothing is
/// stored.
pub fn import_packages(
    store: &dyn Store,
    collection: &str,
    dirs: &[PathBuf],
    this_node: &[u8; 32],
    signed_by: Option<&Path>,
    verify_only: bool,
    json: bool,
) -> Result<bool> {
    use concord_sync::package::{
        Destination, ImportLimits, check_chain, import_package, read_key_file, verify_package,
    };
    let signed_by = signed_by.map(read_key_file).transpose()?;
    let peers = concord_sync::peers(store)?;
    let mut target = Target::resolve(store, collection)?;
    let mut all_ok = true;
    let mut reports = Vec::new();
    for dir in dirs {
        let name = dir.display().to_string();
        let outcome = (|| -> Result<IngestReport> {
            let package = verify_package(dir, this_node, signed_by, &peers)?;
            if verify_only {
                check_chain(store, &package)?;
                let m = &package.manifest;
                eprintln!(
                    "{name}: package {} from {} (fingerprint {}) for partner {}: signature, \
                     recipient (this node), {} and the chain verified{}; nothing stored \
                     (--verify-only)",
                    m.sequence,
                    package.source(),
                    m.producer.fingerprint,
                    m.partner,
                    crate::count(m.files.len() as u64, "file digest"),
                    skipped(m),
                );
                return Ok(IngestReport {
                    total: m.counts.objects as usize,
                    ..IngestReport::default()
                });
            }
            let destination = match &target.existing {
                Some(c) => Destination::Existing(&c.id),
                None => Destination::Create(&target.planned),
            };
            let l = limits();
            let report = import_package(
                store,
                &package,
                destination,
                ImportLimits {
                    max_object_size: l.max_object_size,
                    max_unpacked: l.max_unpacked,
                    person: Some(crate::users::actor().audit_name()),
                },
                |_| {},
            )?;
            if target.existing.is_none() {
                eprintln!(
                    "created collection {} ({})",
                    name_of(&target.planned),
                    target.planned.id
                );
                target.existing = Some(target.planned.clone());
            }
            let m = &package.manifest;
            eprintln!(
                "{name}: package {} from {} (fingerprint {}) for partner {}, verified: \
                 signature, recipient (this node), {} and the chain{}",
                m.sequence,
                package.source(),
                m.producer.fingerprint,
                m.partner,
                crate::count(m.files.len() as u64, "file digest"),
                skipped(m),
            );
            Ok(report)
        })();
        let (ok, doc) = report(&name, outcome, json);
        all_ok &= ok;
        reports.push(doc);
    }
    if json {
        out!(
            "{}",
            serde_json::json!({ "collection": target.id(), "files": reports })
        );
    }
    Ok(all_ok)
}

/// The numbers a package's chain skips (a write the producer never completed: failed or
/// cut short by a crash), for the import's report: empty when it follows the one before.
fn skipped(m: &concord_sync::package::Manifest) -> String {
    let (from, to) = (m.previous_sequence + 1, m.sequence - 1);
    match to - from {
        ..0 => String::new(),
        0 => format!(
            " (it follows package {}: package {from} was never completed by the producer)",
            m.previous_sequence
        ),
        _ => format!(
            " (it follows package {}: packages {from} to {to} were never completed by the \
             producer)",
            m.previous_sequence
        ),
    }
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    // A failure of the OS random source leaves zeros; the bundle id is informative only.
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
