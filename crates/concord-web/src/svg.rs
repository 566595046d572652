//! Charts drawn on the server as SVG (issue 25): no script and no chart library in the
//! browser, and every chart has a `<table>` of the same figures as its text alternative
//! (`templates/chart.html` draws both from one [`Chart`]).
//!
//! A chart is small multiples: one band per row (a partner, an indicator), one bar per
//! column (a day), every band on the same scale so that bands compare. Geometry is in SVG
//! user units of the chart's `viewBox`; the page scales the drawing to its width.

/// Height of one band.
pub const BAND: u32 = 30;
/// Width of the label column (left of the bars).
pub const LABEL_W: u32 = 190;
/// Width of one day's slot.
pub const SLOT: u32 = 18;
/// Width of the total column (right of the bars).
pub const TOTAL_W: u32 = 56;
/// Height of the axis under the bands (first and last day).
pub const AXIS: u32 = 20;
/// Characters of a row label drawn in the SVG (the table holds the whole label).
pub const LABEL_CHARS: usize = 26;

/// One row of a chart: a series of values, one per column.
#[derive(Clone, Debug)]
pub struct Row {
    /// What the row is (a partner's name, an indicator's name).
    pub label: String,
    /// Its page, when it has one.
    pub href: Option<String>,
    /// One value per column.
    pub values: Vec<u64>,
    /// Further figures for the table only (e.g. times seen, withheld), one per
    /// [`Chart::extra_heads`].
    pub extra: Vec<u64>,
}

impl Row {
    /// The sum of the values.
    pub fn total(&self) -> u64 {
        self.values.iter().sum()
    }
}

/// One bar as drawn: its rectangle and its text (`<title>`, shown on hover).
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height (at least 1 for a non-zero value, so that it shows).
    pub h: u32,
    /// `2026-12-07: 3`.
    pub title: String,
}

/// A text drawn in the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    /// Anchor point.
    pub x: u32,
    /// Baseline.
    pub y: u32,
    /// `start`, `middle` or `end` (SVG `text-anchor`).
    pub anchor: &'static str,
    /// The text.
    pub text: String,
}

/// A chart and its table.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The element id of the figure (the table's is `{id}-table`).
    pub id: String,
    /// What it shows (the figure's caption and the SVG's accessible name).
    pub caption: String,
    /// The column headings (days, `YYYY-MM-DD`).
    pub columns: Vec<String>,
    /// Heading of the label column of the table.
    pub label_head: String,
    /// Heading of the total column.
    pub total_head: String,
    /// Headings of the table-only figures of [`Row::extra`].
    pub extra_heads: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
    /// `viewBox` width.
    pub width: u32,
    /// `viewBox` height.
    pub height: u32,
    /// Bars, row by row.
    pub bars: Vec<Bar>,
    /// Band backgrounds (every other row), as bars without text.
    pub bands: Vec<Bar>,
    /// Row labels, totals and the axis.
    pub texts: Vec<Text>,
}

impl Chart {
    /// Lays out `rows` over `columns` (every row has one value per column; missing ones
    /// count as 0). The tallest bar is the largest value of the chart.
    pub fn new(
        id: &str,
        caption: String,
        columns: Vec<String>,
        heads: (String, String, Vec<String>),
        mut rows: Vec<Row>,
    ) -> Chart {
        let n = columns.len();
        for r in &mut rows {
            r.values.resize(n, 0);
        }
        let max = rows
            .iter()
            .flat_map(|r| r.values.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1);
        let bars_x = LABEL_W + 8;
        let width = bars_x + SLOT * n as u32 + TOTAL_W;
        let height = BAND * rows.len() as u32 + AXIS;
        let inner = BAND - 8;
        let mut bars = Vec::new();
        let mut bands = Vec::new();
        let mut texts = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let top = BAND * i as u32;
            if i % 2 == 1 {
                bands.push(Bar {
                    x: 0,
                    y: top,
                    w: width,
                    h: BAND,
                    title: String::new(),
                });
            }
            texts.push(Text {
                x: 4,
                y: top + BAND / 2 + 5,
                anchor: "start",
                text: clip(&r.label, LABEL_CHARS),
            });
            for (j, v) in r.values.iter().enumerate() {
                if *v == 0 {
                    continue;
                }
                // At least one unit high: a day with one sighting among thousands shows.
                let h = ((*v as f64 / max as f64) * f64::from(inner))
                    .round()
                    .max(1.0) as u32;
                bars.push(Bar {
                    x: bars_x + SLOT * j as u32 + 2,
                    y: top + 4 + inner - h,
                    w: SLOT - 4,
                    h,
                    title: format!("{}: {v}", columns[j]),
                });
            }
            texts.push(Text {
                x: width - 4,
                y: top + BAND / 2 + 5,
                anchor: "end",
                text: r.total().to_string(),
            });
        }
        if let (Some(first), Some(last)) = (columns.first(), columns.last()) {
            let y = height - 5;
            texts.push(Text {
                x: bars_x,
                y,
                anchor: "start",
                text: first.clone(),
            });
            if n > 1 {
                texts.push(Text {
                    x: bars_x + SLOT * n as u32,
                    y,
                    anchor: "end",
                    text: last.clone(),
                });
            }
        }
        let (label_head, total_head, extra_heads) = heads;
        Chart {
            id: id.to_owned(),
            caption,
            columns,
            label_head,
            total_head,
            extra_heads,
            rows,
            width,
            height,
            bars,
            bands,
            texts,
        }
    }
}

/// `s` cut to `max` characters, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, values: &[u64]) -> Row {
        Row {
            label: label.to_owned(),
            href: None,
            values: values.to_vec(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn bars_share_one_scale_and_zero_draws_nothing() {
        let days: Vec<String> = (1..=3).map(|d| format!("2026-12-0{d}")).collect();
        let c = Chart::new(
            "c",
            "caption".into(),
            days,
            ("who".into(), "total".into(), vec![]),
            vec![row("a", &[4, 0, 2]), row("b", &[1])],
        );
        assert_eq!(c.rows[1].values, [1, 0, 0], "short rows are padded");
        assert_eq!(c.bars.len(), 3, "zero values draw no bar");
        let inner = BAND - 8;
        assert_eq!(c.bars[0].h, inner, "the largest value is the full band");
        assert_eq!(c.bars[1].h, inner / 2);
        assert_eq!(c.bars[2].h, (f64::from(inner) / 4.0).round() as u32);
        assert_eq!(
            c.bars[2].y + c.bars[2].h,
            BAND + 4 + inner,
            "bars stand on one line"
        );
        assert_eq!(c.bars[0].title, "2026-12-01: 4");
        assert_eq!(c.height, 2 * BAND + AXIS);
        assert!(
            c.bars
                .iter()
                .all(|b| b.x + b.w <= c.width && b.y + b.h <= c.height)
        );
        let totals: Vec<&str> = c
            .texts
            .iter()
            .filter(|t| t.anchor == "end")
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(totals, ["6", "1", "2026-12-03"]);
    }

    #[test]
    fn long_labels_are_clipped_in_the_drawing_only() {
        let long = "غ".repeat(40);
        let c = Chart::new(
            "c",
            String::new(),
            vec!["d".into()],
            (String::new(), String::new(), vec![]),
            vec![row(&long, &[1])],
        );
        assert_eq!(c.texts[0].text.chars().count(), LABEL_CHARS);
        assert!(c.texts[0].text.ends_with('…'));
        assert_eq!(c.rows[0].label, long);
    }
}
