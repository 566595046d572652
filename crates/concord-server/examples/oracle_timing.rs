//! Timing oracle F2 (issue 15): can a partner tell, by the time of the answer alone, an
//! object that exists but is withheld from it from one that does not exist?
//!
//! A real node (SQLite file in a temporary directory, TAXII on loopback) holds a collection
//! shared as TLP:CLEAR with TLP:RED indicators (withheld from every partner) and e-mail
//! address SCOs (pseudonymised for a partner abroad, so their *stored* ids find nothing).
//! A partner in another jurisdiction, with read and write access, then asks about withheld
//! ids and about ids that exist nowhere, interleaved in a random order on one keep-alive
//! connection, on each door that takes an id:
//!
//! - `object`: `GET …/objects/{id}/`
//! - `versions`: `GET …/objects/{id}/versions/`
//! - `objects-match`: `GET …/objects/?match[id]={id}`
//! - `manifest-match`: `GET …/manifest/?match[id]={id}`
//! - `delete`: `DELETE …/objects/{id}/`
//!
//! For each door and kind of withheld object (RED indicator, stored SCO id) it prints the
//! median and p90 of both sides (µs, from the first byte written to the last byte read), the
//! two-sample Kolmogorov–Smirnov distance with its asymptotic p-value, the Mann–Whitney U
//! test's z and two-sided p-value, and the accuracy of the best single threshold between
//! the two samples (0.5: no better than a coin). The answers themselves must be equal
//! (status and body once the id is replaced): the tool stops if they are not.
//!
//! ```text
//! cargo run --release -p concord-server --example oracle_timing
//! ```
//!
//! Environment: `ORACLE_SAMPLES` (per side and case, default 2000), `ORACLE_ONLY` (a door
//! name), `ORACLE_FLOOR_MS` (the node's `[limits] answer_floor_ms`, its default
//! otherwise), `ORACLE_JITTER_MS` (`[limits] answer_jitter_ms`).

// The node and client of the test `tests/answer_floor.rs`, shared rather than copied.
#[allow(dead_code)]
#[path = "../tests/support/oracle.rs"]
mod oracle;

use concord_server::Limits;
use oracle::Client;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A small xorshift for the order of the pairs and the missing ids.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Two-sample Kolmogorov–Smirnov: (D, asymptotic p-value).
fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    let (n, m) = (a.len() as f64, b.len() as f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let ne = n * m / (n + m);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    // Q_KS(λ) = 2 Σ (-1)^{k-1} e^{-2k²λ²}
    let mut p = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        p += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    (d, p.clamp(0.0, 1.0))
}

/// Mann–Whitney U with the normal approximation (ties averaged): (z, two-sided p).
fn mann_whitney(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_a = 0.0;
    let mut i = 0;
    let mut ties = 0.0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        for x in &all[i..=j] {
            if x.1 {
                rank_a += r;
            }
        }
        i = j + 1;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))).sqrt();
    let z = (u - n1 * n2 / 2.0) / sigma;
    (z, erfc(z.abs() / std::f64::consts::SQRT_2))
}

/// erfc (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { y } else { 2.0 - y }
}

/// The best accuracy of one threshold telling `a` (withheld) from `b` (missing).
fn threshold_accuracy(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    // Below the cut: guess "missing"; above: "withheld" (and the other way round).
    let (mut below_a, mut below_b, mut best) = (0.0, 0.0, 0.5f64);
    for (_, is_a) in &all {
        if *is_a {
            below_a += 1.0;
        } else {
            below_b += 1.0;
        }
        let acc = 0.5 * (below_b / n2 + (n1 - below_a) / n1);
        best = best.max(acc).max(1.0 - acc);
    }
    best
}

fn main() {
    let samples = env_usize("ORACLE_SAMPLES").unwrap_or(2000);
    let only = std::env::var("ORACLE_ONLY").ok();
    let mut limits = Limits::default();
    if let Some(ms) = env_usize("ORACLE_FLOOR_MS") {
        limits.answer_floor_ms = ms as u64;
    }
    if let Some(ms) = env_usize("ORACLE_JITTER_MS") {
        limits.answer_jitter_ms = ms as u64;
    }
    let (floor, jitter) = (limits.answer_floor_ms, limits.answer_jitter_ms);
    let node = oracle::node(limits);
    let mut client = Client::new(node.addr, &node.key);
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    println!(
        "oracle_timing: {samples} samples a side, answer_floor_ms = {floor}, answer_jitter_ms = {jitter}"
    );
    println!(
        "{:<15} {:<7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>7} {:>9} {:>6}",
        "door",
        "held",
        "med held",
        "med miss",
        "p90 held",
        "p90 miss",
        "KS D",
        "KS p",
        "MW z",
        "MW p",
        "acc"
    );
    for (name, method, path) in oracle::DOORS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for (kind, ids) in [("RED", &node.red), ("SCO id", &node.scos)] {
            let missing = |r: &mut Rng| {
                if kind == "RED" {
                    oracle::missing_indicator_id(r.next(), r.next())
                } else {
                    oracle::missing_sco_id(r.next(), r.next())
                }
            };
            // Warm both paths up (caches, the connection).
            for i in 0..50 {
                client.exchange(method, &path(&ids[i % ids.len()]));
                client.exchange(method, &path(&missing(&mut rng)));
            }
            let (mut held, mut miss) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
            for i in 0..samples {
                let w = &ids[i % ids.len()];
                let m = missing(&mut rng);
                let ask = |client: &mut Client, id: &str| {
                    let a = client.exchange(method, &path(id));
                    (a.status, a.body.replace(id, "<id>"), a.micros)
                };
                // Interleaved, in a random order.
                let (a, b) = if rng.next() & 1 == 0 {
                    let a = ask(&mut client, w);
                    (a, ask(&mut client, &m))
                } else {
                    let b = ask(&mut client, &m);
                    (ask(&mut client, w), b)
                };
                assert_eq!(
                    (a.0, &a.1),
                    (b.0, &b.1),
                    "{name}: the answers for {w} (withheld) and {m} (missing) differ"
                );
                held.push(a.2);
                miss.push(b.2);
            }
            held.sort_by(f64::total_cmp);
            miss.sort_by(f64::total_cmp);
            let (d, ks_p) = ks(&held, &miss);
            let (z, mw_p) = mann_whitney(&held, &miss);
            println!(
                "{:<15} {:<7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.3} {:>9.2e} {:>7.2} {:>9.2e} {:>6.3}",
                name,
                kind,
                quantile(&held, 0.5),
                quantile(&miss, 0.5),
                quantile(&held, 0.9),
                quantile(&miss, 0.9),
                d,
                ks_p,
                z,
                mw_p,
                threshold_accuracy(&held, &miss)
            );
        }
    }
}
