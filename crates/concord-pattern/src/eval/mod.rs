//! Evaluation of a pattern against observed data (STIX 2.1 §9.5–§9.7).
//!
//! Evaluation has two stages. First every observation expression `[ … ]` is decided against
//! every observed-data object: its comparison expression holds if some root object (an SCO in
//! `object_refs`, or a 2.0 embedded object) of the path's type satisfies it, with `AND` and
//! `OR` applied per root object as the reference matcher does. This gives each observation
//! expression a list of candidate observed-data objects.
//!
//! Second, the observation operators and qualifiers are a constraint search: find one
//! assignment of candidates to the pattern's observation expressions such that `AND`ed
//! expressions use distinct observations (an observed-data object counts as
//! `number_observed` observations), `FOLLOWEDBY` operands are in time order, `WITHIN` windows
//! and `START`/`STOP` intervals hold, and `REPEATS n` finds `n` distinct matches. The search is
//! depth-first with continuations, stops at the first full assignment, and breaks the symmetry
//! of repetitions and of equal `AND` operands (one order per set) and checks `WITHIN` and
//! `START`/`STOP` as each observation is added, so failing searches stay small.

pub(crate) mod ip;
mod values;

use std::collections::HashMap;

use serde_json::Value;

use crate::ast::{ComparisonExpr, ObservationExpr, Pattern, Qualifier};
use crate::error::EvalError;
use crate::timestamp::Timestamp;
use values::{CompiledTests, Scope, test_holds};

/// The answer of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    /// Whether the pattern matched.
    pub matched: bool,
    /// Ids of the observed-data objects that satisfied the pattern, in pattern order, each
    /// once. An observed-data object without `id` (2.0 test data) is named
    /// `observations[g].objects[i]` after its place in the input.
    pub observed_data: Vec<String>,
    /// For each observation expression in the satisfying assignment (a `REPEATS n` expression
    /// appears `n` times, the untaken side of an `OR` not at all), the observed-data that
    /// satisfied it.
    pub bindings: Vec<Binding>,
}

/// One observation expression and the observed-data object bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The observation expression in canonical form, e.g. `[file:name = 'a.exe']`.
    pub expression: String,
    /// The id of the observed-data object.
    pub observed_data: String,
}

/// The most search steps one evaluation may take before giving up with
/// [`EvalError::TooComplex`].
const MAX_STEPS: u64 = 20_000_000;
/// The most observations one assignment may hold (bounds the search's recursion).
const MAX_BINDING: usize = 256;

/// One observed-data object, ready for matching.
struct Sdo<'a> {
    id: String,
    first: i128,
    last: i128,
    count: u64,
    roots: Vec<&'a Value>,
    scope: Scope<'a>,
}

/// Evaluates `pattern` against `observations`.
///
/// Each element of `observations` is one group of STIX objects, in any of these shapes:
/// - a bundle `{"type": "bundle", "objects": [...]}`;
/// - a JSON array of objects;
/// - a single observed-data object (STIX 2.0 style, with its SCOs embedded in `objects`).
///
/// Every `observed-data` object in a group is an observation. Its SCOs are those of its
/// `object_refs` (STIX 2.1, looked up by id among the group's objects) and those embedded in
/// its `objects` dictionary (STIX 2.0). `_ref` and `_refs` properties are resolved the same
/// way, within the group; references that do not resolve are ignored (§9.5). All groups
/// together are one set of observations for the observation operators.
pub fn evaluate(pattern: &Pattern, observations: &[Value]) -> Result<Match, EvalError> {
    evaluate_prepared(pattern, &Observations::new(observations)?)
}

/// Observations read once — observed-data found, timestamps parsed, references resolved — for
/// evaluating many patterns against the same data, as a matcher does: [`evaluate`] repeats
/// this work on every call. Input as for [`evaluate`].
pub struct Observations<'a> {
    sdos: Vec<Sdo<'a>>,
}

impl<'a> Observations<'a> {
    /// Reads the observation groups. Errors: as [`evaluate`] for malformed observations.
    pub fn new(observations: &'a [Value]) -> Result<Observations<'a>, EvalError> {
        Ok(Observations {
            sdos: collect(observations)?,
        })
    }

    /// Number of observed-data objects read.
    pub fn len(&self) -> usize {
        self.sdos.len()
    }

    /// Whether no observed-data object was found.
    pub fn is_empty(&self) -> bool {
        self.sdos.is_empty()
    }
}

/// [`evaluate`] over observations read once with [`Observations::new`].
pub fn evaluate_prepared(
    pattern: &Pattern,
    observations: &Observations<'_>,
) -> Result<Match, EvalError> {
    run(pattern, observations, false)
}

/// As [`evaluate`], but [`Match::observed_data`] lists every observed-data object that takes
/// part in some satisfying assignment, not only those of the first one found (issue 24,
/// item 9: `concord pattern match` printed one observed-data where several matched);
/// [`Match::bindings`] is still the first assignment's. The search stops once every
/// observed-data that meets some comparison expression is listed. When the search for more
/// exceeds the evaluator's step budget after a first match, the list holds what was found
/// until then, each of them a true match.
pub fn evaluate_all(pattern: &Pattern, observations: &[Value]) -> Result<Match, EvalError> {
    run(pattern, &Observations::new(observations)?, true)
}

fn run(pattern: &Pattern, observations: &Observations<'_>, all: bool) -> Result<Match, EvalError> {
    let sdos = &observations.sdos;
    let mut leaves = Vec::new();
    let plan = Plan::build(&pattern.expr, &mut leaves);
    let compiled = CompiledTests::compile(&pattern.expr)?;

    let mut candidates = Vec::with_capacity(leaves.len());
    for leaf in &leaves {
        let mut cands = Vec::new();
        for (i, sdo) in sdos.iter().enumerate() {
            let mut hit = false;
            for root in &sdo.roots {
                // No short cut: every test meets every object, so data errors are reported
                // whatever the order of the operands.
                hit |= comparison_holds(leaf, root, &sdo.scope, &compiled)?;
            }
            if hit {
                cands.push(i);
            }
        }
        candidates.push(cands);
    }

    let search = Search {
        sdos,
        candidates: &candidates,
    };
    let mut st = State {
        used: vec![0; sdos.len()],
        constraints: Vec::new(),
        lows: Vec::new(),
        stack: Vec::new(),
        steps: 0,
    };
    let mut found: Option<Vec<(usize, usize)>> = None;
    // With `all`: the observed-data of every assignment, and how many can take part at most.
    let mut taking_part: Vec<usize> = Vec::new();
    let mut seen = vec![false; sdos.len()];
    let possible = {
        let mut any = vec![false; sdos.len()];
        for c in candidates.iter().flatten() {
            any[*c] = true;
        }
        any.iter().filter(|x| **x).count()
    };
    let solved = search.solve(&plan, &mut st, &mut |st: &mut State| {
        if found.is_none() {
            found = Some(st.stack.clone());
        }
        if !all {
            return Ok(true);
        }
        for &(_, sdo) in &st.stack {
            if !seen[sdo] {
                seen[sdo] = true;
                taking_part.push(sdo);
            }
        }
        Ok(taking_part.len() == possible)
    });
    let matched = match solved {
        Ok(m) => m || found.is_some(),
        Err(EvalError::TooComplex { .. }) if all && found.is_some() => true,
        Err(e) => return Err(e),
    };
    let mut result = Match {
        matched,
        ..Match::default()
    };
    for &sdo in &taking_part {
        result.observed_data.push(sdos[sdo].id.clone());
    }
    if let Some(stack) = found {
        for (leaf, sdo) in stack {
            let id = &sdos[sdo].id;
            if !all && !result.observed_data.contains(id) {
                result.observed_data.push(id.clone());
            }
            result.bindings.push(Binding {
                expression: format!("[{}]", leaves[leaf]),
                observed_data: id.clone(),
            });
        }
    }
    Ok(result)
}

fn comparison_holds(
    expr: &ComparisonExpr,
    root: &Value,
    scope: &Scope<'_>,
    compiled: &CompiledTests,
) -> Result<bool, EvalError> {
    Ok(match expr {
        ComparisonExpr::And(items) => {
            let mut all = true;
            for i in items {
                all &= comparison_holds(i, root, scope, compiled)?;
            }
            all
        }
        ComparisonExpr::Or(items) => {
            let mut any = false;
            for i in items {
                any |= comparison_holds(i, root, scope, compiled)?;
            }
            any
        }
        ComparisonExpr::Exists(path) => !values::select(path, root, scope)?.is_empty(),
        ComparisonExpr::Test(t) => test_holds(t, root, scope, compiled)?,
    })
}

fn invalid(group: usize, reason: impl Into<String>) -> EvalError {
    EvalError::InvalidObservations {
        group,
        reason: reason.into(),
    }
}

/// Reads every observed-data object of every group.
fn collect(groups: &[Value]) -> Result<Vec<Sdo<'_>>, EvalError> {
    let mut sdos = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let objects: Vec<&Value> = match group {
            Value::Array(items) => items.iter().collect(),
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bundle") => {
                match m.get("objects") {
                    Some(Value::Array(items)) => items.iter().collect(),
                    None => Vec::new(),
                    Some(_) => return Err(invalid(g, "bundle `objects` is not a list")),
                }
            }
            Value::Object(_) => vec![group],
            _ => {
                return Err(invalid(
                    g,
                    "expected a bundle, a list of objects or an observed-data object",
                ));
            }
        };
        let mut by_id: HashMap<&str, &Value> = HashMap::new();
        for o in &objects {
            if let Some(id) = o.get("id").and_then(Value::as_str) {
                by_id.insert(id, o);
            }
        }
        let by_id = std::sync::Arc::new(by_id);
        for (i, o) in objects.iter().enumerate() {
            if o.get("type").and_then(Value::as_str) != Some("observed-data") {
                continue;
            }
            let id = o
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("observations[{g}].objects[{i}]"));
            let time = |key: &str| -> Result<i128, EvalError> {
                let s = o.get(key).and_then(Value::as_str).ok_or_else(|| {
                    invalid(g, format!("{id}: `{key}` is missing or not a string"))
                })?;
                Timestamp::parse(s, true)
                    .map(|t| t.nanos())
                    .map_err(|e| invalid(g, format!("{id}: `{key}` {s:?}: {}", e.message)))
            };
            let first = time("first_observed")?;
            let last = time("last_observed")?;
            if last < first {
                return Err(invalid(
                    g,
                    format!("{id}: last_observed is before first_observed"),
                ));
            }
            let count = o
                .get("number_observed")
                .and_then(Value::as_u64)
                .filter(|&n| n >= 1)
                .ok_or_else(|| {
                    invalid(
                        g,
                        format!("{id}: `number_observed` must be an integer >= 1"),
                    )
                })?;
            let mut scope = Scope::new(std::sync::Arc::clone(&by_id));
            let mut roots = Vec::new();
            if let Some(Value::Object(embedded)) = o.get("objects") {
                for (k, v) in embedded {
                    scope.insert(k, v);
                    roots.push(v);
                }
            }
            if let Some(Value::Array(refs)) = o.get("object_refs") {
                for r in refs.iter().filter_map(Value::as_str) {
                    if let Some(v) = by_id.get(r) {
                        roots.push(*v);
                    }
                }
            }
            sdos.push(Sdo {
                id,
                first,
                last,
                count,
                roots,
                scope,
            });
        }
    }
    Ok(sdos)
}

/// The observation level of a pattern, with leaves numbered.
enum Plan {
    Leaf(usize),
    /// Operands, and for each the index of an earlier operand equal to it: equal operands are
    /// interchangeable, so only one order of their assignments is searched.
    And(Vec<Plan>, Vec<Option<usize>>),
    Or(Vec<Plan>),
    FollowedBy(Vec<Plan>),
    Qualified(Box<Plan>, Vec<QualPlan>),
}

#[derive(Clone, Copy)]
enum QualPlan {
    Within(i128),
    Repeats(u64),
    StartStop(i128, i128),
}

impl Plan {
    fn build<'p>(e: &'p ObservationExpr, leaves: &mut Vec<&'p ComparisonExpr>) -> Plan {
        let all = |items: &'p [ObservationExpr], leaves: &mut Vec<&'p ComparisonExpr>| {
            items.iter().map(|i| Plan::build(i, leaves)).collect()
        };
        match e {
            ObservationExpr::Observation(c) => {
                leaves.push(c);
                Plan::Leaf(leaves.len() - 1)
            }
            ObservationExpr::And(items) => {
                let twins = (0..items.len())
                    .map(|j| (0..j).rev().find(|&i| items[i] == items[j]))
                    .collect();
                Plan::And(all(items, leaves), twins)
            }
            ObservationExpr::Or(items) => Plan::Or(all(items, leaves)),
            ObservationExpr::FollowedBy(items) => Plan::FollowedBy(all(items, leaves)),
            ObservationExpr::Qualified { expr, qualifiers } => Plan::Qualified(
                Box::new(Plan::build(expr, leaves)),
                qualifiers
                    .iter()
                    .map(|q| match q {
                        Qualifier::Within(n) => QualPlan::Within(n.nanos()),
                        Qualifier::Repeats(n) => QualPlan::Repeats(*n),
                        Qualifier::StartStop { start, stop } => {
                            QualPlan::StartStop(start.nanos(), stop.nanos())
                        }
                    })
                    .collect(),
            ),
        }
    }
}

/// A temporal constraint in force while an expression's assignment is being built: checked
/// as each observation is added, so hopeless partial assignments are cut early (both only
/// get harder to satisfy as observations are added).
#[derive(Clone, Copy)]
enum Constraint {
    /// WITHIN: the observations from stack index `mark` on fit a window of `nanos`.
    Window { mark: usize, nanos: i128 },
    /// START/STOP: every observation from `mark` on meets `[start, stop)`.
    Interval { start: i128, stop: i128 },
}

struct State {
    /// How many observations of each observed-data object the assignment uses.
    used: Vec<u64>,
    /// Constraints of the qualifiers whose expressions are being assigned.
    constraints: Vec<Constraint>,
    /// Smallest observed-data index of each finished operand of the `AND`s in progress.
    lows: Vec<usize>,
    /// The assignment so far: (leaf, observed-data index).
    stack: Vec<(usize, usize)>,
    steps: u64,
}

type Cont<'k> = dyn FnMut(&mut State) -> Result<bool, EvalError> + 'k;

struct Search<'s, 'a> {
    sdos: &'s [Sdo<'a>],
    candidates: &'s [Vec<usize>],
}

impl Search<'_, '_> {
    fn max_first(&self, part: &[(usize, usize)]) -> i128 {
        part.iter()
            .map(|&(_, s)| self.sdos[s].first)
            .max()
            .unwrap_or(i128::MIN)
    }

    fn min_last(&self, part: &[(usize, usize)]) -> i128 {
        part.iter()
            .map(|&(_, s)| self.sdos[s].last)
            .min()
            .unwrap_or(i128::MAX)
    }

    /// Calls `k` for each assignment of `plan` extending `st`, until `k` says `true`.
    fn solve(&self, plan: &Plan, st: &mut State, k: &mut Cont<'_>) -> Result<bool, EvalError> {
        match plan {
            Plan::Leaf(leaf) => {
                for &s in &self.candidates[*leaf] {
                    st.steps += 1;
                    if st.steps > MAX_STEPS {
                        return Err(EvalError::TooComplex {
                            reason: format!("more than {MAX_STEPS} search steps"),
                        });
                    }
                    if st.used[s] >= self.sdos[s].count {
                        continue;
                    }
                    if st.stack.len() >= MAX_BINDING {
                        return Err(EvalError::TooComplex {
                            reason: format!("more than {MAX_BINDING} observations in one match"),
                        });
                    }
                    st.used[s] += 1;
                    st.stack.push((*leaf, s));
                    let ok = if self.constraints_hold(st) {
                        k(st)
                    } else {
                        Ok(false)
                    };
                    st.stack.pop();
                    st.used[s] -= 1;
                    if ok? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Plan::And(items, twins) => {
                let base = st.lows.len();
                self.solve_and(items, twins, 0, base, st, k)
            }
            Plan::Or(items) => {
                for item in items {
                    if self.solve(item, st, k)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Plan::FollowedBy(items) => {
                let mark = st.stack.len();
                self.solve(&items[0], st, &mut |st: &mut State| {
                    self.followed_by(&items[1..], mark, st, k)
                })
            }
            Plan::Qualified(expr, quals) => self.solve_qualified(expr, quals, st, k),
        }
    }

    /// Whether the newest observation keeps every constraint in force.
    fn constraints_hold(&self, st: &State) -> bool {
        let Some(&(_, s)) = st.stack.last() else {
            return true;
        };
        let o = &self.sdos[s];
        st.constraints.iter().all(|c| match *c {
            // An empty window (`START t'X' STOP t'X'`, valid: issue 24, item 8) meets nothing.
            Constraint::Interval { start, stop } => {
                start < stop && o.first < stop && o.last >= start
            }
            Constraint::Window { mark, nanos } => {
                let part = &st.stack[mark..];
                self.max_first(part) <= self.min_last(part).saturating_add(nanos)
            }
        })
    }

    /// Runs `inner` with a constraint in force for the expression's own observations only:
    /// it is lifted while the continuation extends the assignment beyond the expression.
    fn constrained(
        &self,
        c: Constraint,
        st: &mut State,
        inner: &mut dyn FnMut(&mut State, &mut Cont<'_>) -> Result<bool, EvalError>,
        k: &mut Cont<'_>,
    ) -> Result<bool, EvalError> {
        st.constraints.push(c);
        let r = inner(st, &mut |st: &mut State| {
            let c = st.constraints.pop().expect("own constraint on top");
            let r = k(st);
            st.constraints.push(c);
            r
        });
        st.constraints.pop();
        r
    }

    /// `AND` operands in order; an operand equal to an earlier one must start at an
    /// observed-data index no lower than that one's (one order per set of assignments).
    fn solve_and(
        &self,
        items: &[Plan],
        twins: &[Option<usize>],
        j: usize,
        base: usize,
        st: &mut State,
        k: &mut Cont<'_>,
    ) -> Result<bool, EvalError> {
        if j == items.len() {
            return k(st);
        }
        let mark = st.stack.len();
        self.solve(&items[j], st, &mut |st: &mut State| {
            let low = st.stack[mark..]
                .iter()
                .map(|&(_, s)| s)
                .min()
                .unwrap_or(usize::MAX);
            if twins[j].is_some_and(|i| low < st.lows[base + i]) {
                return Ok(false);
            }
            st.lows.push(low);
            let r = self.solve_and(items, twins, j + 1, base, st, k);
            st.lows.pop();
            r
        })
    }

    /// The operands after the first of a FOLLOWEDBY chain: each must have a `last_observed`
    /// no earlier than every `first_observed` before it (§9.5; the reference matcher's
    /// optimistic choice of timestamps within each interval).
    fn followed_by(
        &self,
        rest: &[Plan],
        mark: usize,
        st: &mut State,
        k: &mut Cont<'_>,
    ) -> Result<bool, EvalError> {
        let Some((next, rest)) = rest.split_first() else {
            return k(st);
        };
        let m = st.stack.len();
        self.solve(next, st, &mut |st: &mut State| {
            if self.max_first(&st.stack[mark..m]) <= self.min_last(&st.stack[m..]) {
                self.followed_by(rest, mark, st, k)
            } else {
                Ok(false)
            }
        })
    }

    /// Qualifiers apply innermost first: the last one wraps the others.
    fn solve_qualified(
        &self,
        expr: &Plan,
        quals: &[QualPlan],
        st: &mut State,
        k: &mut Cont<'_>,
    ) -> Result<bool, EvalError> {
        let Some((&last, inner)) = quals.split_last() else {
            return self.solve(expr, st, k);
        };
        let mark = st.stack.len();
        match last {
            // §9.6 WITHIN: some window of the given length meets every observation's
            // [first_observed, last_observed] interval.
            QualPlan::Within(nanos) => self.constrained(
                Constraint::Window { mark, nanos },
                st,
                &mut |st, k| self.solve_qualified(expr, inner, st, k),
                k,
            ),
            // §9.6 START/STOP: every observation's interval meets [start, stop).
            QualPlan::StartStop(start, stop) => self.constrained(
                Constraint::Interval { start, stop },
                st,
                &mut |st, k| self.solve_qualified(expr, inner, st, k),
                k,
            ),
            QualPlan::Repeats(n) => {
                let capacity: u64 = self
                    .sdos
                    .iter()
                    .map(|s| s.count)
                    .fold(0u64, u64::saturating_add);
                if n > capacity {
                    return Ok(false);
                }
                self.repeat(expr, inner, n, 0, st, k)
            }
        }
    }

    /// `REPEATS n`: `n` assignments of the inner expression on distinct observations. They
    /// are searched with non-decreasing smallest observed-data index, one order per set.
    fn repeat(
        &self,
        expr: &Plan,
        inner: &[QualPlan],
        n: u64,
        min_sdo: usize,
        st: &mut State,
        k: &mut Cont<'_>,
    ) -> Result<bool, EvalError> {
        if n == 0 {
            return k(st);
        }
        let mark = st.stack.len();
        self.solve_qualified(expr, inner, st, &mut |st: &mut State| {
            let lowest = st.stack[mark..]
                .iter()
                .map(|&(_, s)| s)
                .min()
                .unwrap_or(usize::MAX);
            if lowest >= min_sdo {
                self.repeat(expr, inner, n - 1, lowest, st, k)
            } else {
                Ok(false)
            }
        })
    }
}
