//! Precision and recall per category on `data/pii_labelled.jsonl`.

use std::collections::BTreeMap;

use concord_policy::pii::Category;
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    /// A line of prose, scanned with `scan_text`; or
    #[serde(default)]
    text: Option<String>,
    /// a JSON object, scanned with `scan_object` (keys and numbers included).
    #[serde(default)]
    object: Option<serde_json::Value>,
    lang: String,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Span {
    category: Category,
    value: String,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
}

impl Counts {
    fn precision(self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fp)
        }
    }
    fn recall(self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(self.tp + self.fn_)
        }
    }
}

/// The floors this set must meet. Chosen from the measured values (README) with a margin for
/// one or two new misses, not as aspirations.
const PRECISION_FLOOR: f64 = 0.95;
const RECALL_FLOOR: f64 = 0.95;

/// Scores one labelled file; prints the tables; returns the counts per category.
fn evaluate(file: &str) -> (BTreeMap<Category, Counts>, Vec<String>, usize) {
    let data = std::fs::read_to_string(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let d = super::detectors();
    let mut counts: BTreeMap<Category, Counts> = BTreeMap::new();
    let mut by_lang: BTreeMap<String, Counts> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut lines = 0;
    for (n, raw) in data.lines().enumerate() {
        let line: Line =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        lines += 1;
        let mut expected: Vec<(Category, String)> = line
            .spans
            .iter()
            .map(|s| (s.category, s.value.clone()))
            .collect();
        let lang = by_lang.entry(line.lang.clone()).or_default();
        let found: Vec<concord_policy::pii::Finding> = match (&line.text, &line.object) {
            (Some(text), _) => d
                .scan_text(text)
                .into_iter()
                .inspect(|f| assert_eq!(&text[f.start..f.end], f.value))
                .collect(),
            (None, Some(object)) => d
                .scan_object(object)
                .into_iter()
                .map(|f| f.finding)
                .collect(),
            (None, None) => panic!("line {}: neither text nor object", n + 1),
        };
        for f in found {
            let c = counts.entry(f.category).or_default();
            if let Some(i) = expected
                .iter()
                .position(|(cat, v)| *cat == f.category && *v == f.value)
            {
                expected.swap_remove(i);
                c.tp += 1;
                lang.tp += 1;
            } else {
                c.fp += 1;
                lang.fp += 1;
                errors.push(format!("line {} FP {} {:?}", n + 1, f.category, f.value));
            }
        }
        for (cat, v) in expected {
            counts.entry(cat).or_default().fn_ += 1;
            lang.fn_ += 1;
            errors.push(format!("line {} FN {cat} {v:?}", n + 1));
        }
    }
    println!("{file}: {lines} lines\n");
    println!("| category | TP | FP | FN | precision | recall |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut total = Counts::default();
    for (cat, c) in &counts {
        println!(
            "| {cat} | {} | {} | {} | {:.3} | {:.3} |",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    println!(
        "| **all** | {} | {} | {} | {:.3} | {:.3} |",
        total.tp,
        total.fp,
        total.fn_,
        total.precision(),
        total.recall()
    );
    println!("\n| language | TP | FP | FN | precision | recall |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (lang, c) in &by_lang {
        println!(
            "| {lang} | {} | {} | {} | {:.3} | {:.3} |",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
    }
    println!();
    for e in &errors {
        println!("{e}");
    }
    println!();
    (counts, errors, lines)
}

#[test]
fn precision_and_recall_per_category() {
    let (counts, errors, lines) = evaluate("pii_labelled.jsonl");
    assert!(lines >= 150, "the labelled set has {lines} lines");
    for (cat, c) in &counts {
        assert!(
            c.precision() >= PRECISION_FLOOR && c.recall() >= RECALL_FLOOR,
            "{cat}: precision {:.3}, recall {:.3}; errors:\n{}",
            c.precision(),
            c.recall(),
            errors.join("\n")
        );
    }
    for cat in [
        Category::Email,
        Category::Phone,
        Category::IpAddress,
        Category::NationalId,
        Category::PaymentCard,
        Category::Iban,
    ] {
        assert!(counts[&cat].tp >= 10, "{cat} needs at least 10 positives");
    }
}

/// The held-out set was written after the rules were frozen and scored once; its floor is
/// what that one measurement supports (see the README), not a target.
const HELDOUT_FLOOR: f64 = 0.70;

#[test]
fn held_out_set() {
    let (counts, errors, _) = evaluate("pii_heldout.jsonl");
    let mut total = Counts::default();
    for c in counts.values() {
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    assert!(
        total.precision() >= HELDOUT_FLOOR && total.recall() >= HELDOUT_FLOOR,
        "held-out: precision {:.3}, recall {:.3}\n{}",
        total.precision(),
        total.recall(),
        errors.join("\n")
    );
}
