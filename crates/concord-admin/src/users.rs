//! Named users (issue 20): the operations of `concord user add|list|remove|reset`, and the
//! admin REST API's door of the role check ([`api_operation`]: each route of `/api/v1/` is
//! one [`Operation`] of the node's one table, `concord_server::roles::TABLE`).

use axum::http::Method;
use concord_server::auth::users::{NewCredentials, new_credentials, new_totp_secret};
use concord_server::roles::{Operation, Role};
use concord_store::{Store, User, people::check_user_name};

use crate::ops::AdminError;

/// A user as listed (`concord user list`): no secret, not even a hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    /// The name.
    pub name: String,
    /// The role.
    pub role: String,
    /// Whether the user has a TOTP key (second factor).
    pub totp: bool,
    /// The id of its login token (to tell tokens apart in logs; not a secret).
    pub token_id: String,
    /// When it was added, nanoseconds since the epoch.
    pub created_ns: i64,
}

/// What `user add` and `user reset` show once: the password, the login token and, with a
/// second factor, the TOTP key (hex) to enrol in an authenticator app.
#[derive(Debug)]
pub struct Issued {
    /// The user.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The new password and login token.
    pub credentials: NewCredentials,
    /// The new TOTP key (hex), when it has one.
    pub totp_secret: Option<String>,
}

/// Adds user `name` with `role`; `totp`: enrol a TOTP key (also done when `totp_required`
/// names the role, so that such a user can log in at all). Errors: a bad name (the rule
/// broken), a name taken (`conflict`), no randomness, the store.
pub fn add_user(
    store: &dyn Store,
    name: &str,
    role: Role,
    totp: bool,
    totp_required: &[Role],
    now_ns: i64,
) -> Result<Issued, AdminError> {
    check_user_name(name).map_err(AdminError::Invalid)?;
    let credentials = new_credentials().map_err(AdminError::Internal)?;
    let totp_secret = if totp || totp_required.contains(&role) {
        Some(new_totp_secret().map_err(AdminError::Internal)?)
    } else {
        None
    };
    let user = User {
        name: name.to_owned(),
        role: role.as_str().to_owned(),
        token_id: credentials.token_id.clone(),
        password_hash: credentials.password_hash.clone(),
        token_hash: credentials.token_hash.clone(),
        totp_secret: totp_secret.clone(),
        created_ns: now_ns,
    };
    if !store.add_user(&user)? {
        return Err(AdminError::Conflict(format!(
            "a user named {name:?} already exists"
        )));
    }
    Ok(Issued {
        name: name.to_owned(),
        role,
        credentials,
        totp_secret,
    })
}

/// Every user, by name.
pub fn list_users(store: &dyn Store) -> Result<Vec<UserInfo>, AdminError> {
    Ok(store
        .users()?
        .into_iter()
        .map(|u| UserInfo {
            totp: u.totp_secret.is_some(),
            name: u.name,
            role: u.role,
            token_id: u.token_id,
            created_ns: u.created_ns,
        })
        .collect())
}

/// Removes user `name` and ends its web sessions. Errors: no such user (`not_found`).
pub fn remove_user(store: &dyn Store, name: &str) -> Result<(), AdminError> {
    if store.remove_user(name)? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("no user named {name:?}")))
    }
}

/// New password and login token for `name` (the old ones stop working, its web sessions
/// end); `totp`: a new TOTP key too (else the key it has is kept; one is enrolled if its
/// role needs one and it has none). Errors: no such user, a stored role that is not one of
/// the four, no randomness, the store.
pub fn reset_user(
    store: &dyn Store,
    name: &str,
    totp: bool,
    totp_required: &[Role],
) -> Result<Issued, AdminError> {
    let Some(user) = store.user(name)? else {
        return Err(AdminError::NotFound(format!("no user named {name:?}")));
    };
    let role: Role = user
        .role
        .parse()
        .map_err(|e: String| AdminError::Internal(format!("user {name:?}: {e}")))?;
    let credentials = new_credentials().map_err(AdminError::Internal)?;
    let (totp_secret, new_key) = match user.totp_secret {
        Some(k) if !totp => (Some(k), false),
        None if !totp && !totp_required.contains(&role) => (None, false),
        _ => (Some(new_totp_secret().map_err(AdminError::Internal)?), true),
    };
    if !store.reset_user(
        name,
        &credentials.token_id,
        &credentials.password_hash,
        &credentials.token_hash,
        totp_secret.as_deref(),
    )? {
        return Err(AdminError::NotFound(format!("no user named {name:?}")));
    }
    Ok(Issued {
        name: name.to_owned(),
        role,
        credentials,
        totp_secret: totp_secret.filter(|_| new_key),
    })
}

/// The operation of a request to the admin REST API, by its method and its path under
/// `/api/v1` (`/partners/x`): reads of collections, incidents and the policy are
/// [`Operation::Browse`]; creating a collection [`Operation::ManageNode`]; changing a
/// collection's sharing, granting in an incident and the approvals of four-eyes release
/// [`Operation::Release`]; the other
/// incident work [`Operation::Import`]; partners, peers and webhooks
/// [`Operation::ManagePartners`]; the audit log [`Operation::ReadAudit`].
pub fn api_operation(method: &Method, path: &str) -> Operation {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reads = *method == Method::GET || *method == Method::HEAD;
    match parts.as_slice() {
        ["audit", ..] => Operation::ReadAudit,
        ["partners" | "peers" | "webhooks", ..] => Operation::ManagePartners,
        ["collections"] if !reads => Operation::ManageNode,
        ["collections", _, "sharing"] if !reads => Operation::Release,
        ["incidents", _, "grants"] if !reads => Operation::Release,
        // Four-eyes release: the approvals are the releasers' (listing them too).
        ["approvals", ..] => Operation::Release,
        ["incidents" | "tasks", ..] if !reads => Operation::Import,
        _ => Operation::Browse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_routes_map_to_operations() {
        let op = |m: Method, p: &str| api_operation(&m, p);
        assert_eq!(op(Method::GET, "/audit"), Operation::ReadAudit);
        assert_eq!(op(Method::POST, "/audit/verify"), Operation::ReadAudit);
        assert_eq!(op(Method::GET, "/partners"), Operation::ManagePartners);
        assert_eq!(
            op(Method::POST, "/partners/x/key"),
            Operation::ManagePartners
        );
        assert_eq!(op(Method::GET, "/collections"), Operation::Browse);
        assert_eq!(op(Method::POST, "/collections"), Operation::ManageNode);
        assert_eq!(
            op(Method::PATCH, "/collections/c/sharing"),
            Operation::Release
        );
        assert_eq!(op(Method::GET, "/collections/c/sharing"), Operation::Browse);
        assert_eq!(op(Method::POST, "/incidents/i/grants"), Operation::Release);
        assert_eq!(op(Method::GET, "/approvals"), Operation::Release);
        assert_eq!(op(Method::POST, "/approvals/x/approve"), Operation::Release);
        assert_eq!(op(Method::POST, "/incidents"), Operation::Import);
        assert_eq!(op(Method::POST, "/tasks/t/answers"), Operation::Import);
        assert_eq!(op(Method::GET, "/policy/explain"), Operation::Browse);
    }

    #[test]
    fn users_added_listed_reset_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = concord_store::SqliteStore::open(&dir.path().join("u.db")).unwrap();
        let a = add_user(&store, "alice", Role::Analyst, false, &[Role::Operator], 1).unwrap();
        assert!(a.totp_secret.is_none());
        let o = add_user(&store, "olga", Role::Operator, false, &[Role::Operator], 1).unwrap();
        assert!(o.totp_secret.is_some(), "a role that needs TOTP gets a key");
        assert_eq!(
            add_user(&store, "alice", Role::Auditor, false, &[], 1)
                .unwrap_err()
                .code(),
            "conflict"
        );
        assert_eq!(
            add_user(&store, "Bad Name", Role::Auditor, false, &[], 1)
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        let list = list_users(&store).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[1].totp);
        let r = reset_user(&store, "alice", false, &[]).unwrap();
        assert_ne!(r.credentials.password, a.credentials.password);
        assert!(r.totp_secret.is_none());
        let r = reset_user(&store, "olga", false, &[]).unwrap();
        assert!(r.totp_secret.is_none(), "the key it has is kept, not shown");
        assert!(store.user("olga").unwrap().unwrap().totp_secret.is_some());
        remove_user(&store, "alice").unwrap();
        assert_eq!(
            remove_user(&store, "alice").unwrap_err().code(),
            "not_found"
        );
        assert_eq!(
            reset_user(&store, "alice", false, &[]).unwrap_err().code(),
            "not_found"
        );
    }
}
