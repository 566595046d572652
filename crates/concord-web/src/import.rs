//! Import of an uploaded file through the UI: a STIX bundle, MISP event JSON, or an IOC list
//! (one observable per line), converted as `concord import` converts it and stored by the
//! one ingest ([`concord_ingest::ingest`]): validated object by object, one transaction,
//! audited as door `web-import` with the logged-in user. A file that cannot be read stores
//! nothing.

use std::io::Read;

use concord_store::{NewCollection, Store};
use serde::Serialize;

/// What the uploaded file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// MISP when the start of the file looks like MISP event JSON
    /// ([`concord_misp::looks_like_misp`]), else a STIX bundle.
    Auto,
    /// A STIX 2.1 bundle.
    Stix,
    /// MISP event JSON.
    Misp,
    /// One IP, CIDR, domain, URL, hash or e-mail address per line
    /// ([`concord_match::ioc_list`]).
    IocList,
}

impl Kind {
    /// `auto`, `stix`, `misp`, `ioc-list`.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.trim() {
            "" | "auto" => Kind::Auto,
            "stix" => Kind::Stix,
            "misp" => Kind::Misp,
            "ioc-list" => Kind::IocList,
            _ => return None,
        })
    }
}

/// Whether `alias` may name a new collection: the rule of [`concord_store::check_alias`],
/// the one the command line and the store apply too.
pub fn valid_alias(alias: &str) -> bool {
    concord_store::check_alias(alias).is_ok()
}

/// One rejected object or line, for the report table.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `objects[3]`, `line 12`, or a MISP event/attribute uuid.
    pub place: String,
    /// The object id or the line's text.
    pub what: String,
    /// The rule broken.
    pub reason: String,
}

/// The import report shown on the page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The collection's id.
    pub collection_id: String,
    /// The file's name as uploaded.
    pub file: String,
    /// What it was read as: `stix`, `misp`, `ioc-list`.
    pub kind: String,
    /// Objects read (after conversion).
    pub total: usize,
    /// New object versions stored.
    pub added: usize,
    /// Versions already held.
    pub already_present: usize,
    /// Objects refused by validation, and lines or attributes that could not be converted.
    pub problems: Vec<Problem>,
    /// For MISP: events, attributes and STIX objects of the conversion.
    pub misp: Option<(usize, usize, usize)>,
    /// For IOC lists: lines read, and duplicates.
    pub lines: Option<(u64, u64)>,
}

/// Imports `bytes` (named `file`) into the collection `collection` (id or alias; created with
/// that alias when missing), within `limits`: a gzip upload is decompressed as it is read
/// (never whole in memory) and fails once it unpacks to more than `max_unpacked` bytes; each
/// object over `max_object_size` fails the file. Errors: the file cannot be read or
/// converted as `kind`, or crosses a limit (nothing stored), or the store.
#[allow(clippy::too_many_arguments)]
pub fn import(
    store: &dyn Store,
    collection: &str,
    file: &str,
    bytes: &[u8],
    kind: Kind,
    who: &str,
    person: Option<&str>,
    limits: concord_ingest::Limits,
) -> Result<Report, String> {
    // A gzip upload is read decompressed, as `concord import` reads `.gz` files; each reader
    // opened here starts from the beginning of the upload.
    let gzip = bytes.starts_with(&[0x1f, 0x8b]);
    let open = || -> Box<dyn Read + '_> {
        if gzip {
            Box::new(concord_stix::CappedReader::new(
                flate2::read::MultiGzDecoder::new(bytes),
                limits.max_unpacked,
            ))
        } else {
            Box::new(bytes)
        }
    };
    let unreadable = |e: std::io::Error| match concord_stix::TooLarge::find(&e) {
        Some(t) => format!("{file}: {t} (max_unpacked); nothing imported from this file"),
        None => format!("{file}: {e}; nothing imported from this file"),
    };
    let mut head = Vec::with_capacity(8192);
    open()
        .take(8192)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    let existing = store.collection(collection).map_err(|e| e.to_string())?;
    if existing.is_none() {
        concord_store::check_alias(collection).map_err(|e| e.to_string())?;
    }
    let kind = match kind {
        Kind::Auto if concord_misp::looks_like_misp(&head) => Kind::Misp,
        Kind::Auto => Kind::Stix,
        k => k,
    };
    let mut report = Report {
        file: file.to_owned(),
        ..Report::default()
    };
    // A STIX upload streams from the upload itself; converted ones are the conversion's output.
    let converted: Option<Vec<u8>> = match kind {
        Kind::Stix | Kind::Auto => {
            report.kind = "stix".into();
            None
        }
        Kind::Misp => {
            report.kind = "misp".into();
            let mut out = Vec::new();
            let options = concord_misp::ToStixOptions {
                container: concord_misp::Container::Report,
                warninglists: None,
                drop_warninglisted: false,
                // The web UI's import writes TLP 2.0, the default of `tlp_version`.
                tlp_version: concord_misp::tlp::TlpVersion::default(),
            };
            let conv = concord_misp::to_stix_bundle(&mut || Ok(open()), options, &mut out)
                .map_err(|e| format!("{file}: MISP conversion failed: {e}"))?;
            report.misp = Some((conv.events, conv.attributes, conv.stix_objects));
            for (what, list) in [
                ("unknown type", &conv.unknown_types),
                ("malformed", &conv.malformed),
                ("not carried", &conv.not_carried),
            ] {
                for i in list {
                    report.problems.push(Problem {
                        place: format!("event {}", i.event),
                        what: i.attribute.clone().unwrap_or_default(),
                        reason: format!("{what}: {}", i.rule),
                    });
                }
            }
            Some(out)
        }
        Kind::IocList => {
            report.kind = "ioc-list".into();
            let options = concord_match::ioc_list::IocOptions::new(
                concord_stix::Timestamp::now_micros().to_string(),
            );
            let mut list = concord_match::ioc_list::read_ioc_list(
                std::io::BufReader::new(open()),
                file,
                &options,
            )
            .map_err(|e| format!("{file}: {e}"))?;
            // Re-importing a list adds nothing; changed values keep `created` (STIX 2.1 §3.6).
            let held = existing.as_ref().map(|c| c.id.as_str());
            concord_ingest::reconcile_generated(store, held, &mut list.indicators)
                .map_err(|e| format!("{file}: {e}"))?;
            report.lines = Some((list.lines, list.duplicates));
            for r in &list.rejected {
                report.problems.push(Problem {
                    place: format!("line {}", r.line),
                    what: r.text.clone(),
                    reason: r.reason.clone(),
                });
            }
            Some(
                serde_json::json!({
                    "type": "bundle",
                    "id": format!("bundle--{}", uuid::Uuid::new_v4()),
                    "objects": list.indicators,
                })
                .to_string()
                .into_bytes(),
            )
        }
    };
    let input = || -> Box<dyn Read + '_> {
        match &converted {
            Some(b) => Box::new(b.as_slice()),
            None => open(),
        }
    };
    // A new collection is made in the import's own transaction, as `concord import` makes
    // it: a file that does not import (not JSON, not a bundle) leaves nothing behind.
    let failed =
        |e: concord_ingest::IngestError| format!("{file}: {e}; nothing imported from this file");
    let r = match existing {
        Some(c) => {
            report.collection_id = c.id.clone();
            concord_server::audit::import_bundle(
                store,
                &c.id,
                "web-import",
                who,
                person,
                input(),
                limits.max_object_size,
                |_| {},
            )
            .map_err(failed)?
        }
        None => {
            let c = NewCollection {
                alias: collection.to_owned(),
                title: None,
                description: None,
            }
            .with_new_id();
            let r = concord_server::audit::import_bundle_creating(
                store,
                &c,
                "web-import",
                who,
                person,
                input(),
                limits.max_object_size,
                |_| {},
            )
            .map_err(failed)?;
            report.collection_id = c.id;
            r
        }
    };
    report.total = r.total;
    report.added = r.added;
    report.already_present = r.already_present;
    for rej in r.rejected {
        for reason in rej.reasons {
            report.problems.push(Problem {
                place: format!("objects[{}]", rej.index),
                what: rej.id.clone().unwrap_or_default(),
                reason,
            });
        }
    }
    Ok(report)
}
