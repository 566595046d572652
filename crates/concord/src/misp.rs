//! MISP at the command line: `concord import` of MISP event JSON and MISP feeds, and
//! `concord export --format misp|misp-feed`. The conversions are concord-misp's; this module
//! wires them to the one ingest path (validation, store, audit) and the one export path
//! (egress policy, audit).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use concord_misp::feed::{self, FeedState};
use concord_misp::{Container, ConversionReport, ToStixOptions, Warninglists};
use concord_store::Store;

/// MISP options of `concord import`.
#[derive(clap::Args, Debug, Default)]
pub struct ImportArgs {
    /// Import a MISP feed directory (`manifest.json` and `<uuid>.json` events); only events new
    /// or changed since the last run (manifest timestamp) are read.
    #[arg(long, value_name = "DIR")]
    pub misp_feed: Option<PathBuf>,
    /// MISP events become STIX `grouping`s (context suspicious-activity) instead of `report`s.
    #[arg(long)]
    pub misp_grouping: bool,
    /// MISP warninglists directory (`<name>/list.json`): values on a list are flagged in the
    /// report and in the object's `x_concord_warninglists` property.
    #[arg(long, value_name = "DIR")]
    pub warninglists: Option<PathBuf>,
    /// Drop warninglisted values instead of flagging them (needs --warninglists).
    #[arg(long, requires = "warninglists")]
    pub drop_warninglisted: bool,
}

/// Formats of `concord export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One STIX 2.1 bundle.
    #[default]
    Stix,
    /// MISP event JSON: `{"Event": …}` for one event, `{"response": […]}` for several.
    Misp,
    /// A MISP feed directory (`-o DIR`): manifest.json, `<uuid>.json`, hashes.csv.
    MispFeed,
    /// Suricata rules for the indicators' addresses, domains and URLs.
    Suricata,
    /// A Zeek intel file (Intel::ADDR, DOMAIN, URL, FILE_HASH, EMAIL).
    ZeekIntel,
    /// A DNS response-policy zone (domains and addresses).
    Rpz,
    /// CSV: value, type, indicator id, name, valid_until.
    Csv,
    /// One indicator value per line.
    Plain,
}

impl Format {
    /// The sensor format of a feed format (`None` for STIX and MISP).
    pub fn feed(self) -> Option<concord_feeds::Format> {
        match self {
            Format::Stix | Format::Misp | Format::MispFeed => None,
            Format::Suricata => Some(concord_feeds::Format::Suricata),
            Format::ZeekIntel => Some(concord_feeds::Format::ZeekIntel),
            Format::Rpz => Some(concord_feeds::Format::Rpz),
            Format::Csv => Some(concord_feeds::Format::Csv),
            Format::Plain => Some(concord_feeds::Format::Plain),
        }
    }
}

/// `concord import`: STIX bundles go the usual way; MISP event files and feeds are converted
/// and go through the same ingest. Returns `false` (exit 1) when anything was rejected.
pub fn import(
    store: &dyn Store,
    collection: &str,
    files: &[PathBuf],
    args: &ImportArgs,
    json: bool,
    tlp_version: concord_misp::tlp::TlpVersion,
) -> Result<bool> {
    let lists = match &args.warninglists {
        Some(dir) => Some(Warninglists::load_dir(dir)?),
        None => None,
    };
    let options = ToStixOptions {
        container: if args.misp_grouping {
            Container::Grouping
        } else {
            Container::Report
        },
        warninglists: lists.as_ref(),
        drop_warninglisted: args.drop_warninglisted,
        tlp_version,
    };
    let mut stix = Vec::new();
    let mut misp = Vec::new();
    for f in files {
        let mut head = vec![0u8; 8192];
        let n = if f == Path::new("-") {
            0
        } else {
            let mut r = crate::transfer::open_input(f)?;
            read_up_to(&mut r, &mut head)?
        };
        if n > 0 && concord_misp::looks_like_misp(&head[..n]) {
            misp.push(f.clone());
        } else {
            stix.push(f.clone());
        }
    }
    if misp.is_empty() && args.misp_feed.is_none() {
        return crate::transfer::import(store, collection, &stix, json);
    }
    // One report for all: STIX files through the same ingest as `transfer::import`.
    let mut target = crate::transfer::Target::resolve(store, collection)?;
    let mut ok = true;
    let mut docs = Vec::new();
    for f in &stix {
        let name = f.display().to_string();
        let outcome = crate::transfer::open_input(f)
            .and_then(|input| crate::transfer::import_one(store, &mut target, &name, input));
        let (file_ok, doc) = crate::transfer::report(&name, outcome, json);
        ok &= file_ok;
        docs.push(doc);
    }
    for f in &misp {
        let name = f.display().to_string();
        let f = f.clone();
        let (file_ok, doc) = import_misp(store, &mut target, &name, options, json, move || {
            crate::transfer::open_input(&f)
        })?;
        ok &= file_ok;
        docs.push(doc);
    }
    let mut feed_doc = serde_json::Value::Null;
    if let Some(dir) = &args.misp_feed {
        let (feed_ok, doc) = import_feed(store, &mut target, dir, options, json)?;
        ok &= feed_ok;
        feed_doc = doc;
    }
    if json {
        out!(
            "{}",
            serde_json::json!({ "collection": target.id(), "files": docs, "misp_feed": feed_doc })
        );
    }
    Ok(ok)
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Converts one MISP input in a thread that writes a STIX bundle into a pipe, which the one
/// ingest reads (validation, one transaction, audit). A conversion error closes the pipe
/// early, so the ingest fails and rolls back: nothing of the file is stored.
fn import_misp(
    store: &dyn Store,
    target: &mut crate::transfer::Target,
    name: &str,
    options: ToStixOptions<'_>,
    json: bool,
    open: impl Fn() -> Result<Box<dyn Read>> + Send,
) -> Result<(bool, serde_json::Value)> {
    let (reader, writer) = std::io::pipe()?;
    let (conversion, ingest) = std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let mut out = BufWriter::new(writer);
            let mut reopen = || open().map_err(std::io::Error::other);
            concord_misp::to_stix_bundle(&mut reopen, options, &mut out)
        });
        let ingest = crate::transfer::import_one(store, target, name, Box::new(reader));
        let conversion = handle
            .join()
            .unwrap_or_else(|_| panic!("MISP conversion of {name} panicked"));
        (conversion, ingest)
    });
    let (outcome, converted) = match conversion {
        Err(e) => (
            Err(anyhow::Error::new(e).context("MISP conversion failed")),
            None,
        ),
        Ok(r) => (ingest, Some(r)),
    };
    let (ok, mut doc) = crate::transfer::report(name, outcome, json);
    if let Some(r) = converted {
        if !json {
            print_conversion(name, &r);
        }
        doc["misp"] = serde_json::to_value(&r)?;
    }
    Ok((ok, doc))
}

/// The conversion report on stderr: what could not be carried as is, with event and
/// attribute uuids and the rule.
fn print_conversion(name: &str, r: &ConversionReport) {
    eprintln!(
        "{name}: MISP: {}, {}, {} -> {}",
        crate::count(r.events as u64, "event"),
        crate::count(r.attributes as u64, "attribute"),
        crate::count(r.objects as u64, "object"),
        crate::count(r.stix_objects as u64, "STIX object")
    );
    for (what, list) in [
        ("unknown type", &r.unknown_types),
        ("malformed", &r.malformed),
        ("warninglisted", &r.warninglisted),
        ("not carried", &r.not_carried),
    ] {
        for i in list {
            eprintln!(
                "  {what}: event {} attribute {}: {}",
                i.event,
                i.attribute.as_deref().unwrap_or("-"),
                i.rule
            );
        }
    }
    for e in &r.empty_events {
        eprintln!("  empty event {e}: kept as a report with a note (misp-stix convention)");
    }
}

/// `--misp-feed DIR`: the changed events, each one transaction; the state (event uuid →
/// timestamp) is kept in the store's settings under `misp_feed/<canonical dir>` and saved
/// after each event that imported.
fn import_feed(
    store: &dyn Store,
    target: &mut crate::transfer::Target,
    dir: &Path,
    options: ToStixOptions<'_>,
    json: bool,
) -> Result<(bool, serde_json::Value)> {
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("cannot open feed directory {}", dir.display()))?;
    let key = format!("misp_feed/{}", canonical.display());
    let mut state: FeedState = match store.setting(&key)? {
        Some(text) => serde_json::from_str(&text)
            .with_context(|| format!("setting {key} is not a feed state"))?,
        None => FeedState::default(),
    };
    let (changed, total) = feed::changed_events(&canonical, &state)?;
    if !json {
        eprintln!(
            "{}: {} in the manifest, {} new or changed",
            dir.display(),
            crate::count(total as u64, "event"),
            changed.len()
        );
    }
    let mut ok = true;
    let mut files = Vec::new();
    for e in changed {
        let name = e.path.display().to_string();
        let path = e.path.clone();
        let (file_ok, doc) = import_misp(store, target, &name, options, json, move || {
            crate::transfer::open_input(&path)
        })?;
        let failed = doc.get("error").is_some();
        if !failed {
            state.events.insert(e.uuid.clone(), e.timestamp);
            store.set_setting(&key, &serde_json::to_string(&state)?)?;
        }
        ok &= file_ok;
        files.push(doc);
    }
    Ok((
        ok,
        serde_json::json!({"feed": dir.display().to_string(), "events": total, "files": files}),
    ))
}

/// `concord export --format misp|misp-feed`: the collection goes through the one export
/// path (egress door `export` for the operator or a partner, one audit entry per page of
/// 1,000), each object spilled to an unnamed temporary file as its page arrives, only ids
/// kept in memory ([`concord_misp::export::Spill`]); then each report or grouping becomes an
/// event, objects outside any become one more event named after the collection, and each
/// event is written as it is converted, one referenced object held at a time (issue 22: a
/// partner's copy of 1.47M objects took 20 GiB when the bundle was read whole). What is not
/// carried is named on stderr.
pub fn export(
    store: std::sync::Arc<dyn Store>,
    collection: &str,
    format: Format,
    output: Option<&Path>,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
) -> Result<bool> {
    use concord_misp::export::{Scratch, Spill};
    let dir = match format {
        Format::MispFeed => Some(output.context("--format misp-feed needs -o DIR")?),
        _ => None,
    };
    let temp = || tempfile::tempfile().context("cannot make a temporary file for the MISP export");
    let door = crate::transfer::export_door(&store, collection, partner)?;
    let mut spill = Spill::new(temp()?);
    crate::transfer::export_pages(&door, collection, partner, &mut |body| {
        spill.add(body)?;
        Ok(())
    })?;
    spill.finish()?;
    let mut plan = spill.plan(&format!("Concord collection {collection}"), collection);
    let mut scratch = Scratch {
        objects: temp()?,
        galaxies: temp()?,
    };
    let written = match dir {
        Some(dir) => Written::Feed(
            dir,
            concord_misp::export::write_feed(dir, &spill, &mut plan, &mut scratch)?,
        ),
        None => {
            match output {
                Some(p) => {
                    let f = std::fs::File::create(p)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    let mut out = BufWriter::new(f);
                    concord_misp::export::write_events(&mut out, &spill, &mut plan, &mut scratch)
                        .and_then(|_| {
                            out.flush()
                                .map_err(concord_misp::export::ExportError::Output)
                        })
                        .with_context(|| format!("cannot write {}", p.display()))?;
                }
                None => {
                    let mut out = BufWriter::new(std::io::stdout().lock());
                    let r = concord_misp::export::write_events(
                        &mut out,
                        &spill,
                        &mut plan,
                        &mut scratch,
                    )
                    .and_then(|_| {
                        out.write_all(b"\n")
                            .and_then(|()| out.flush())
                            .map_err(concord_misp::export::ExportError::Output)
                    });
                    if let Err(concord_misp::export::ExportError::Output(e)) = r {
                        crate::stdout_failed(e);
                    }
                    r?;
                }
            }
            Written::Events
        }
    };
    let notes = plan.notes();
    if !notes.is_empty() {
        eprintln!(
            "{} not carried into MISP:",
            crate::count(notes.len() as u64, "object")
        );
        for n in notes {
            eprintln!("  {}: {}", n.id, n.reason);
        }
    }
    if let Written::Feed(dir, events) = written {
        eprintln!(
            "wrote a MISP feed of {} to {}",
            crate::count(events as u64, "event"),
            dir.display()
        );
    }
    Ok(true)
}

enum Written<'a> {
    Feed(&'a Path, usize),
    Events,
}
