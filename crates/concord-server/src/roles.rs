//! Who may do what (issue 20): the roles of a node's named users, the operations of every
//! door (web UI, admin REST API, CLI), and the one table that joins them, [`TABLE`], checked
//! by the one function [`authorize`]. The doors map each of their routes or commands to an
//! [`Operation`]; none of them decides about a role itself.
//!
//! The roles are DESIGN.md's users: analysts import and browse; releasers change sharing,
//! markings and grants (what partners receive); operators manage partners, peers and the
//! node; auditors read the audit log and nothing else. The admin token (bootstrap and
//! automation) and the CLI's operator without a named user may do everything, as before
//! people existed; they are audited as such ([`Actor::audit_name`]).

use std::fmt;

/// A named user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Imports and browses.
    Analyst,
    /// Changes what partners receive: sharing, markings, grants, exports.
    Releaser,
    /// Manages partners, peers, users and the node.
    Operator,
    /// Reads and verifies the audit log, nothing else.
    Auditor,
}

impl Role {
    /// Every role, in the order of [`TABLE`]'s columns.
    pub const ALL: [Role; 4] = [Role::Analyst, Role::Releaser, Role::Operator, Role::Auditor];

    /// The role's name as stored and typed (`analyst`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Releaser => "releaser",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    /// Errors: not one of the four names, naming what was given.
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("role {s:?}: must be one of analyst, releaser, operator, auditor")
            })
    }
}

/// What a request or command does, as far as roles are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read collections, objects, the graph, the dashboard, incidents, the policy and its
    /// explanation; check a pattern.
    Browse,
    /// Write objects: import (CLI, web), indicator revocations and false-positive reports,
    /// incident work (open, request, respond).
    Import,
    /// Widen or narrow what partners receive: collection sharing, markings, grants in an
    /// incident, exports and packages for a partner.
    Release,
    /// Partners and their keys, sharing groups, peers, sync, webhooks.
    ManagePartners,
    /// The node itself: collections, users, storage, serving.
    ManageNode,
    /// Read and verify the audit log.
    ReadAudit,
}

impl Operation {
    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Browse => "browse",
            Operation::Import => "import",
            Operation::Release => "release",
            Operation::ManagePartners => "manage partners",
            Operation::ManageNode => "manage the node",
            Operation::ReadAudit => "read the audit log",
        }
    }
}

/// The one table: for each operation, the roles that may do it.
pub const TABLE: &[(Operation, &[Role])] = &[
    (
        Operation::Browse,
        &[Role::Analyst, Role::Releaser, Role::Operator],
    ),
    (Operation::Import, &[Role::Analyst]),
    (Operation::Release, &[Role::Releaser]),
    (Operation::ManagePartners, &[Role::Operator]),
    (Operation::ManageNode, &[Role::Operator]),
    (Operation::ReadAudit, &[Role::Auditor]),
];

/// Whether `role` may do `op`, by [`TABLE`].
pub fn permits(role: Role, op: Operation) -> bool {
    TABLE
        .iter()
        .any(|(o, roles)| *o == op && roles.contains(&role))
}

/// Who acts, at any door: what the audit log names and what [`authorize`] checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The admin token (bootstrap, automation): every operation.
    AdminToken,
    /// The CLI run without a named user (`--as` or `[users.os]`): every operation, as
    /// before people existed (whoever can run it can open the database).
    Operator,
    /// A named user with its role.
    User {
        /// The user's name.
        name: String,
        /// Its role.
        role: Role,
    },
    /// A partner, by the key id of the API key it used. Partners reach only the doors
    /// meant for them (TAXII, their web UI pages), where their own rights apply; they hold
    /// no role.
    PartnerKey {
        /// The key id.
        key_id: String,
    },
}

impl Actor {
    /// The person (or token, or key) as the audit log names it: `admin-token`, `operator`,
    /// `user:NAME`, `key:KEY_ID`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::AdminToken => "admin-token".to_owned(),
            Actor::Operator => "operator".to_owned(),
            Actor::User { name, .. } => format!("user:{name}"),
            Actor::PartnerKey { key_id } => format!("key:{key_id}"),
        }
    }

    /// The role of a named user, `None` otherwise.
    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::User { role, .. } => Some(*role),
            _ => None,
        }
    }
}

/// A refusal by [`authorize`]: who, what, and which roles could.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{who} may not {}: it takes the role {}", .op.as_str(), roles(*.op))]
pub struct Refused {
    /// Who was refused (`user alice (analyst)`, `a partner`).
    pub who: String,
    /// What it tried.
    pub op: Operation,
}

fn roles(op: Operation) -> String {
    TABLE
        .iter()
        .filter(|(o, _)| *o == op)
        .flat_map(|(_, r)| r.iter().map(|r| r.as_str()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The one check of every door: may `actor` do `op`? The admin token and the CLI's operator
/// may do everything; a named user what [`TABLE`] gives its role; a partner nothing here
/// (its doors check its collections instead).
///
/// Errors: [`Refused`], naming the user, its role, the operation and the roles that may.
pub fn authorize(actor: &Actor, op: Operation) -> Result<(), Refused> {
    let who = match actor {
        Actor::AdminToken | Actor::Operator => return Ok(()),
        Actor::User { role, .. } if permits(*role, op) => return Ok(()),
        Actor::User { name, role } => format!("user {name} ({role})"),
        Actor::PartnerKey { .. } => "a partner".to_owned(),
    };
    Err(Refused { who, op })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Operation::*;
        let may = |r: Role| {
            [
                Browse,
                Import,
                Release,
                ManagePartners,
                ManageNode,
                ReadAudit,
            ]
            .into_iter()
            .filter(|o| permits(r, *o))
            .collect::<Vec<_>>()
        };
        assert_eq!(may(Role::Analyst), [Browse, Import]);
        assert_eq!(may(Role::Releaser), [Browse, Release]);
        assert_eq!(may(Role::Operator), [Browse, ManagePartners, ManageNode]);
        assert_eq!(
            may(Role::Auditor),
            [ReadAudit],
            "the audit log and nothing else"
        );
    }

    #[test]
    fn authorize_names_who_and_what() {
        let alice = Actor::User {
            name: "alice".into(),
            role: Role::Analyst,
        };
        assert!(authorize(&alice, Operation::Import).is_ok());
        let e = authorize(&alice, Operation::Release).unwrap_err();
        assert_eq!(
            e.to_string(),
            "user alice (analyst) may not release: it takes the role releaser"
        );
        assert!(authorize(&Actor::AdminToken, Operation::ReadAudit).is_ok());
        assert!(authorize(&Actor::Operator, Operation::Release).is_ok());
        assert!(authorize(&Actor::PartnerKey { key_id: "k".into() }, Operation::Browse).is_err());
        assert_eq!(alice.audit_name(), "user:alice");
        assert_eq!(Actor::AdminToken.audit_name(), "admin-token");
        assert_eq!("auditor".parse::<Role>(), Ok(Role::Auditor));
        assert!("root".parse::<Role>().is_err());
    }
}
