//! MISP at the command line: `concord import` of MISP event JSON and MISP feeds, and
//! `concord export --format misp|misp-feed`. The conversions are concord-misp's; this module
//! wires them to the one ingest path (validation, store, audit) and the one export path
//! (egress policy, audit).

use std::io::{BufWriter, Read};
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
/// (egress policy for a partner, audit) as a STIX bundle, which is then converted: each
/// report or grouping becomes an event, objects outside any become one more event named
/// after the collection.
pub fn export(
    store: std::sync::Arc<dyn Store>,
    collection: &str,
    format: Format,
    output: Option<&Path>,
    partner: Option<(&str, &concord_policy::actions::Policy)>,
) -> Result<bool> {
    let tmp = std::env::temp_dir().join(format!(
        "concord-misp-export-{}-{}.json",
        std::process::id(),
        collection.replace(['/', '\\'], "_")
    ));
    let result = (|| -> Result<bool> {
        crate::transfer::export(store, collection, Some(&tmp), partner)?;
        let text = std::fs::read_to_string(&tmp)?;
        let bundle: serde_json::Value = serde_json::from_str(&text)?;
        let objects = bundle["objects"].as_array().cloned().unwrap_or_default();
        let index = concord_misp::from_stix::index(objects);
        let mut containers: Vec<&String> = index
            .iter()
            .filter(|(_, o)| matches!(o["type"].as_str(), Some("report" | "grouping")))
            .map(|(id, _)| id)
            .collect();
        containers.sort();
        let get = |id: &str| index.get(id).cloned();
        let mut held = std::collections::HashSet::new();
        let mut events = Vec::new();
        // What is not carried, one line each (issue 24, item 2: nothing dropped silently).
        let mut notes = Vec::new();
        for id in &containers {
            for r in index[*id]["object_refs"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    held.insert(r.to_owned());
                }
            }
            events.push(concord_misp::from_stix::to_misp_event_noting(
                id, &get, &mut notes,
            )?);
        }
        // Objects outside every report and grouping: what an event can carry goes into one
        // more event (galaxy SDOs as clusters too); the rest is named in the report.
        let mut loose: Vec<String> = Vec::new();
        for (id, o) in &index {
            if held.contains(id) {
                continue;
            }
            let t = o["type"].as_str().unwrap_or("");
            match t {
                "indicator" | "observed-data" | "x-misp-attribute" | "x-misp-object"
                | "vulnerability" | "campaign" | "attack-pattern" | "malware" | "threat-actor"
                | "intrusion-set" | "tool" | "course-of-action" => loose.push(id.clone()),
                "report"
                | "grouping"
                | "identity"
                | "marking-definition"
                | "extension-definition" => {}
                _ if concord_stix::validate::kind_of(t) == concord_stix::ObjectKind::Sco => {}
                _ => notes.push(concord_misp::from_stix::NotCarried {
                    id: id.clone(),
                    reason: format!("{t}: MISP events have no place for it"),
                }),
            }
        }
        loose.sort();
        if !loose.is_empty() {
            events.push(concord_misp::from_stix::loose_event_noting(
                &format!("Concord collection {collection}"),
                collection,
                &loose,
                &get,
                &mut notes,
            ));
        }
        notes.sort_by(|a, b| a.id.cmp(&b.id));
        notes.dedup();
        if !notes.is_empty() {
            eprintln!(
                "{} not carried into MISP:",
                crate::count(notes.len() as u64, "object")
            );
            for n in &notes {
                eprintln!("  {}: {}", n.id, n.reason);
            }
        }
        match format {
            Format::MispFeed => {
                let dir = output.context("--format misp-feed needs -o DIR")?;
                feed::write_feed(dir, &events)?;
                eprintln!(
                    "wrote a MISP feed of {} to {}",
                    crate::count(events.len() as u64, "event"),
                    dir.display()
                );
            }
            _ => {
                let doc = if events.len() == 1 {
                    events.pop().unwrap_or_default()
                } else {
                    serde_json::json!({ "response": events })
                };
                let text = serde_json::to_string_pretty(&doc)?;
                match output {
                    Some(p) => std::fs::write(p, text)
                        .with_context(|| format!("cannot write {}", p.display()))?,
                    None => out!("{text}"),
                }
            }
        }
        Ok(true)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}
