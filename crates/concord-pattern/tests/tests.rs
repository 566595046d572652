//! All integration tests of concord-pattern in one binary: the OASIS vectors handed in
//! `tests/data/patterns`, error offsets, the printer round trip and the depth limit.

use std::collections::{BTreeMap, BTreeSet};

use concord_pattern::{
    ComparisonExpr, EvalError, Literal, ObservationExpr, Operand, Operator, PathStep, Pattern,
    PatternErrorKind, Qualifier, evaluate, parse, parse_syntax, render_error,
};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/patterns");

fn load(name: &str) -> Value {
    let path = format!("{DATA}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("vector file is JSON")
}

// ---------------------------------------------------------------------------------------------
// validate.json

/// Vectors where Concord deliberately gives another answer than the OASIS validator, with why.
/// The test asserts Concord's answer, so each difference stays a tested decision.
const VALIDATE_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "pv-0021",
        "invalid",
        "two WITHIN qualifiers on the same (parenthesised) expression; the reference only \
         checks duplicates on an unparenthesised observation, Concord applies its \
         'no duplicate qualifier of one kind on one expression' rule uniformly",
    ),
    (
        "pv-0055",
        "invalid",
        "2024-02-30 does not exist; the reference checks only the grammar's field ranges, \
         Concord requires a real calendar date (issue 3, STIX 2.1 §3.2 RFC 3339 dates)",
    ),
    (
        "pv-0056",
        "invalid",
        "2023-02-29 does not exist (2023 is not a leap year); see pv-0055",
    ),
    (
        "pv-0057",
        "invalid",
        "2024-04-31 does not exist; see pv-0055",
    ),
];

fn outcome_of_parse(pattern: &str) -> &'static str {
    if parse(pattern).is_ok() {
        "valid"
    } else {
        "invalid"
    }
}

#[test]
fn validate_vectors() {
    let data = load("validate.json");
    let vectors = data["vectors"].as_array().expect("vectors");
    let mut agree = 0;
    let mut documented = 0;
    let mut failures = Vec::new();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let pattern = v["pattern"].as_str().unwrap();
        let reference = v["expected"].as_str().unwrap();
        let expected = match VALIDATE_DIFFERENCES.iter().find(|d| d.0 == id) {
            Some(d) => {
                assert_ne!(d.1, reference, "{id}: listed as a difference but agrees");
                documented += 1;
                d.1
            }
            None => {
                agree += 1;
                reference
            }
        };
        let got = outcome_of_parse(pattern);
        if got != expected {
            failures.push(format!(
                "{id}: {pattern}\n  expected {expected}, got {got}: {:?}",
                parse(pattern).err()
            ));
        }
    }
    println!(
        "validate.json: {} vectors, {} as the reference, {} documented differences, {} failing",
        vectors.len(),
        agree,
        documented,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(vectors.len(), 61);
}

// ---------------------------------------------------------------------------------------------
// match.json

/// Vectors where Concord's answer differs from the reference matcher's, with why. The second
/// field is Concord's outcome (`match`, `no-match`, `invalid-pattern`, `evaluation-error`).
const MATCH_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "pm-0110",
        "invalid-pattern",
        "`REPEATS 2 TIMES REPEATS 2 TIMES`: two qualifiers of one kind on one expression; the \
         reference matcher does not run the validator's duplicate-qualifier check (pv-0007), \
         Concord's parse does",
    ),
    (
        "pm-0119",
        "invalid-pattern",
        "duplicate REPEATS, as pm-0110",
    ),
    (
        "pm-0271",
        "invalid-pattern",
        "START later than STOP: the reference evaluates it to no match, Concord rejects the \
         pattern (issue 3 asks for START before STOP)",
    ),
    (
        "pm-0004",
        "invalid-pattern",
        "`IN (1.1, 2.2, true)` mixes types: an error in both, found at parse time by Concord \
         (set homogeneity is a property of the pattern, not of the data)",
    ),
    (
        "pm-0010",
        "invalid-pattern",
        "`WITHIN 0 SECONDS`: an error in both, found at parse time by Concord",
    ),
];

fn match_outcome(pattern: &str, observations: &[Value]) -> (String, String) {
    match parse(pattern) {
        Err(e) => ("invalid-pattern".into(), e.to_string()),
        Ok(p) => match evaluate(&p, observations) {
            Err(e) => ("evaluation-error".into(), e.to_string()),
            Ok(m) if m.matched => ("match".into(), format!("{:?}", m.observed_data)),
            Ok(_) => ("no-match".into(), String::new()),
        },
    }
}

#[test]
fn match_vectors() {
    let data = load("match.json");
    let sets = data["observation_sets"].as_object().expect("sets");
    let vectors = data["vectors"].as_array().expect("vectors");
    let mut agree = 0;
    let mut documented = 0;
    let mut failures = Vec::new();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let pattern = v["pattern"].as_str().unwrap();
        let obs = sets[v["observations"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let reference = match v["expected"].as_str().unwrap() {
            "error" => v["error_kind"].as_str().unwrap(),
            other => other,
        };
        let expected = match MATCH_DIFFERENCES.iter().find(|d| d.0 == id) {
            Some(d) => {
                assert_ne!(d.1, reference, "{id}: listed as a difference but agrees");
                documented += 1;
                d.1
            }
            None => {
                agree += 1;
                reference
            }
        };
        let (got, detail) = match_outcome(pattern, obs);
        if got != expected {
            failures.push(format!(
                "{id}: {pattern}\n  expected {expected}, got {got} {detail}"
            ));
        }
    }
    println!(
        "match.json: {} vectors, {} as the reference, {} documented differences, {} failing",
        vectors.len(),
        agree,
        documented,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(vectors.len(), 297);
}

/// `evaluate_prepared` over observations read once answers exactly as `evaluate`, whatever
/// the pattern: every vector of `match.json` against its set, and every pattern of the file
/// against one shared set (as a matcher uses it).
#[test]
fn prepared_observations_answer_as_evaluate() {
    let data = load("match.json");
    let sets = data["observation_sets"].as_object().expect("sets");
    let mut compared = 0;
    for v in data["vectors"].as_array().unwrap() {
        let Ok(pattern) = concord_pattern::parse(v["pattern"].as_str().unwrap()) else {
            continue;
        };
        let obs = sets[v["observations"].as_str().unwrap()]
            .as_array()
            .unwrap();
        for set in [obs, sets["complex/1"].as_array().unwrap()] {
            let once = concord_pattern::evaluate(&pattern, set);
            let prepared = concord_pattern::Observations::new(set)
                .and_then(|o| concord_pattern::evaluate_prepared(&pattern, &o));
            assert_eq!(once, prepared, "{}", v["id"]);
            compared += 1;
        }
    }
    assert!(compared > 500, "{compared}");
}

#[test]
fn match_reports_observed_data() {
    let data = load("match.json");
    let obs = data["observation_sets"]["temporal_qualifiers/1"]
        .as_array()
        .unwrap();
    let p = parse("[person:name = 'alice'] FOLLOWEDBY [person:name = 'bob']").unwrap();
    let m = evaluate(&p, obs).unwrap();
    assert!(m.matched);
    assert_eq!(
        m.observed_data,
        [
            "observed-data--ad904346-d60e-45df-8812-c18392abdc5a",
            "observed-data--872846e4-901f-4e24-b6a0-1cae8f50aa3f"
        ]
    );
    assert_eq!(m.bindings[1].expression, "[person:name = 'bob']");
    let p = parse("[person:name = 'bob'] FOLLOWEDBY [person:name = 'alice']").unwrap();
    assert!(!evaluate(&p, obs).unwrap().matched);
}

#[test]
fn evaluation_errors_are_typed() {
    let obs = [serde_json::json!({"type": "bundle", "objects": [
        {"type": "observed-data", "id": "observed-data--1", "first_observed": "2020-01-01T00:00:00Z",
         "last_observed": "2020-01-01T00:00:00Z", "number_observed": 1, "object_refs": ["x-t--1"]},
        {"type": "x-t", "id": "x-t--1", "name": "abc", "ip": "10.0.0.1"}
    ]})];
    let p = parse("[x-t:name MATCHES '(?=a)b']").unwrap();
    assert!(matches!(evaluate(&p, &obs), Err(EvalError::Regex { .. })));
    let p = parse("[x-t:name MATCHES '(a)\\\\1']").unwrap();
    assert!(matches!(evaluate(&p, &obs), Err(EvalError::Regex { .. })));
    let p = parse("[x-t:name MATCHES '^a(?P<x>b)c$']").unwrap();
    assert!(evaluate(&p, &obs).unwrap().matched);
    let p = parse("[x-t:name LIKE 'a_c'] AND [x-t:ip ISSUBSET '10.0.0.0/8']").unwrap();
    assert!(
        !evaluate(&p, &obs).unwrap().matched,
        "one observation cannot serve both"
    );
    let p = parse("[x-t:name LIKE 'a_c' AND x-t:ip ISSUBSET '10.0.0.0/8']").unwrap();
    assert!(evaluate(&p, &obs).unwrap().matched);
    let bad = [serde_json::json!(42)];
    assert!(matches!(
        evaluate(&p, &bad),
        Err(EvalError::InvalidObservations { group: 0, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// inspect_vectors: what a pattern inspector extracts, checked on the AST of `parse_syntax`
// (pi-0001 compares against ISSUBSET '1234', which the full checks reject as no CIDR).

fn collect_obs(
    e: &ObservationExpr,
    ops: &mut BTreeSet<String>,
    quals: &mut BTreeSet<String>,
    cmps: &mut Vec<(String, Value)>,
) {
    match e {
        ObservationExpr::Observation(c) => collect_cmp(c, cmps),
        ObservationExpr::And(items)
        | ObservationExpr::Or(items)
        | ObservationExpr::FollowedBy(items) => {
            ops.insert(
                match e {
                    ObservationExpr::And(_) => "AND",
                    ObservationExpr::Or(_) => "OR",
                    _ => "FOLLOWEDBY",
                }
                .into(),
            );
            for i in items {
                collect_obs(i, ops, quals, cmps);
            }
        }
        ObservationExpr::Qualified { expr, qualifiers } => {
            quals.extend(qualifiers.iter().map(Qualifier::to_string));
            collect_obs(expr, ops, quals, cmps);
        }
    }
}

fn collect_cmp(c: &ComparisonExpr, out: &mut Vec<(String, Value)>) {
    match c {
        ComparisonExpr::And(items) | ComparisonExpr::Or(items) => {
            items.iter().for_each(|i| collect_cmp(i, out))
        }
        ComparisonExpr::Exists(_) => {}
        ComparisonExpr::Test(t) => {
            let mut path = vec![Value::from(t.path.property.clone())];
            path.extend(t.path.steps.iter().map(|s| match s {
                PathStep::Key(k) => Value::from(k.clone()),
                PathStep::Index(i) => Value::from(*i),
                PathStep::AnyIndex => Value::from("*"),
            }));
            let op = format!("{}{}", if t.negated { "NOT " } else { "" }, t.op.as_str());
            let value = match &t.operand {
                Operand::Literal(l) => l.to_string(),
                Operand::Set(items) => format!(
                    "({})",
                    items
                        .iter()
                        .map(Literal::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push((
                t.path.object_type.clone(),
                Value::Array(vec![Value::Array(path), op.into(), value.into()]),
            ));
        }
    }
}

#[test]
fn inspect_vectors() {
    let data = load("validate.json");
    let vectors = data["inspect_vectors"].as_array().unwrap();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let p = parse_syntax(v["pattern"].as_str().unwrap()).unwrap();
        let (mut ops, mut quals, mut cmps) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
        collect_obs(&p.expr, &mut ops, &mut quals, &mut cmps);
        let expected = &v["expected"];
        match v["aspect"].as_str().unwrap() {
            "comparisons" => {
                let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for (t, c) in cmps {
                    by_type.entry(t).or_default().push(c);
                }
                let got = serde_json::to_value(by_type).unwrap();
                assert_eq!(&got, expected, "{id}");
            }
            "obs_ops" => {
                let want: BTreeSet<String> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(ops, want, "{id}");
            }
            "qualifiers" => {
                let want: BTreeSet<String> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(quals, want, "{id}");
            }
            other => panic!("{id}: unknown aspect {other}"),
        }
    }
    println!("inspect_vectors: {} passed", vectors.len());
    assert_eq!(vectors.len(), 13);
}

// ---------------------------------------------------------------------------------------------
// Error offsets and messages.

fn check_err(pattern: &str, offset: usize, message: &str) {
    let e = parse(pattern).expect_err(pattern);
    assert_eq!(
        (e.offset, e.message.as_str()),
        (offset, message),
        "{pattern}\n{}",
        render_error(pattern, &e)
    );
}

#[test]
fn error_offsets() {
    let any_op = "`NOT` or a comparison operator (`=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, `LIKE`, `MATCHES`, `ISSUBSET`, `ISSUPERSET`)";
    check_err(
        "[foo:bar=1] within 2 seconds",
        12,
        "expected `AND`, `OR`, `FOLLOWEDBY`, a qualifier (`WITHIN`, `REPEATS`, `START`) or end of pattern, found identifier `within`",
    );
    check_err(
        "[file:name MATCHES /.*\\.dll/]",
        19,
        "unexpected character '/'",
    );
    check_err(
        "[file.size = 1280]",
        5,
        "expected `:` after the object type, found `.`",
    );
    check_err(
        "[artifact:payload_bin = b'====']",
        26,
        "invalid binary literal: misplaced `=` padding",
    );
    check_err("[file:size = ]", 13, "expected a literal, found `]`");
    check_err(
        "[file:hashes.MD5 =? 'cead3f77f6cda6ec00f57d76c9a6879f']",
        18,
        "unexpected character '?'",
    );
    check_err(
        "[file:hashes.'SHA-256' = 'f00']",
        25,
        "'f00' is not a valid SHA-256 hash: expected a string of 64 hex digits",
    );
    check_err(
        "[x:created = t'2024-02-30T12:00:00Z']",
        23,
        "invalid timestamp: day 30 does not exist in 2024-02",
    );
    check_err(
        "[x:created = t'2024-01-15T12:30:61Z']",
        32,
        "invalid timestamp: second must be 00 to 60",
    );
    check_err(
        "[x:created = t'2024-01-15T12:30:45']",
        34,
        "invalid timestamp: expected `Z` in timestamp (YYYY-MM-DDTHH:MM:SSZ, upper-case T and Z)",
    );
    check_err(
        "[some-type:needs-quotes = 1]",
        11,
        "expected a property name, found `needs-quotes`: a name with `-` must be quoted, as in 'needs-quotes'",
    );
    check_err(
        "[a:b c]",
        5,
        &format!("expected {any_op}, found identifier `c`"),
    );
    check_err(
        "[a:b > true]",
        7,
        "expected a number, string, binary or timestamp literal (booleans have no order), found `true`",
    );
    check_err(
        "[a:b IN (1, 'x')]",
        12,
        "set mixes number and string values; the elements of a set must have one type",
    );
    check_err(
        "[a:b ISSUBSET '10.0.0.0/33']",
        14,
        "ISSUBSET needs an IPv4 or IPv6 address or CIDR block, found \"10.0.0.0/33\"",
    );
    check_err(
        "[a:b = 1] START t'2020-01-02T00:00:00Z' STOP t'2020-01-01T00:00:00Z'",
        45,
        "STOP must not be earlier than START",
    );
    check_err(
        "[a:b = 1] REPEATS 2 TIMES WITHIN 5 SECONDS REPEATS 3 TIMES",
        43,
        "duplicate REPEATS qualifier on the same expression; group with parentheses to qualify the qualified expression",
    );
    check_err(
        "[a:b = 1] WITHIN 0 SECONDS",
        17,
        "WITHIN needs a duration greater than zero",
    );
    check_err(
        "[a:b = 1] WITHIN -5 SECONDS",
        17,
        "expected a positive number of seconds, found an integer",
    );
    check_err(
        "[File:b = 1]",
        1,
        "object type `File` is not a valid STIX type name: expected a-z, 0-9, `_` and inner `-` only, at most 250 characters (STIX 2.1 §3.1)",
    );
    check_err(
        "[a:Name = 1]",
        3,
        "property name \"Name\" is not a valid STIX property name: expected a-z, 0-9 and `_` only (STIX 2.1 §3.1)",
    );
    check_err(
        "[a:b = 'x\\n']",
        9,
        "invalid escape in string: expected `\\'` or `\\\\`",
    );
    check_err(
        "[a:b = 'x",
        7,
        "unterminated string: expected a closing `'`",
    );
    check_err(
        "[a:b = 01]",
        7,
        "invalid integer: leading zeros are not allowed",
    );
    check_err(
        "[a:b = 1",
        8,
        "expected `AND`, `OR` or `]`, found end of pattern",
    );
    check_err(
        "",
        0,
        "expected `[` or `(` to start an observation expression, found end of pattern",
    );
    check_err(
        "[a:b = 1] AND",
        13,
        "expected `[` or `(` to start an observation expression, found end of pattern",
    );
    check_err(
        "[a:b[x] = 1]",
        5,
        "expected a list index or `*`, found identifier `x`",
    );
    check_err(
        "[a:b = 1] START t'2020-01-01T00:00:00Z'",
        39,
        "expected `STOP`, found end of pattern",
    );
    check_err(
        "[a:b = h'abc']",
        12,
        "invalid hex literal: expected pairs of hex digits",
    );
    check_err(
        "[a:b = 99999999999999999999]",
        7,
        "integer literal out of range (64-bit signed)",
    );
    // Offsets are bytes: the caret is placed by characters.
    let p = "[a:b = 'é' AND]";
    check_err(
        p,
        15,
        "expected an object path such as `file:name`, `(` or `EXISTS`, found `]`",
    );
    let e = parse(p).unwrap_err();
    assert_eq!(
        render_error(p, &e),
        "[a:b = 'é' AND]\n              ^\nexpected an object path such as `file:name`, `(` or `EXISTS`, found `]`"
    );
}

#[test]
fn accepted_forms() {
    for p in [
        "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
        "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
        "[a:b[-1] = +5 AND a:c != -.5 AND a:d == h'00ff' AND a:e <> b'AAE=']",
        "[a:b = 1] /* comment */ AND // line comment\n [a:c = 2]",
        "([a:b = 1] REPEATS 2 TIMES) REPEATS 3 TIMES",
        "[a:b = 1] REPEATS 2 TIMES WITHIN 5 SECONDS START t'2020-01-01T00:00:00Z' STOP t'2020-01-01T00:00:00.5Z'",
        "[EXISTS a:b AND a:c IN ()]",
        "[a:ip ISSUPERSET '2001:db8::/32']",
        "[a:b = 'it\\'s \\\\ ok']",
        "[x:t = t'2016-12-31T23:59:60Z']",
    ] {
        let pattern = parse(p).unwrap_or_else(|e| panic!("{}", render_error(p, &e)));
        let text = pattern.to_string();
        assert_eq!(parse(&text).unwrap(), pattern, "{p} -> {text}");
    }
    assert_eq!(
        parse("[a:b=1 AND (a:c=2 OR a:d=3)]").unwrap().to_string(),
        "[a:b = 1 AND (a:c = 2 OR a:d = 3)]"
    );
    assert_eq!(
        parse("[a:b = b'AAE='] FOLLOWEDBY ([a:c = 1] OR [a:d = 2]) WITHIN 5 SECONDS")
            .unwrap()
            .to_string(),
        "[a:b = h'0001'] FOLLOWEDBY ([a:c = 1] OR [a:d = 2]) WITHIN 5 SECONDS"
    );
}

// ---------------------------------------------------------------------------------------------
// Depth limit: hostile nesting is an error, not a stack overflow.

#[test]
fn depth_limit() {
    let n = 10_000;
    let p = format!("{}[a:b = 1]{}", "(".repeat(n), ")".repeat(n));
    let e = parse(&p).unwrap_err();
    assert_eq!(e.kind, PatternErrorKind::TooDeep);
    assert_eq!(e.offset, concord_pattern::MAX_DEPTH);
    let p = format!("[{}a:b = 1{}]", "(".repeat(n), ")".repeat(n));
    assert_eq!(parse(&p).unwrap_err().kind, PatternErrorKind::TooDeep);
    // Long flat chains are fine: they are n-ary nodes, not deep trees.
    let p = vec!["[a:b = 1]"; n].join(" OR ");
    assert!(parse(&p).is_ok());
    let p = format!("[{}]", vec!["a:b = 1"; n].join(" AND "));
    let pattern = parse(&p).unwrap();
    assert_eq!(pattern.to_string(), p);
    // Just under the limit works, and prints back.
    let d = concord_pattern::MAX_DEPTH - 1;
    let p = format!("{}[a:b = 1]{}", "(".repeat(d), ")".repeat(d));
    assert_eq!(parse(&p).unwrap().to_string(), "[a:b = 1]");
}

// ---------------------------------------------------------------------------------------------
// Round trip: a generated AST prints to text that parses back to the same AST.

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn gen_string(r: &mut Rng) -> String {
    let alphabet = [
        'a', 'Z', '0', ' ', '\'', '\\', '%', '_', 'é', '中', '-', '.', ')',
    ];
    (0..r.below(6)).map(|_| *r.pick(&alphabet)).collect()
}

fn gen_ts(r: &mut Rng, base: u64) -> String {
    let frac = ["", ".5", ".123", ".123456789"];
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        1990 + base,
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.pick(&frac)
    )
}

fn gen_literal(r: &mut Rng, class: u64) -> Literal {
    match class {
        0 => Literal::Int(r.next() as i64 >> r.below(60)),
        1 => Literal::Float((r.next() as i64 >> r.below(60)) as f64 / 7.0),
        2 => Literal::String(gen_string(r)),
        3 => Literal::Bool(r.below(2) == 0),
        4 => Literal::Binary((0..r.below(5)).map(|_| r.next() as u8).collect()),
        _ => {
            let base = r.below(30);
            let t = gen_ts(r, base);
            Literal::Timestamp(parse_ts(&t))
        }
    }
}

fn parse_ts(t: &str) -> concord_pattern::Timestamp {
    let p = parse(&format!("[a:b = t'{t}']")).unwrap();
    match p.expr {
        ObservationExpr::Observation(ComparisonExpr::Test(t)) => match t.operand {
            Operand::Literal(Literal::Timestamp(t)) => t,
            _ => unreachable!(),
        },
        _ => unreachable!(),
    }
}

fn gen_path(r: &mut Rng) -> concord_pattern::ObjectPath {
    let types = ["file", "ipv4-addr", "x-usb-device", "a1"];
    let props = ["name", "size", "src_ref", "x_custom_2"];
    let keys = ["key", "SHA-256", "with space", "AND", "true", "it's", "_k9"];
    let steps = (0..r.below(4))
        .map(|_| match r.below(3) {
            0 => PathStep::Key(r.pick(&keys).to_string()),
            1 => PathStep::Index(r.below(5) as i64 - 1),
            _ => PathStep::AnyIndex,
        })
        .collect();
    concord_pattern::ObjectPath {
        object_type: r.pick(&types).to_string(),
        property: r.pick(&props).to_string(),
        steps,
    }
}

fn gen_cmp(r: &mut Rng, depth: u32) -> ComparisonExpr {
    let choice = if depth == 0 {
        2 + r.below(2)
    } else {
        r.below(5)
    };
    match choice {
        0 => ComparisonExpr::And((0..2 + r.below(2)).map(|_| gen_cmp(r, depth - 1)).collect()),
        1 => ComparisonExpr::Or((0..2 + r.below(2)).map(|_| gen_cmp(r, depth - 1)).collect()),
        3 => ComparisonExpr::Exists(gen_path(r)),
        _ => {
            let op = *r.pick(&[
                Operator::Eq,
                Operator::Ne,
                Operator::Lt,
                Operator::Le,
                Operator::Gt,
                Operator::Ge,
                Operator::In,
                Operator::Like,
                Operator::Matches,
                Operator::IsSubset,
                Operator::IsSuperset,
            ]);
            let operand = match op {
                Operator::In => {
                    let class = r.below(6);
                    Operand::Set((0..r.below(4)).map(|_| gen_literal(r, class)).collect())
                }
                Operator::Like | Operator::Matches => {
                    Operand::Literal(Literal::String(gen_string(r)))
                }
                Operator::IsSubset | Operator::IsSuperset => Operand::Literal(Literal::String(
                    r.pick(&["10.0.0.0/8", "1.2.3.4", "2001:db8::/32", "::1"])
                        .to_string(),
                )),
                Operator::Eq | Operator::Ne => {
                    let class = r.below(6);
                    Operand::Literal(gen_literal(r, class))
                }
                _ => {
                    let class = *r.pick(&[0, 1, 2, 4, 5]);
                    Operand::Literal(gen_literal(r, class))
                }
            };
            ComparisonExpr::Test(concord_pattern::Test {
                path: gen_path(r),
                negated: r.below(3) == 0,
                op,
                operand,
            })
        }
    }
}

fn gen_obs(r: &mut Rng, depth: u32) -> ObservationExpr {
    let choice = if depth == 0 { 0 } else { r.below(5) };
    let items = |r: &mut Rng| (0..2 + r.below(2)).map(|_| gen_obs(r, depth - 1)).collect();
    match choice {
        0 => ObservationExpr::Observation(gen_cmp(r, 2)),
        1 => ObservationExpr::And(items(r)),
        2 => ObservationExpr::Or(items(r)),
        3 => ObservationExpr::FollowedBy(items(r)),
        _ => {
            let mut qualifiers = Vec::new();
            for kind in 0..3 {
                if r.below(2) == 0 {
                    continue;
                }
                qualifiers.push(match kind {
                    0 => Qualifier::Within(if r.below(2) == 0 {
                        concord_pattern::Number::Int(1 + r.below(1000))
                    } else {
                        concord_pattern::Number::Float((1 + r.below(1000)) as f64 / 8.0)
                    }),
                    1 => Qualifier::Repeats(1 + r.below(9)),
                    _ => {
                        let base = r.below(10);
                        Qualifier::StartStop {
                            start: parse_ts(&gen_ts(r, base)),
                            stop: parse_ts(&gen_ts(r, base + 1)),
                        }
                    }
                });
            }
            if qualifiers.is_empty() {
                qualifiers.push(Qualifier::Repeats(2));
            }
            // Shuffle the order of the kinds.
            let len = qualifiers.len();
            qualifiers.rotate_left(r.below(len as u64) as usize);
            ObservationExpr::Qualified {
                expr: Box::new(gen_obs(r, depth - 1)),
                qualifiers,
            }
        }
    }
}

#[test]
fn round_trip_property() {
    let mut r = Rng(0x5EED_C0C0_A11C_E5E5);
    let cases = 3000;
    for i in 0..cases {
        let ast = Pattern {
            expr: gen_obs(&mut r, 3),
        };
        let text = ast.to_string();
        let back =
            parse(&text).unwrap_or_else(|e| panic!("case {i}:\n{}", render_error(&text, &e)));
        assert_eq!(back, ast, "case {i}: {text}");
        assert_eq!(
            back.to_string(),
            text,
            "case {i}: printing is not a fixed point"
        );
    }
    println!("round trip: {cases} generated patterns");
}

#[test]
fn regex_error_message() {
    let obs = [serde_json::json!([
        {"type": "observed-data", "id": "observed-data--1", "first_observed": "2020-01-01T00:00:00Z",
         "last_observed": "2020-01-01T00:00:00Z", "number_observed": 1, "object_refs": ["x-t--1"]},
        {"type": "x-t", "id": "x-t--1", "name": "abc"}
    ])];
    let p = parse("[x-t:name MATCHES 'a(?!b)']").unwrap();
    let e = evaluate(&p, &obs).unwrap_err();
    println!("{e}");
    assert!(e.to_string().contains("look-around"), "{e}");
}

/// A poor man's fuzzer: mutations of every handed vector pattern (byte deletions,
/// duplications and insertions of grammar-relevant characters) must never panic, and whatever
/// parses must print to text that parses back to the same tree and evaluate without panic.
#[test]
fn mutated_vectors_never_panic() {
    let mut seeds: Vec<String> = Vec::new();
    for (file, key) in [("validate.json", "vectors"), ("match.json", "vectors")] {
        for v in load(file)[key].as_array().unwrap() {
            seeds.push(v["pattern"].as_str().unwrap().to_string());
        }
    }
    let inserts = [
        "(",
        ")",
        "[",
        "]",
        "'",
        "\\",
        " AND ",
        " OR ",
        "NOT ",
        "*",
        ".",
        ":",
        "-",
        "t'",
        "h'",
        "b'",
        "/*",
        "//",
        "é",
        "0",
        " WITHIN 1 SECONDS",
        " REPEATS 2 TIMES",
    ];
    let data = load("match.json");
    let obs = data["observation_sets"]["complex/1"]
        .as_array()
        .unwrap()
        .clone();
    let mut r = Rng(0xF0F0_1234_5678_9ABC);
    let mut parsed = 0;
    let rounds = 20;
    for seed in &seeds {
        for _ in 0..rounds {
            let mut s = seed.clone().into_bytes();
            for _ in 0..1 + r.below(3) {
                let at = r.below(s.len() as u64 + 1) as usize;
                match r.below(3) {
                    0 if at < s.len() => {
                        s.remove(at);
                    }
                    1 if at < s.len() => {
                        let b = s[at];
                        s.insert(at, b);
                    }
                    _ => {
                        let ins = r.pick(&inserts).as_bytes();
                        s.splice(at..at, ins.iter().copied());
                    }
                }
            }
            let Ok(text) = String::from_utf8(s) else {
                continue;
            };
            if let Ok(p) = parse(&text) {
                parsed += 1;
                let printed = p.to_string();
                assert_eq!(parse(&printed).as_ref(), Ok(&p), "{text} -> {printed}");
                // Evaluation must not panic either; errors are fine.
                let _ = evaluate(&p, &obs);
            } else if let Err(e) = parse_syntax(&text) {
                assert!(e.offset <= text.len(), "{text}: offset {}", e.offset);
                let _ = render_error(&text, &e);
            }
        }
    }
    println!(
        "mutations: {} tried, {parsed} still valid and round-tripped",
        seeds.len() * rounds
    );
}

/// Twenty observations one second apart; ten `AND`ed copies of one expression that all of
/// them satisfy, but inside a window no ten fit. Without pruning the search would try
/// 20!/10! orders; the window is checked as observations are added, so it fails fast.
#[test]
fn adversarial_within_fails_fast() {
    let data = load("match.json");
    let obs = data["observation_sets"]["complex/2"].as_array().unwrap();
    let p = format!(
        "({}) WITHIN 8 SECONDS",
        ["[person:age < 20]"; 10].join(" AND ")
    );
    let started = std::time::Instant::now();
    let m = evaluate(&parse(&p).unwrap(), obs).unwrap();
    assert!(!m.matched);
    let p = format!(
        "({}) WITHIN 9 SECONDS",
        ["[person:age < 20]"; 10].join(" AND ")
    );
    assert!(evaluate(&parse(&p).unwrap(), obs).unwrap().matched);
    println!("adversarial WITHIN: {:?}", started.elapsed());
}

/// Issue 24, item 8: `START t'X' STOP t'X'` is valid (the window is `>= START` and `< STOP`;
/// STIX 2.1 never requires STOP > START) and matches nothing, even an observation at X or
/// one whose interval spans X; a STOP before START is still refused. A quoted first path
/// component with `-` and `.` is valid and matches the reference's observations.
#[test]
fn empty_windows_and_quoted_first_components() {
    let data = load("match.json");
    let obs = data["observation_sets"]["temporal_qualifiers/1"]
        .as_array()
        .unwrap();
    // alice was observed at 13:37:52.
    let at = "[person:name = 'alice'] START t'1994-11-29T13:37:52Z' STOP t'1994-11-29T13:37:52Z'";
    let p = parse(at).unwrap();
    assert_eq!(p.to_string(), at);
    assert!(!evaluate(&p, obs).unwrap().matched);
    let around =
        "[person:name = 'alice'] START t'1994-11-29T13:37:52Z' STOP t'1994-11-29T13:37:53Z'";
    assert!(evaluate(&parse(around).unwrap(), obs).unwrap().matched);
    // An observation spanning the instant is not in an empty window either.
    let spanning = serde_json::json!([{"type": "bundle", "id": "bundle--6f3b6a1e-2c9d-4e8f-9a0b-1c2d3e4f5a6b",
        "objects": [{"type": "observed-data", "spec_version": "2.1",
            "id": "observed-data--6f3b6a1e-2c9d-4e8f-9a0b-1c2d3e4f5a6c", "number_observed": 1,
            "first_observed": "1994-11-29T13:00:00Z", "last_observed": "1994-11-29T14:00:00Z",
            "object_refs": ["person--c32818e9-032c-4c6d-bfd1-104ff22a69ae"]},
            {"type": "person", "id": "person--c32818e9-032c-4c6d-bfd1-104ff22a69ae", "name": "alice"}]}]);
    let spanning = spanning.as_array().unwrap();
    assert!(!evaluate(&p, spanning).unwrap().matched);
    assert!(evaluate(&parse(around).unwrap(), spanning).unwrap().matched);
    check_err(
        "[a:b = 1] START t'2020-01-01T00:00:00.000000001Z' STOP t'2020-01-01T00:00:00Z'",
        55,
        "STOP must not be earlier than START",
    );
    let quoting = data["observation_sets"]["object_path_quoting/1"]
        .as_array()
        .unwrap();
    for (pattern, matched) in [
        ("[some-type:'has-hyphen.dot' = 3]", true),
        ("[some-type:'has-hyphen' = 1]", true),
        ("[some-type:'has.dot' = 2]", true),
        ("[some-type:'has-hyphen.dot' = 4]", false),
    ] {
        let p = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(p.to_string(), pattern);
        assert_eq!(evaluate(&p, quoting).unwrap().matched, matched, "{pattern}");
    }
    // Unquoted, a name with `-` is still not a property name.
    assert!(parse("[some-type:has-hyphen = 1]").is_err());
}

/// Issue 24, item 11: a literal compared with a property whose type defines a format has that
/// format, as a SHA-256 already had to be a SHA-256 (the cases of the issue first).
#[test]
fn literals_have_the_format_of_their_property() {
    check_err(
        "[ipv4-addr:value = '1.2.3']",
        19,
        "'1.2.3' is not a valid ipv4-addr:value: expected an IPv4 address or CIDR block (STIX 2.1 §6.13)",
    );
    check_err(
        "[ipv4-addr:value = 'pseudo-ip-address-abc']",
        19,
        "'pseudo-ip-address-abc' is not a valid ipv4-addr:value: expected an IPv4 address or CIDR block (STIX 2.1 §6.13)",
    );
    check_err(
        "[ipv4-addr:value IN ('198.51.100.1', '::1')]",
        37,
        "'::1' is not a valid ipv4-addr:value: expected an IPv4 address or CIDR block (STIX 2.1 §6.13)",
    );
    check_err(
        "[ipv6-addr:value != '198.51.100.1']",
        20,
        "'198.51.100.1' is not a valid ipv6-addr:value: expected an IPv6 address or CIDR block (STIX 2.1 §6.14)",
    );
    check_err(
        "[mac-addr:value = 'D2:FB:49:24:37:18']",
        18,
        "'D2:FB:49:24:37:18' is not a valid mac-addr:value: expected a colon-delimited, lower-case MAC-48 address with leading zeros, such as 'd2:fb:49:24:37:18' (STIX 2.1 §6.15)",
    );
    check_err(
        "[ipv4-addr:value = 3]",
        19,
        "3 is not a valid ipv4-addr:value: expected an IPv4 address or CIDR block (STIX 2.1 §6.13)",
    );
    for ok in [
        "[ipv4-addr:value = '198.51.100.1']",
        "[ipv4-addr:value = '198.51.100.0/24']",
        "[ipv4-addr:value IN ('198.51.100.1', '203.0.113.0/24')]",
        "[ipv4-addr:value LIKE '198.51.%']",
        "[ipv4-addr:value MATCHES '^198\\\\.51']",
        "[ipv6-addr:value = '2001:db8::1']",
        "[ipv6-addr:value = '2001:db8::/32']",
        "[mac-addr:value = 'd2:fb:49:24:37:18']",
        "[network-traffic:dst_ref.value = 'anything']",
    ] {
        parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

/// Issue 24, item 9: every observed-data that matches is reported, not one. complex/1 of the
/// OASIS matcher's data: alice (age 10), bob (17), carol (22), one observed-data each.
#[test]
fn every_matching_observed_data_is_reported() {
    let data = load("match.json");
    let obs = data["observation_sets"]["complex/1"].as_array().unwrap();
    let ids: Vec<String> = obs
        .iter()
        .map(|b| b["objects"][0]["id"].as_str().unwrap().to_owned())
        .collect();
    for (pattern, expected) in [
        ("[person:age > 5]", vec![0, 1, 2]),
        ("[person:age > 15]", vec![1, 2]),
        ("[person:name = 'bob']", vec![1]),
        (
            "[person:name = 'alice'] OR [person:name = 'carol']",
            vec![0, 2],
        ),
        (
            "[person:age > 5] AND [person:name = 'carol']",
            vec![0, 1, 2],
        ),
        ("[person:name = 'zelda']", vec![]),
    ] {
        let p = parse(pattern).unwrap();
        let m = concord_pattern::evaluate_all(&p, obs).unwrap();
        let mut got = m.observed_data.clone();
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|&i| ids[i].clone()).collect();
        want.sort();
        assert_eq!(got, want, "{pattern}");
        assert_eq!(m.matched, !want.is_empty(), "{pattern}");
        // The first assignment's bindings, as `evaluate` gives them.
        assert_eq!(m.bindings, evaluate(&p, obs).unwrap().bindings, "{pattern}");
    }
}
