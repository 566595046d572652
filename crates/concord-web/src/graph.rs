//! The relationship graph's drawing, laid out on the server (issue 25, item 5): layered,
//! deterministic, and with labels that cannot overlap.
//!
//! - **Layers.** The start object is layer 0; every other object sits in the layer of its
//!   distance from it (breadth-first over the drawn references). A layer is drawn as one or
//!   more columns of at most `rows` objects, one object a row, so two labels never share a
//!   row of a column, and a label is cut to the width of its column ([`LABEL_UNITS`]).
//!   `rows` is chosen so that the drawing is about twice as wide as high, the shape of a
//!   screen.
//! - **Order.** Inside a layer, objects follow the mean row of their neighbours in the
//!   layer before (the barycentre heuristic), which keeps most edges short and uncrossed;
//!   ties by type, then name, then id, so the same data draws the same picture.
//! - **Fan-outs.** More than [`FANOUT`] objects of one type that hang from one object
//!   only (nothing else in the drawing refers to them or from them) are drawn as one group
//!   node, "N × type". A group is a link to the same graph with that group expanded
//!   (`?expand=KEY`): the layout is computed again, so an expanded group is laid out like
//!   everything else.
//! - **Edges** carry their relationship type (or reference property): once per object and
//!   label, where the edges leave the object, and on each edge as its `<title>`.
//!
//! Coordinates are SVG user units; the `viewBox` is the drawing's box plus a margin, so
//! nothing is cut. The drawing is shown at one CSS pixel per user unit (the `svg` element's
//! `width` and `height` are the `viewBox`'s), in a box that scrolls: a large drawing is not
//! shrunk to fit the view, so its labels keep their size on screen, at least
//! [`MIN_LABEL_PX`] (node labels 12 px, edge labels 11 px; the page walk measures them).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A group is made of more than this many leaf objects of one type around one object.
pub const FANOUT: usize = 12;
/// Width of a column: the node, its label, the edge labels and the gap to the next column.
pub const COLUMN: u32 = 250;
/// Height of a row.
pub const ROW: u32 = 26;
/// Space around the drawing.
pub const MARGIN: u32 = 24;
/// Radius of a node (the start node's is [`START_R`]).
pub const NODE_R: u32 = 7;
/// Radius of the start node.
pub const START_R: u32 = 11;
/// How wide a label may be, in units of about one Latin character at the label's font
/// size (a CJK or other wide character counts two): 22 units are about 150 user units at
/// 12 px, which leaves the rest of the column to the edge labels and the gap.
pub const LABEL_UNITS: usize = 22;
/// User units per label unit (12 px sans-serif averages under 7 per Latin character).
pub const UNIT_W: u32 = 7;
/// The smallest font size of a label on screen, in CSS pixels: the edge labels' (node
/// labels are 12). Since a user unit is drawn as one pixel, it is also their size in user
/// units (`style.css`).
pub const MIN_LABEL_PX: u32 = 11;

/// An object to draw.
#[derive(Clone, Debug)]
pub struct Input {
    /// The id the viewer knows.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its STIX type.
    pub object_type: String,
    /// Its object page.
    pub href: String,
}

/// A drawn node: an object, or a group of objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The object's id, or for a group its key (`PARENT.TYPE`).
    pub id: String,
    /// The full name (the group's is `N × type`).
    pub name: String,
    /// The label drawn (cut to [`LABEL_UNITS`]).
    pub label: String,
    /// STIX type (a group's members' type).
    pub object_type: String,
    /// Object page, or for a group the graph with the group expanded.
    pub href: String,
    /// Centre.
    pub x: u32,
    /// Centre.
    pub y: u32,
    /// Radius.
    pub r: u32,
    /// The start object.
    pub start: bool,
    /// The number of objects of a group (`None`: one object).
    pub group: Option<usize>,
    /// Fill colour, by type.
    pub colour: &'static str,
}

impl Node {
    /// Where the label starts.
    pub fn label_x(&self) -> u32 {
        self.x + self.r + 5
    }

    /// The label's baseline.
    pub fn label_y(&self) -> u32 {
        self.y + 4
    }
}

/// A drawn edge: an SVG path from one node to another, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgePath {
    /// The `d` attribute.
    pub d: String,
    /// The relationship type or reference property.
    pub label: String,
    /// `source → target` as the reference runs, for the `<title>`.
    pub title: String,
    /// The arrow is at the path's end (else at its start).
    pub forward: bool,
}

/// A label of the edges that leave one node with one relationship type.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeLabel {
    /// Start of the text.
    pub x: u32,
    /// Baseline.
    pub y: u32,
    /// The relationship type.
    pub text: String,
}

/// The laid-out graph.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Nodes, the start first.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<EdgePath>,
    /// Edge labels.
    pub edge_labels: Vec<EdgeLabel>,
    /// `viewBox` width.
    pub width: u32,
    /// `viewBox` height.
    pub height: u32,
    /// Groups drawn collapsed: their keys.
    pub groups: Vec<String>,
    /// Groups drawn as their objects (keys of `expanded` that name a group).
    pub opened: Vec<String>,
}

/// The colour of a STIX type, stable for a type (a hash into a palette that keeps 3:1
/// against the white background).
pub fn colour(object_type: &str) -> &'static str {
    const PALETTE: [&str; 12] = [
        "#1d4e89", "#2a7d74", "#c4452a", "#6a4c93", "#4f7a3a", "#c9184a", "#3f6f8f", "#8a5a68",
        "#a65d00", "#264653", "#7f5230", "#3d6b3a",
    ];
    let mut h: u32 = 0;
    for b in object_type.bytes() {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    PALETTE[h as usize % PALETTE.len()]
}

/// Label units of one character: two for wide (CJK, Hangul, full-width) characters.
fn units(c: char) -> usize {
    let wide = matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF |
        0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// `s` cut to at most `max` units, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    let total: usize = s.chars().map(units).sum();
    if total <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + units(c) > max - 1 {
            break;
        }
        used += units(c);
        out.push(c);
    }
    out.push('…');
    out
}

/// The label's width as [`UNIT_W`] estimates it.
fn label_width(label: &str) -> u32 {
    label.chars().map(units).sum::<usize>() as u32 * UNIT_W
}

/// Lays out `objects` (the start first) joined by `edges` (`(from, to, label)` as indexes
/// into `objects`, in the reference's direction). `expanded`: the keys of groups to draw as
/// their objects. `group_href`: the link of a group node, from the expanded keys it adds.
pub fn layout(
    objects: &[Input],
    edges: &[(usize, usize, String)],
    expanded: &BTreeSet<String>,
    group_href: impl Fn(&BTreeSet<String>) -> String,
) -> Layout {
    let n = objects.len();
    if n == 0 {
        return Layout::default();
    }
    let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (a, b, _) in edges {
        if a != b && *a < n && *b < n {
            adj[*a].insert(*b);
            adj[*b].insert(*a);
        }
    }
    // Layers: breadth-first from the start; what is not reached goes one layer past the rest.
    let mut layer = vec![usize::MAX; n];
    layer[0] = 0;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(u) = queue.pop_front() {
        for &v in &adj[u] {
            if layer[v] == usize::MAX {
                layer[v] = layer[u] + 1;
                queue.push_back(v);
            }
        }
    }
    let deepest = layer
        .iter()
        .filter(|l| **l != usize::MAX)
        .max()
        .copied()
        .unwrap_or(0);
    for l in &mut layer {
        if *l == usize::MAX {
            *l = deepest + 1;
        }
    }

    // Groups: leaves of one type under one parent, more than FANOUT of them.
    let mut by_parent: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for v in 1..n {
        if adj[v].len() == 1
            && let Some(&u) = adj[v].iter().next()
            && layer[u] < layer[v]
        {
            by_parent
                .entry((u, objects[v].object_type.as_str()))
                .or_default()
                .push(v);
        }
    }
    // Node list: objects not in a collapsed group, then one node per collapsed group.
    // member -> its group's node index
    let mut in_group: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<(String, usize, &str, Vec<usize>)> = Vec::new();
    let mut opened: Vec<String> = Vec::new();
    for ((u, t), members) in by_parent {
        let key = format!("{}.{t}", objects[u].id);
        if members.len() > FANOUT && expanded.contains(&key) {
            opened.push(key);
        } else if members.len() > FANOUT {
            let g = n + groups.len();
            for m in &members {
                in_group.insert(*m, g);
            }
            groups.push((key, u, t, members));
        }
    }
    let total = n + groups.len();
    let node_of = |i: usize| in_group.get(&i).copied().unwrap_or(i);
    let visible: Vec<usize> = (0..total)
        .filter(|i| *i >= n || !in_group.contains_key(i))
        .collect();
    let mut layer_of = layer.clone();
    for (_, u, _, _) in &groups {
        layer_of.push(layer[*u] + 1);
    }
    // Edges between drawn nodes, once per (pair, label).
    let mut drawn: BTreeSet<(usize, usize, String)> = BTreeSet::new();
    for (a, b, label) in edges {
        let (a, b) = (node_of(*a), node_of(*b));
        if a != b && a.max(b) < total {
            drawn.insert((a, b, label.clone()));
        }
    }
    let mut nadj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); total];
    for (a, b, _) in &drawn {
        nadj[*a].insert(*b);
        nadj[*b].insert(*a);
    }

    // Order inside layers: barycentre of the neighbours in the layer before.
    let layers = layer_of.iter().copied().max().unwrap_or(0) + 1;
    let mut by_layer: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &i in &visible {
        by_layer[layer_of[i]].push(i);
    }
    let sort_key = |i: usize| -> (String, String, String) {
        if i < n {
            (
                objects[i].object_type.clone(),
                objects[i].name.clone(),
                objects[i].id.clone(),
            )
        } else {
            let (key, _, t, _) = &groups[i - n];
            ((*t).to_owned(), String::new(), key.clone())
        }
    };
    let mut pos = vec![0f64; total];
    for (l, members) in by_layer.iter_mut().enumerate() {
        let mut keyed: Vec<(f64, (String, String, String), usize)> = members
            .iter()
            .map(|&i| {
                let before: Vec<f64> = nadj[i]
                    .iter()
                    .filter(|j| l > 0 && layer_of[**j] == l - 1)
                    .map(|j| pos[*j])
                    .collect();
                let bary = if before.is_empty() {
                    f64::MAX
                } else {
                    before.iter().sum::<f64>() / before.len() as f64
                };
                (bary, sort_key(i), i)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        *members = keyed.into_iter().map(|(_, _, i)| i).collect();
        for (k, &i) in members.iter().enumerate() {
            pos[i] = k as f64;
        }
    }

    // Rows per column: the drawing about twice as wide as high.
    let tallest = by_layer.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let shape = |rows: usize| {
        let cols: usize = by_layer.iter().map(|l| l.len().div_ceil(rows).max(1)).sum();
        let w = (cols as u32 * COLUMN) as f64;
        let h = (rows.min(tallest) as u32 * ROW) as f64;
        (w / h / 2.0).ln().abs()
    };
    let rows = (6..=tallest.max(6))
        .min_by(|a, b| shape(*a).total_cmp(&shape(*b)).then(a.cmp(b)))
        .unwrap_or(6);
    let height_rows = rows.min(tallest);

    // Positions.
    let mut xy = vec![(0u32, 0u32); total];
    let mut column = 0u32;
    for l in &by_layer {
        for chunk in l.chunks(rows) {
            // Each column centred in the height.
            let offset = (height_rows - chunk.len()) as u32 * ROW / 2;
            for (k, &i) in chunk.iter().enumerate() {
                xy[i] = (
                    MARGIN + START_R + column * COLUMN,
                    MARGIN + ROW / 2 + offset + k as u32 * ROW,
                );
            }
            column += 1;
        }
    }
    let width = 2 * MARGIN + START_R + column.saturating_sub(1) * COLUMN + COLUMN - 40;
    let height = 2 * MARGIN + height_rows as u32 * ROW;

    let mut nodes: Vec<Node> = visible
        .iter()
        .map(|&i| {
            let (x, y) = xy[i];
            if i < n {
                let o = &objects[i];
                Node {
                    id: o.id.clone(),
                    name: o.name.clone(),
                    label: clip(&o.name, LABEL_UNITS),
                    object_type: o.object_type.clone(),
                    href: o.href.clone(),
                    x,
                    y,
                    r: if i == 0 { START_R } else { NODE_R },
                    start: i == 0,
                    group: None,
                    colour: colour(&o.object_type),
                }
            } else {
                let (key, _, t, members) = &groups[i - n];
                let mut with = expanded.clone();
                with.insert(key.clone());
                let name = format!("{} × {t}", members.len());
                Node {
                    id: key.clone(),
                    label: clip(&name, LABEL_UNITS),
                    name,
                    object_type: (*t).to_owned(),
                    href: group_href(&with),
                    x,
                    y,
                    r: NODE_R + 2,
                    start: false,
                    group: Some(members.len()),
                    colour: colour(t),
                }
            }
        })
        .collect();
    // The start first (Tab reaches it first), then in reading order.
    nodes.sort_by_key(|nd| (!nd.start, nd.x, nd.y));
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(k, nd)| (nd.id.as_str(), k))
        .collect();
    let ids: Vec<&str> = (0..total)
        .map(|i| {
            if i < n {
                objects[i].id.as_str()
            } else {
                groups[i - n].0.as_str()
            }
        })
        .collect();

    // Edges: from the node nearer the start, leaving after its label.
    let mut paths = Vec::new();
    let mut fans: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (a, b, label) in &drawn {
        let (Some(&ka), Some(&kb)) = (index.get(ids[*a]), index.get(ids[*b])) else {
            continue;
        };
        let (s, t, forward) = if (layer_of[*a], nodes[ka].x, nodes[ka].y)
            <= (layer_of[*b], nodes[kb].x, nodes[kb].y)
        {
            (ka, kb, true)
        } else {
            (kb, ka, false)
        };
        let (sn, tn) = (&nodes[s], &nodes[t]);
        let d = if sn.x == tn.x {
            // Same column: an arc out to the left of the column.
            let x = sn.x.saturating_sub(sn.r);
            let bend = (sn.y.abs_diff(tn.y) / 3).clamp(16, 120);
            format!(
                "M{x} {} C{} {}, {} {}, {x} {}",
                sn.y,
                x.saturating_sub(bend),
                sn.y,
                x.saturating_sub(bend),
                tn.y,
                tn.y
            )
        } else {
            let x1 = sn.label_x() + label_width(&sn.label) + 6;
            let x1 = x1.min(tn.x.saturating_sub(tn.r + 20));
            let x2 = tn.x.saturating_sub(tn.r + 2);
            let mid = (x1 + x2) / 2;
            fans.entry(s).or_default().insert(label.clone());
            format!(
                "M{x1} {} C{mid} {}, {mid} {}, {x2} {}",
                sn.y, sn.y, tn.y, tn.y
            )
        };
        let (from, to) = if forward {
            (&nodes[s], &nodes[t])
        } else {
            (&nodes[t], &nodes[s])
        };
        paths.push(EdgePath {
            d,
            label: label.clone(),
            title: format!("{} → {label} → {}", from.name, to.name),
            forward,
        });
    }
    // One label per node and relationship type, where its edges leave; two lines at most
    // (the rest joined on the second), each within the node's own row.
    let mut edge_labels = Vec::new();
    for (s, labels) in fans {
        let nd = &nodes[s];
        let x = nd.label_x() + label_width(&nd.label) + 8;
        let labels: Vec<String> = labels.into_iter().collect();
        let lines: Vec<String> = if labels.len() <= 2 {
            labels
        } else {
            vec![labels[0].clone(), labels[1..].join(", ")]
        };
        // 11 px italic: under 7 user units a Latin character; two lines 12 apart stay
        // inside the node's row (ROW 26).
        let room = (nd.x + COLUMN).saturating_sub(x + 40) as usize / 7;
        let top = if lines.len() == 1 { nd.y - 3 } else { nd.y - 9 };
        for (k, line) in lines.iter().enumerate() {
            edge_labels.push(EdgeLabel {
                x,
                y: top + k as u32 * 12,
                text: clip(line, room.max(4)),
            });
        }
    }
    Layout {
        groups: groups.iter().map(|g| g.0.clone()).collect(),
        opened,
        nodes,
        edges: paths,
        edge_labels,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(i: usize, t: &str) -> Input {
        Input {
            id: format!("{t}--{i:04}"),
            name: format!("{t} number {i}"),
            object_type: t.to_owned(),
            href: format!("/o/{i}"),
        }
    }

    /// A start with 20 leaf techniques, 3 tools each with 2 leaves of their own.
    fn sample() -> (Vec<Input>, Vec<(usize, usize, String)>) {
        let mut objects = vec![obj(0, "x-mitre-asset")];
        let mut edges = Vec::new();
        for i in 1..=20 {
            objects.push(obj(i, "attack-pattern"));
            edges.push((i, 0, "targets".to_owned()));
        }
        for i in 21..=23 {
            objects.push(obj(i, "tool"));
            edges.push((i, 0, "uses".to_owned()));
            for j in 0..2 {
                objects.push(obj(100 + i * 2 + j, "course-of-action"));
                edges.push((objects.len() - 1, i, "mitigates".to_owned()));
            }
        }
        (objects, edges)
    }

    fn overlap(a: &Node, b: &Node) -> bool {
        let (ax0, ax1) = (a.x - a.r, a.label_x() + label_width(&a.label));
        let (bx0, bx1) = (b.x - b.r, b.label_x() + label_width(&b.label));
        ax0 < bx1 && bx0 < ax1 && a.y.abs_diff(b.y) < ROW
    }

    #[test]
    fn a_large_fan_of_leaves_is_one_group_until_expanded() {
        let (objects, edges) = sample();
        let href = |e: &BTreeSet<String>| {
            format!(
                "?expand={}",
                e.iter().cloned().collect::<Vec<_>>().join(",")
            )
        };
        let l = layout(&objects, &edges, &BTreeSet::new(), href);
        assert_eq!(l.groups, ["x-mitre-asset--0000.attack-pattern"]);
        let g = l.nodes.iter().find(|n| n.group.is_some()).unwrap();
        assert_eq!(g.name, "20 × attack-pattern");
        assert_eq!(g.href, "?expand=x-mitre-asset--0000.attack-pattern");
        assert_eq!(
            l.nodes.len(),
            1 + 1 + 3 + 6,
            "start, group, tools, their leaves"
        );
        assert!(
            l.edges.iter().any(|e| e.label == "targets" && !e.forward),
            "{:?}",
            l.edges
        );
        // The 2-leaf fans stay as they are.
        assert_eq!(
            l.nodes
                .iter()
                .filter(|n| n.object_type == "course-of-action")
                .count(),
            6
        );

        let all: BTreeSet<String> = l.groups.iter().cloned().collect();
        let e = layout(&objects, &edges, &all, href);
        assert!(e.groups.is_empty());
        assert_eq!(e.opened, l.groups);
        assert_eq!(e.nodes.len(), objects.len());
    }

    #[test]
    fn no_two_labels_overlap_and_everything_is_inside_the_box() {
        let (mut objects, mut edges) = sample();
        // A long CJK name and a wide layer.
        objects[21].name = "很长的中文名称用于测试标签的宽度是否被正确截断".repeat(2);
        for i in 0..90 {
            objects.push(obj(500 + i, "malware"));
            let k = objects.len() - 1;
            edges.push((k, 21 + i % 3, "uses".to_owned()));
            edges.push((k, 22 - i % 2, "related-to".to_owned()));
        }
        for expanded in [
            BTreeSet::new(),
            BTreeSet::from(["x-mitre-asset--0000.attack-pattern".to_owned()]),
        ] {
            let l = layout(&objects, &edges, &expanded, |_| String::new());
            for (i, a) in l.nodes.iter().enumerate() {
                assert!(a.x >= a.r && a.y >= a.r, "{a:?}");
                assert!(
                    a.label_x() + label_width(&a.label) <= l.width,
                    "{a:?} in {}",
                    l.width
                );
                assert!(a.y + a.r <= l.height, "{a:?} in {}", l.height);
                assert!(label_width(&a.label) <= LABEL_UNITS as u32 * UNIT_W);
                for b in &l.nodes[i + 1..] {
                    assert!(!overlap(a, b), "{a:?} and {b:?}");
                }
            }
            let ratio = f64::from(l.width) / f64::from(l.height);
            assert!((1.0..=4.0).contains(&ratio), "{} × {}", l.width, l.height);
            assert!(!l.edge_labels.is_empty());
        }
    }

    #[test]
    fn the_same_data_draws_the_same_picture() {
        let (objects, edges) = sample();
        let a = layout(&objects, &edges, &BTreeSet::new(), |_| String::new());
        let mut rev = edges.clone();
        rev.reverse();
        let b = layout(&objects, &rev, &BTreeSet::new(), |_| String::new());
        assert_eq!(a.nodes, b.nodes);
        assert_eq!(a.nodes[0].id, "x-mitre-asset--0000");
        assert!(a.nodes[0].start && a.nodes[0].r == START_R);
    }

    #[test]
    fn labels_are_cut_by_width_not_by_characters() {
        assert_eq!(clip("short", 26), "short");
        let cjk = clip(&"中".repeat(20), 26);
        assert_eq!(cjk.chars().count(), 13, "{cjk}");
        assert!(cjk.ends_with('…'));
        assert_eq!(clip(&"a".repeat(30), 26).chars().count(), 26);
    }
}
