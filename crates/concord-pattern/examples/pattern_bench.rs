//! Throughput of `concord_pattern` (parses/s, evaluations/s) on the same inputs as the OASIS
//! Python tools (`stix2-patterns`, `stix2-matcher`), for BENCHMARKS.md. Prints figures only:
//! nothing here asserts a time.
//!
//! ```text
//! cargo run --release -p concord-pattern --example pattern_bench -- MODE [OPTIONS]
//!
//!   validate FILE        validate.json: parse (with every check) each vector pattern
//!   match FILE           match.json: parse + evaluate each vector against its observation
//!                        set, as the reference `match(pattern, observations)` does; also the
//!                        evaluation alone with the patterns parsed beforehand
//!   parse FILE           a pattern list (one a line, e.g. patterns-100k.txt): parse each
//!   batch    --patterns FILE --observed FILE [--sample K]
//!                        each of K sampled patterns parsed once and evaluated against the
//!                        whole observed-data bundle in one call (one evaluation = one pattern
//!                        against one observed-data object), as matcher_bench.py batch
//!   pairwise --patterns FILE --observed FILE [--sample K] [--obs M]
//!                        parse + evaluate per (pattern, single observed-data bundle) pair, as
//!                        matcher_bench.py pairwise
//!
//! common options: --runs R (default 3; the median is reported), --min-seconds S (default 1:
//!                 a run repeats its workload until it has taken at least S seconds)
//! ```
//!
//! Each run prints nothing; each mode prints one JSON line with the median rate, every run's
//! rate, and the outcome counts (so the answers can be compared with the Python tools').

use std::collections::HashMap;
use std::time::Instant;

use concord_pattern::{Pattern, evaluate, parse};
use serde_json::{Value, json};

struct Opts {
    mode: String,
    file: Option<String>,
    patterns: Option<String>,
    observed: Option<String>,
    sample: usize,
    obs: usize,
    runs: usize,
    min_seconds: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: pattern_bench (validate FILE | match FILE | parse FILE | batch --patterns F \
         --observed F [--sample K] | pairwise --patterns F --observed F [--sample K] [--obs M]) \
         [--runs R] [--min-seconds S]"
    );
    std::process::exit(2)
}

fn opts() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut o = Opts {
        mode,
        file: None,
        patterns: None,
        observed: None,
        sample: 25,
        obs: 200,
        runs: 3,
        min_seconds: 1.0,
    };
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--patterns" => o.patterns = Some(val()),
            "--observed" => o.observed = Some(val()),
            "--sample" => o.sample = val().parse().unwrap_or_else(|_| usage()),
            "--obs" => o.obs = val().parse().unwrap_or_else(|_| usage()),
            "--runs" => o.runs = val().parse().unwrap_or_else(|_| usage()),
            "--min-seconds" => o.min_seconds = val().parse().unwrap_or_else(|_| usage()),
            s if !s.starts_with("--") && o.file.is_none() => o.file = Some(s.to_string()),
            _ => usage(),
        }
    }
    o.runs = o.runs.max(1);
    o
}

fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    })
}

fn read_patterns(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Every k-th pattern, k = len / n (the same choice as matcher_bench.py's `sample`).
fn sample(pats: &[String], n: usize) -> Vec<String> {
    if n == 0 || n >= pats.len() {
        return pats.to_vec();
    }
    let step = pats.len() as f64 / n as f64;
    (0..n)
        .map(|i| pats[(i as f64 * step) as usize].clone())
        .collect()
}

/// Runs `work` (which returns how many units it did) until `min_seconds` have passed;
/// returns units per second.
fn rate(min_seconds: f64, mut work: impl FnMut() -> u64) -> (f64, u64, f64) {
    let t0 = Instant::now();
    let mut units = 0u64;
    loop {
        units += work();
        let dt = t0.elapsed().as_secs_f64();
        if dt >= min_seconds {
            return (units as f64 / dt, units, dt);
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Repeats a measurement `runs` times; returns (median rate, every rate).
fn runs(o: &Opts, mut work: impl FnMut() -> u64) -> (f64, Vec<f64>) {
    let rates: Vec<f64> = (0..o.runs)
        .map(|_| round1(rate(o.min_seconds, &mut work).0))
        .collect();
    (median(&rates), rates)
}

fn outcome(pattern: &str, observations: &[Value]) -> &'static str {
    match parse(pattern) {
        Err(_) => "invalid-pattern",
        Ok(p) => match evaluate(&p, observations) {
            Err(_) => "evaluation-error",
            Ok(m) if m.matched => "match",
            Ok(_) => "no-match",
        },
    }
}

fn mode_validate(o: &Opts) {
    let path = o.file.as_deref().unwrap_or_else(|| usage());
    let data = read_json(path);
    let mut pats: Vec<String> = Vec::new();
    for key in ["vectors", "inspect_vectors"] {
        if let Some(vs) = data[key].as_array() {
            pats.extend(
                vs.iter()
                    .filter_map(|v| v["pattern"].as_str().map(str::to_string)),
            );
        }
    }
    let invalid = pats.iter().filter(|p| parse(p).is_err()).count();
    let (med, all) = runs(o, || {
        for p in &pats {
            std::hint::black_box(parse(std::hint::black_box(p)).is_ok());
        }
        pats.len() as u64
    });
    println!(
        "{}",
        json!({"impl": "concord", "mode": "validate", "file": path, "patterns": pats.len(),
               "invalid": invalid, "patterns_per_s": med, "runs": all})
    );
}

fn mode_match(o: &Opts) {
    let path = o.file.as_deref().unwrap_or_else(|| usage());
    let data = read_json(path);
    let sets = data["observation_sets"]
        .as_object()
        .unwrap_or_else(|| usage());
    let vectors = data["vectors"].as_array().unwrap_or_else(|| usage());
    let cases: Vec<(&str, &[Value])> = vectors
        .iter()
        .map(|v| {
            let obs = sets[v["observations"].as_str().unwrap()]
                .as_array()
                .unwrap();
            (v["pattern"].as_str().unwrap(), obs.as_slice())
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (p, obs) in &cases {
        *counts.entry(outcome(p, obs)).or_default() += 1;
    }
    // parse + evaluate, as the reference `match()` per call
    let (med, all) = runs(o, || {
        for (p, obs) in &cases {
            std::hint::black_box(outcome(p, obs));
        }
        cases.len() as u64
    });
    // evaluation alone, the patterns parsed beforehand (the valid ones)
    let parsed: Vec<(Pattern, &[Value])> = cases
        .iter()
        .filter_map(|(p, obs)| parse(p).ok().map(|p| (p, *obs)))
        .collect();
    let (med_eval, all_eval) = runs(o, || {
        for (p, obs) in &parsed {
            std::hint::black_box(evaluate(p, obs).is_ok());
        }
        parsed.len() as u64
    });
    println!(
        "{}",
        json!({"impl": "concord", "mode": "match", "file": path, "vectors": cases.len(),
               "outcomes": counts, "parse_and_evals_per_s": med, "runs": all,
               "evaluated_vectors": parsed.len(), "evals_only_per_s": med_eval,
               "runs_evals_only": all_eval})
    );
}

fn mode_parse(o: &Opts) {
    let path = o.file.as_deref().unwrap_or_else(|| usage());
    let pats = read_patterns(path);
    let invalid = pats.iter().filter(|p| parse(p).is_err()).count();
    let (med, all) = runs(o, || {
        for p in &pats {
            std::hint::black_box(parse(std::hint::black_box(p)).is_ok());
        }
        pats.len() as u64
    });
    println!(
        "{}",
        json!({"impl": "concord", "mode": "parse", "file": path, "patterns": pats.len(),
               "invalid": invalid, "patterns_per_s": med, "runs": all})
    );
}

fn observed(o: &Opts) -> (Value, usize) {
    let b = read_json(o.observed.as_deref().unwrap_or_else(|| usage()));
    let n = b["objects"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["type"] == "observed-data").count())
        .unwrap_or(0);
    (b, n)
}

fn mode_batch(o: &Opts) {
    let pats = sample(
        &read_patterns(o.patterns.as_deref().unwrap_or_else(|| usage())),
        o.sample,
    );
    let (bundle, n_obs) = observed(o);
    let groups = [bundle];
    let mut matched = 0;
    let mut errors = 0;
    for p in &pats {
        match parse(p).map(|p| evaluate(&p, &groups)) {
            Ok(Ok(m)) if m.matched => matched += 1,
            Ok(Ok(_)) => {}
            _ => errors += 1,
        }
    }
    let (med, all) = runs(o, || {
        for p in &pats {
            if let Ok(p) = parse(p) {
                std::hint::black_box(evaluate(&p, &groups).is_ok());
            }
        }
        (pats.len() * n_obs) as u64
    });
    // The same work with the observations read once per run (`Observations::new`), then every
    // pattern evaluated against them: what a matcher does with one bundle and many patterns.
    let (med_prepared, all_prepared) = runs(o, || {
        if let Ok(prepared) = concord_pattern::Observations::new(&groups) {
            for p in &pats {
                if let Ok(p) = parse(p) {
                    std::hint::black_box(concord_pattern::evaluate_prepared(&p, &prepared).is_ok());
                }
            }
        }
        (pats.len() * n_obs) as u64
    });
    println!(
        "{}",
        json!({"impl": "concord", "mode": "batch", "patterns": pats.len(), "observed_data": n_obs,
               "evaluations_per_run": pats.len() * n_obs, "evals_per_s": med, "runs": all,
               "evals_per_s_prepared": med_prepared, "runs_prepared": all_prepared,
               "patterns_matched": matched, "errors": errors})
    );
}

/// One small bundle per observed-data object with its SCOs (matcher_bench.py `split_obs`).
fn split_obs(bundle: &Value, limit: usize) -> Vec<Value> {
    let objects = bundle["objects"].as_array().cloned().unwrap_or_default();
    let by_id: HashMap<&str, &Value> = objects
        .iter()
        .filter_map(|x| x["id"].as_str().map(|id| (id, x)))
        .collect();
    let mut out = Vec::new();
    for x in &objects {
        if x["type"] != "observed-data" {
            continue;
        }
        let mut objs = vec![x.clone()];
        for r in x["object_refs"].as_array().into_iter().flatten() {
            if let Some(sco) = r.as_str().and_then(|r| by_id.get(r)) {
                objs.push((*sco).clone());
            }
        }
        out.push(json!({"type": "bundle", "id": bundle["id"], "objects": objs}));
        if out.len() >= limit {
            break;
        }
    }
    out
}

fn mode_pairwise(o: &Opts) {
    let pats = sample(
        &read_patterns(o.patterns.as_deref().unwrap_or_else(|| usage())),
        o.sample,
    );
    let (bundle, _) = observed(o);
    let obs = split_obs(&bundle, o.obs);
    let mut matches = 0;
    for p in &pats {
        for ob in &obs {
            if outcome(p, std::slice::from_ref(ob)) == "match" {
                matches += 1;
            }
        }
    }
    let (med, all) = runs(o, || {
        for p in &pats {
            for ob in &obs {
                std::hint::black_box(outcome(p, std::slice::from_ref(ob)));
            }
        }
        (pats.len() * obs.len()) as u64
    });
    println!(
        "{}",
        json!({"impl": "concord", "mode": "pairwise", "patterns": pats.len(),
               "observed_data": obs.len(), "evaluations_per_run": pats.len() * obs.len(),
               "evals_per_s": med, "runs": all, "matches": matches})
    );
}

fn main() {
    let o = opts();
    match o.mode.as_str() {
        "validate" => mode_validate(&o),
        "match" => mode_match(&o),
        "parse" => mode_parse(&o),
        "batch" => mode_batch(&o),
        "pairwise" => mode_pairwise(&o),
        _ => usage(),
    }
}
