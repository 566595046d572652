//! `concord match` and `concord import --format ioc-list` (issue 4): shared indicators
//! tested against a partner's own logs, and sightings sent back.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use concord_match::ioc_list::{IocOptions, read_ioc_list};
use concord_match::{FieldMap, Format, Matcher};
use concord_store::Store;
use serde_json::{Value, json};

use crate::DataDirArg;

/// The node setting holding the node's own `identity` (STIX JSON), created on first use:
/// the `where_sighted_refs` and `created_by_ref` of the sightings this node makes.
pub const NODE_IDENTITY_SETTING: &str = "node/identity";

/// `concord match` arguments.
#[derive(clap::Args)]
pub struct MatchArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Collection (alias or id) whose indicators are matched; repeatable.
    #[arg(long = "collection", value_name = "C", required = true)]
    collections: Vec<String>,
    /// Input format: eve (Suricata eve.json), zeek (Zeek JSON or TSV logs), json (JSON lines
    /// with --map), lines (one observable per line), csv (with a header, and --map).
    #[arg(long, value_name = "FORMAT", default_value = "lines")]
    format: String,
    /// A field map in TOML (log field → STIX object path), instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    map: Option<PathBuf>,
    /// Write one STIX sighting per matched indicator into this collection (alias or id;
    /// created when missing), with `count`, `first_seen`, `last_seen` and this node's
    /// identity as `where_sighted_refs`.
    #[arg(long, value_name = "C")]
    sightings: Option<String>,
    /// A directory of MISP warninglists (`<name>/list.json`): hits on a listed value
    /// (public resolvers, top domains, RFC 1918 space, …) carry the lists' names in
    /// `warninglists`, to tell likely false positives from real ones.
    #[arg(long, value_name = "DIR")]
    warninglists: Option<PathBuf>,
    /// Log files (`-` for stdin; `.gz` decompressed).
    #[arg(required = true)]
    files: Vec<String>,
}

/// The built-in field map of a format (`None`: the format needs none or takes `--map`).
pub fn builtin_map(format: Format) -> Option<FieldMap> {
    match format {
        Format::Eve => Some(FieldMap::eve()),
        Format::Zeek => Some(FieldMap::zeek()),
        _ => None,
    }
}

/// `concord match`: hits as JSON lines on stdout, a summary on stderr; exit 1 when an input
/// could not be read.
pub fn run_match(args: MatchArgs) -> Result<bool> {
    let format: Format = args
        .format
        .parse()
        .map_err(|e| anyhow::anyhow!("--format {}: {e}", args.format))?;
    let map = match &args.map {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(FieldMap::from_toml(&text, &path.display().to_string())?)
        }
        None => builtin_map(format),
    };
    if matches!(format, Format::Json | Format::Csv) && map.is_none() {
        bail!(
            "--format {}: needs --map FILE.toml (log field → STIX object path)",
            args.format
        );
    }
    let warninglists = match &args.warninglists {
        Some(dir) => Some(
            concord_misp::Warninglists::load_dir(dir)
                .with_context(|| format!("warninglists {}", dir.display()))?,
        ),
        None => None,
    };
    let store = crate::open_store(&args.data)?;
    let started = std::time::Instant::now();
    // The operator's own matching: objects as stored (no policy applies to the operator).
    let egress = concord_egress::Egress::new(
        store.clone(),
        std::sync::Arc::new(concord_policy::actions::Policy::node_default(
            None,
            Default::default(),
        )),
    )
    .acting_as(crate::users::actor().audit_name());
    let set = concord_server::matching::indicator_set(
        &egress,
        &args.collections,
        &concord_server::matching::Audience::Operator,
    )?;
    let stats = set.stats();
    eprintln!(
        "{} indicators compiled in {:.2} s ({} exact, {} CIDR, {} LIKE/MATCHES, {} by the evaluator on candidates, {} on every record; {} skipped)",
        stats.indicators,
        started.elapsed().as_secs_f64(),
        stats.exact,
        stats.cidr,
        stats.regex,
        stats.candidate,
        stats.residual,
        stats.skipped
    );
    for s in set.skipped().iter().take(10) {
        eprintln!("  skipped {}: {}", s.indicator, s.reason);
    }
    let now = concord_stix::Timestamp::now_micros().unix_nanos();
    // Validity now, not at each record's time: old logs are searched for what is known today.
    let mut matcher = Matcher::new(&set, now).validity_at(now);
    let stdout = std::io::stdout();
    // From stdin (a live log: `tail -f eve.json | concord match … -`) each hit is written as
    // soon as it is found; from files, through a buffer.
    let mut out: Box<dyn Write> = if args.files.iter().any(|f| f == "-") {
        Box::new(std::io::LineWriter::new(stdout.lock()))
    } else {
        Box::new(std::io::BufWriter::new(stdout.lock()))
    };
    let mut ok = true;
    let mut write_error = None;
    let mut flagged = 0u64;
    for file in &args.files {
        let mut reader = match concord_match::open(file, format, map.clone()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{file}: {e}");
                ok = false;
                continue;
            }
        };
        let summary = concord_match::match_reader(&mut matcher, &mut reader, &mut |hit| {
            let mut line = serde_json::to_value(&hit).unwrap_or_default();
            if let Some(lists) = &warninglists
                && let Some(value) = line["value"].as_str()
            {
                let names = lists.matches_any(value);
                if !names.is_empty() {
                    flagged += 1;
                    line["warninglists"] = names.into();
                }
            }
            if write_error.is_none()
                && let Err(e) = serde_json::to_writer(&mut out, &line)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
            {
                write_error = Some(e);
            }
        });
        match summary {
            Ok(s) => {
                eprintln!(
                    "{file}: {} records, {} hits, {} malformed lines",
                    s.records, s.hits, s.malformed
                );
                for m in reader.malformed().iter().take(5) {
                    eprintln!("  {m}");
                }
            }
            Err(e) => {
                eprintln!("{file}: {e}");
                ok = false;
            }
        }
    }
    if let Some(e) = write_error {
        return Err(e).context("cannot write hits");
    }
    out.flush()?;
    if warninglists.is_some() {
        eprintln!("{flagged} hits on values of a warninglist (flagged in `warninglists`)");
    }
    if let Some(target) = &args.sightings {
        let aggregates = matcher.aggregates();
        let n = write_sightings(store.as_ref(), target, &aggregates)?;
        eprintln!("{n} sightings written to {target}");
    }
    Ok(ok)
}

/// This node's identity (created on first use, race-free), as STIX JSON.
pub fn node_identity(store: &dyn Store, name: &str) -> Result<Value> {
    let fresh = json!({
        "type": "identity", "spec_version": "2.1",
        "id": format!("identity--{}", uuid_v4()),
        "created": concord_stix::Timestamp::now_micros().as_str(),
        "modified": concord_stix::Timestamp::now_micros().as_str(),
        "name": name, "identity_class": "organization",
    });
    let text = store.setting_or_insert(NODE_IDENTITY_SETTING, &fresh.to_string())?;
    serde_json::from_str(&text).context("the node identity setting is not JSON")
}

/// One STIX sighting (§4.14) per aggregate, into `target` with the node identity: one
/// transaction, validated and audited like any import. Returns how many.
pub fn write_sightings(
    store: &dyn Store,
    target: &str,
    aggregates: &[concord_match::Aggregate],
) -> Result<usize> {
    if aggregates.is_empty() {
        return Ok(0);
    }
    let identity = node_identity(store, "Concord node")?;
    let who = identity["id"].clone();
    let now = concord_stix::Timestamp::now_micros().to_string();
    let mut objects = vec![identity];
    for a in aggregates {
        objects.push(json!({
            "type": "sighting", "spec_version": "2.1",
            "id": format!("sighting--{}", uuid_v4()),
            "created": now, "modified": now,
            "created_by_ref": who,
            "sighting_of_ref": a.indicator,
            // STIX 2.1 §4.14: count is at most 999,999,999.
            "count": a.count.min(999_999_999),
            "first_seen": a.first_seen, "last_seen": a.last_seen,
            "where_sighted_refs": [who],
        }));
    }
    let bundle =
        json!({"type": "bundle", "id": format!("bundle--{}", uuid_v4()), "objects": objects});
    let mut target = crate::transfer::Target::resolve(store, target)?;
    let report = crate::transfer::import_one(
        store,
        &mut target,
        "sightings",
        Box::new(std::io::Cursor::new(bundle.to_string().into_bytes())),
    )?;
    if !report.rejected.is_empty() {
        bail!(
            "sightings refused: {}",
            report
                .rejected
                .iter()
                .map(|r| r.reasons.join("; "))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(aggregates.len())
}

/// `concord import --format ioc-list`: each file one transaction of indicators, plus the
/// lines that could not be classified in the report (exit 1 when there are any).
/// `min_prefix` is the shortest IPv4 and IPv6 CIDR prefix accepted.
pub fn import_ioc_lists(
    store: &dyn Store,
    collection: &str,
    files: &[PathBuf],
    min_prefix: (u8, u8),
    json: bool,
) -> Result<bool> {
    let mut target = crate::transfer::Target::resolve(store, collection)?;
    let options = IocOptions {
        min_prefix_v4: min_prefix.0,
        min_prefix_v6: min_prefix.1,
        ..IocOptions::new(concord_stix::Timestamp::now_micros().to_string())
    };
    let mut all_ok = true;
    let mut reports = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let input = std::io::BufReader::new(crate::transfer::open_input(path)?);
        let mut list =
            read_ioc_list(input, &name, &options).with_context(|| format!("cannot read {name}"))?;
        // Unchanged values are the versions already held; changed ones keep their `created`
        // (STIX 2.1 §3.6). Re-importing a list adds nothing.
        concord_ingest::reconcile_generated(store, target.id(), &mut list.indicators)?;
        let bundle = json!({"type": "bundle", "id": format!("bundle--{}", uuid_v4()),
                            "objects": list.indicators});
        let outcome = crate::transfer::import_one(
            store,
            &mut target,
            &name,
            Box::new(std::io::Cursor::new(bundle.to_string().into_bytes())),
        );
        let (ok, mut doc) = crate::transfer::report(&name, outcome, json);
        all_ok &= ok && list.rejected.is_empty();
        if !json {
            eprintln!(
                "{name}: {}, {}, {}, {} not classified",
                crate::count(list.lines, "line"),
                crate::count(list.indicators.len() as u64, "indicator"),
                crate::count(list.duplicates, "duplicate"),
                crate::count(list.rejected.len() as u64, "line")
            );
            for r in list.rejected.iter().take(20) {
                eprintln!("  {}:{}: {:?}: {}", r.file, r.line, r.text, r.reason);
            }
        }
        doc["lines"] = list.lines.into();
        doc["duplicates"] = list.duplicates.into();
        doc["unclassified"] = list
            .rejected
            .iter()
            .map(|r| json!({"line": r.line, "text": r.text, "reason": r.reason}))
            .collect();
        reports.push(doc);
    }
    if json {
        out!("{}", json!({ "collection": target.id(), "files": reports }));
    }
    Ok(all_ok)
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}
