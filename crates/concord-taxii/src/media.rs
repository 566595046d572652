//! Media types and content negotiation (TAXII 2.1 §1.6.8, §3.2).

/// The TAXII 2.1 media type, sent on every TAXII response.
pub const TAXII_21: &str = "application/taxii+json;version=2.1";
/// The STIX 2.1 media type, listed as a collection's `media_types`.
pub const STIX_21: &str = "application/stix+json;version=2.1";

/// One media range of an `Accept` header, e.g. `application/taxii+json;version=2.1;q=0.9`.
fn ranges(header: &str) -> impl Iterator<Item = (String, Option<String>, f32)> + '_ {
    header.split(',').filter_map(|part| {
        let mut params = part.split(';').map(str::trim);
        let essence = params.next()?.to_ascii_lowercase();
        if essence.is_empty() {
            return None;
        }
        let mut version = None;
        let mut q = 1.0;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "version" => version = Some(v.to_owned()),
                    "q" => q = v.parse().unwrap_or(0.0),
                    _ => {}
                }
            }
        }
        Some((essence, version, q))
    })
}

/// Whether a request's `Accept` header allows a TAXII 2.1 response (TAXII 2.1 §1.6.8.1).
///
/// Accepted: no header, `*/*`, `application/*`, `application/taxii+json` without a version
/// (meaning the newest the server has) or with `version=2.1`. Anything else — including
/// `application/json` and `version=2.0` — is refused, and the server answers 406.
pub fn accepts_taxii(accept: Option<&str>) -> bool {
    let Some(header) = accept else { return true };
    if header.trim().is_empty() {
        return true;
    }
    ranges(header).any(|(essence, version, q)| {
        q > 0.0
            && match essence.as_str() {
                "*/*" | "application/*" => true,
                "application/taxii+json" => version.is_none_or(|v| v == "2.1"),
                _ => false,
            }
    })
}

/// Whether a POST body's `Content-Type` is TAXII 2.1 (TAXII 2.1 §5.4): the server answers 415
/// otherwise. `application/taxii+json` without a version is taken as 2.1.
pub fn is_taxii_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    ranges(ct).next().is_some_and(|(essence, version, _)| {
        essence == "application/taxii+json" && version.is_none_or(|v| v == "2.1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert!(accepts_taxii(None));
        assert!(accepts_taxii(Some("application/taxii+json;version=2.1")));
        assert!(accepts_taxii(Some("application/taxii+json")));
        assert!(accepts_taxii(Some("text/html, */*;q=0.1")));
        assert!(!accepts_taxii(Some("application/json")));
        assert!(!accepts_taxii(Some("application/taxii+json;version=2.0")));
        assert!(!accepts_taxii(Some(
            "application/taxii+json;version=2.1;q=0"
        )));
    }

    #[test]
    fn content_type() {
        assert!(is_taxii_content_type(Some(
            "application/taxii+json;version=2.1"
        )));
        assert!(is_taxii_content_type(Some(
            "application/taxii+json; version=2.1; charset=utf-8"
        )));
        assert!(!is_taxii_content_type(Some("application/json")));
        assert!(!is_taxii_content_type(Some(
            "application/stix+json;version=2.1"
        )));
        assert!(!is_taxii_content_type(None));
    }
}
