//! E-mail addresses (RFC 5322 §3.4.1 `addr-spec`, restricted to the dot-atom form that
//! appears in prose, with an RFC 1035 host name). Of RFC 5322's `atext` the local part keeps
//! letters, digits and `%&'*+_-`: `/`, `=`, `?`, `#`, `!` and kin are legal but in practice
//! they are URL punctuation (`https://x.org/u?mail=a@b.org` holds `a@b.org`).

use std::sync::LazyLock;

use regex::Regex;

use super::{Category, Finding};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        [A-Za-z0-9%&'*+_-]+(?:\.[A-Za-z0-9%&'*+_-]+)*   # dot-atom local part, no URL punctuation
        @
        (?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+                  # labels
        (?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})                               # TLD
        ",
    )
    .expect("email regex")
});

/// Top-level "domains" that are really file extensions (`icon@2x.png`).
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "css", "js", "exe", "dll", "txt",
    "pdf", "doc", "docx", "xls", "xlsx", "json", "xml", "html", "htm", "php", "py", "sh", "ps1",
    "bat", "vbs", "jar", "apk", "ipa", "bin", "dat", "tmp", "log",
];

pub(crate) fn find(text: &str, out: &mut Vec<Finding>) {
    for m in EMAIL.find_iter(text) {
        let mut r = m.range();
        // A quote is legal in a local part but in prose it is punctuation.
        while r.start < r.end && text.as_bytes()[r.start] == b'\'' {
            r.start += 1;
        }
        let value = &text[r.clone()];
        let Some((local, domain)) = value.rsplit_once('@') else {
            continue;
        };
        if local.is_empty() || local.len() > 64 || domain.len() > 253 {
            continue;
        }
        // The match must not continue a longer token (`x@y.com` inside `ax@y.comz` is cut by
        // the regex already on the right; check the left).
        if text[..r.start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '@')
        {
            continue;
        }
        let tld = domain.rsplit('.').next().unwrap_or("");
        if FILE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(tld)) {
            continue;
        }
        if text[r.end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        out.push(Finding {
            category: Category::Email,
            start: r.start,
            end: r.end,
            value: value.to_string(),
            normalized: format!("{local}@{}", domain.to_ascii_lowercase()),
            rule: "rfc5322-addr-spec",
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emails(t: &str) -> Vec<String> {
        let mut v = Vec::new();
        find(t, &mut v);
        v.into_iter().map(|f| f.value).collect()
    }

    #[test]
    fn finds_addresses_in_any_script() {
        assert_eq!(
            emails("mail John.Doe+tag@Example.COM."),
            ["John.Doe+tag@Example.COM"]
        );
        assert_eq!(
            emails("联系邮箱：zhang.san@example.cn。"),
            ["zhang.san@example.cn"]
        );
        assert_eq!(
            emails("راسلنا على ahmed@mail.example.sa شكرا"),
            ["ahmed@mail.example.sa"]
        );
        assert_eq!(emails("<a@b.co>, 'c@d.org'"), ["a@b.co", "c@d.org"]);
        assert_eq!(emails("https://x.org/u?mail=a.b@c.org&x=1"), ["a.b@c.org"]);
    }

    #[test]
    fn rejects_look_alikes() {
        assert!(emails("icon@2x.png and logo@3x.jpg").is_empty());
        assert!(emails("user@localhost, @handle, a@b, x@1.2.3.4").is_empty());
        assert!(emails("ssh git@ gitlab").is_empty());
    }
}
