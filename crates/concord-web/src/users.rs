//! The web UI's door of the role check (issue 20): each page or form, by its route, is one
//! [`Operation`] of the node's one table ([`concord_server::roles::TABLE`]); [`crate::Viewer`]
//! checks it for every request of a named user's session with
//! [`concord_server::roles::authorize`] before the page's handler runs. A partner's session
//! is not a user's: its pages keep their own checks (the collections it may read and write,
//! the operator pages closed to it).

use axum::http::Method;
use concord_server::roles::Operation;

/// The operation of a request to the UI, by its route template (`MatchedPath`) and method.
/// Pages that only read are [`Operation::Browse`]; forms that write objects
/// [`Operation::Import`]; the audit log [`Operation::ReadAudit`]; the other operator pages
/// (partners, groups, peers, policy) [`Operation::ManagePartners`].
pub fn operation_of(method: &Method, route: &str) -> Operation {
    let writes = *method == Method::POST;
    match route {
        "/ui/operator/audit" => Operation::ReadAudit,
        // Four-eyes release: the approvals are the releasers' (the list too).
        r if r.starts_with("/ui/approvals") => Operation::Release,
        r if r.starts_with("/ui/operator/") => Operation::ManagePartners,
        "/ui/import" if writes => Operation::Import,
        r if r.starts_with("/ui/incidents") && writes => Operation::Import,
        _ => Operation::Browse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_operations() {
        assert_eq!(
            operation_of(&Method::GET, "/ui/operator/audit"),
            Operation::ReadAudit
        );
        assert_eq!(
            operation_of(&Method::GET, "/ui/operator/partners"),
            Operation::ManagePartners
        );
        assert_eq!(operation_of(&Method::POST, "/ui/import"), Operation::Import);
        assert_eq!(
            operation_of(&Method::GET, "/ui/approvals"),
            Operation::Release
        );
        assert_eq!(
            operation_of(&Method::POST, "/ui/approvals/{id}/approve"),
            Operation::Release
        );
        assert_eq!(operation_of(&Method::GET, "/ui/import"), Operation::Browse);
        assert_eq!(
            operation_of(&Method::POST, "/ui/incidents/{id}/respond"),
            Operation::Import
        );
        assert_eq!(
            operation_of(&Method::GET, "/ui/c/{collection}"),
            Operation::Browse
        );
        assert_eq!(
            operation_of(&Method::POST, "/ui/pattern"),
            Operation::Browse
        );
    }
}
