//! JSON paths of properties, built on the stack and rendered to text only when a rule is
//! broken, so that checking a valid object allocates nothing for paths.

use std::fmt::Write as _;

/// One step of a [`Path`].
#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// A JSON path as a linked list of steps on the stack: `external_references[2].source_name`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path<'a> {
    seg: Seg<'a>,
    parent: Option<&'a Path<'a>>,
}

impl<'a> Path<'a> {
    /// The object itself (renders as the empty string).
    pub(crate) const ROOT: Path<'static> = Path {
        seg: Seg::Root,
        parent: None,
    };

    /// This path followed by property `key`.
    pub(crate) fn key<'b>(&'b self, key: &'b str) -> Path<'b>
    where
        'a: 'b,
    {
        Path {
            seg: Seg::Key(key),
            parent: Some(self),
        }
    }

    /// This path followed by list index `i`.
    pub(crate) fn index<'b>(&'b self, i: usize) -> Path<'b>
    where
        'a: 'b,
    {
        Path {
            seg: Seg::Index(i),
            parent: Some(self),
        }
    }

    /// `a.b[2].c`.
    pub(crate) fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut p = Some(self);
        while let Some(cur) = p {
            segs.push(cur.seg);
            p = cur.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let root = Path::ROOT;
        assert_eq!(root.render(), "");
        let a = root.key("external_references");
        let b = a.index(2);
        let c = b.key("source_name");
        assert_eq!(c.render(), "external_references[2].source_name");
        assert_eq!(
            root.key("extensions").key("archive-ext").render(),
            "extensions.archive-ext"
        );
    }
}
