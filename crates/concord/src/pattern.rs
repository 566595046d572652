//! `concord pattern check` and `concord pattern match` (STIX 2.1 §9).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

/// `concord pattern …`.
#[derive(Subcommand)]
pub enum PatternCommand {
    /// Check patterns: prints `ok` or the error with a caret under its offset; exit status 1
    /// when any pattern is invalid.
    Check {
        /// The pattern, or `-` to read one pattern per line from stdin.
        pattern: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a pattern against observed-data: exit status 0 on match, 1 on no match, 2 on
    /// an invalid pattern or an evaluation error.
    Match {
        /// The pattern.
        pattern: String,
        /// Bundles of observed-data with the SCOs they refer to (`-` for stdin, `.gz` ok);
        /// all files together are one set of observations.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `pattern` subcommand; `Ok(false)` is a negative answer (exit 1).
pub fn run(command: PatternCommand) -> Result<bool> {
    match command {
        PatternCommand::Check { pattern, json } => check(&pattern, json),
        PatternCommand::Match {
            pattern,
            files,
            json,
        } => matches(&pattern, &files, json),
    }
}

fn check(pattern: &str, json: bool) -> Result<bool> {
    // (line number, pattern); blank lines are skipped but keep their numbers.
    let patterns: Vec<(usize, String)> = if pattern == "-" {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<Vec<_>>>()
            .context("cannot read stdin")?
            .into_iter()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, l))
            .collect()
    } else {
        vec![(1, pattern.to_owned())]
    };
    let mut all_ok = true;
    let mut report = Vec::new();
    for (line, p) in &patterns {
        let result = concord_pattern::parse(p);
        all_ok &= result.is_ok();
        if json {
            report.push(match &result {
                Ok(_) => serde_json::json!({ "line": line, "pattern": p, "valid": true }),
                Err(e) => serde_json::json!({
                    "line": line, "pattern": p, "valid": false,
                    "error": { "offset": e.offset, "message": e.message },
                }),
            });
        } else {
            match &result {
                Ok(_) => out!("ok"),
                Err(e) => {
                    if patterns.len() > 1 {
                        out!("line {line}: invalid pattern");
                    }
                    out!("{}", concord_pattern::render_error(p, e));
                }
            }
        }
    }
    if json {
        out!("{}", serde_json::Value::Array(report));
    }
    Ok(all_ok)
}

fn matches(pattern: &str, files: &[PathBuf], json: bool) -> Result<bool> {
    let parsed = match concord_pattern::parse(pattern) {
        Ok(p) => p,
        Err(e) => bail!(
            "invalid pattern:\n{}",
            concord_pattern::render_error(pattern, &e)
        ),
    };
    let mut observations = Vec::new();
    for f in files {
        let input = crate::transfer::open_input(f)?;
        let value: serde_json::Value = serde_json::from_reader(std::io::BufReader::new(input))
            .with_context(|| format!("{}: not JSON", f.display()))?;
        observations.push(value);
    }
    // Every observed-data that matches, not only the first assignment's (issue 24, item 9).
    let m = concord_pattern::evaluate_all(&parsed, &observations)
        .map_err(|e| anyhow::anyhow!("evaluation error: {e}"))?;
    if json {
        out!(
            "{}",
            serde_json::json!({ "match": m.matched, "observed_data": m.observed_data })
        );
    } else if m.matched {
        out!("match");
        for id in &m.observed_data {
            out!("{id}");
        }
    } else {
        out!("no match");
    }
    Ok(m.matched)
}
