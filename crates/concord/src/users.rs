//! `concord user …` (issue 20), and the CLI's door of the role check: every command acts as
//! a named user given by `--as NAME` (or the OS user mapped in `[users.os]`), whose role
//! must allow the command's operation ([`operation_of`], checked by
//! [`concord_server::roles::authorize`], the one table); without one, as the node's
//! operator, as before people existed.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Subcommand};
use concord_admin::users as ops;
use concord_server::roles::{Actor, Operation, Role, authorize};

use crate::DataDirArg;
use crate::config::Config;

/// `concord user …`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a named user with a role; its password and login token are shown once.
    Add {
        #[command(flatten)]
        data: DataDirArg,
        /// Login name: lowercase letters, digits, `.`, `_`, `-` (1–64).
        name: String,
        /// analyst (import, browse), releaser (sharing, markings, grants, exports),
        /// operator (partners, peers, users, the node), auditor (the audit log only).
        #[arg(long, value_parser = ["analyst", "releaser", "operator", "auditor"])]
        role: String,
        /// Enrol a TOTP second factor (done anyway when `[users] totp_required` names the
        /// role): the key is shown once as an `otpauth://` URI.
        #[arg(long)]
        totp: bool,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List users: name, role, whether they have a second factor, their token id.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user; its web sessions end at once on every serve process.
    Remove {
        #[command(flatten)]
        data: DataDirArg,
        /// The user's name.
        name: String,
    },
    /// Give a user a new password and login token (shown once); the old ones stop working
    /// and its web sessions end.
    Reset {
        #[command(flatten)]
        data: DataDirArg,
        /// The user's name.
        name: String,
        /// Also a new TOTP key (shown once).
        #[arg(long)]
        totp: bool,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Runs a `user` subcommand.
pub fn run(command: UserCommand) -> Result<bool> {
    match command {
        UserCommand::Add {
            data,
            name,
            role,
            totp,
            json,
        } => {
            let config = Config::load(&data.data_dir)?;
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let store = crate::open_store(&data)?;
            let issued = ops::add_user(
                store.as_ref(),
                &name,
                role,
                totp,
                &config.users.totp_roles()?,
                now_ns(),
            )?;
            show(&issued, &config.title, json, "added");
            Ok(true)
        }
        UserCommand::List { data, json } => {
            let store = crate::open_store(&data)?;
            let users = ops::list_users(store.as_ref())?;
            if json {
                out!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for u in &users {
                    out!(
                        "{:<24} {:<9} {:<9} {}",
                        u.name,
                        u.role,
                        if u.totp { "totp" } else { "-" },
                        u.token_id
                    );
                }
            }
            Ok(true)
        }
        UserCommand::Remove { data, name } => {
            let store = crate::open_store(&data)?;
            ops::remove_user(store.as_ref(), &name)?;
            out!("user {name} removed; its sessions ended");
            Ok(true)
        }
        UserCommand::Reset {
            data,
            name,
            totp,
            json,
        } => {
            let config = Config::load(&data.data_dir)?;
            let store = crate::open_store(&data)?;
            let issued = ops::reset_user(store.as_ref(), &name, totp, &config.users.totp_roles()?)?;
            show(&issued, &config.title, json, "reset");
            Ok(true)
        }
    }
}

/// Prints new credentials, once.
fn show(issued: &ops::Issued, issuer: &str, json: bool, what: &str) {
    let uri = issued
        .totp_secret
        .as_deref()
        .and_then(|k| concord_server::auth::users::otpauth_uri(issuer, &issued.name, k));
    if json {
        let doc = serde_json::json!({
            "name": issued.name,
            "role": issued.role.as_str(),
            "password": issued.credentials.password,
            "login_token": issued.credentials.token,
            "totp_uri": uri,
        });
        out!("{doc:#}");
        return;
    }
    out!(
        "user {} ({}) {what}; shown once, keep them safe:",
        issued.name,
        issued.role
    );
    out!("  password:    {}", issued.credentials.password);
    out!("  login token: {}", issued.credentials.token);
    if let Some(uri) = uri {
        out!("  TOTP:        {uri}");
    }
}

/// Who the CLI acts as in this run, set once by [`authorize_cli`] (the audit log names it).
static ACTOR: OnceLock<Actor> = OnceLock::new();

/// Who the CLI acts as in this run: a named user, or the node's operator.
pub fn actor() -> Actor {
    ACTOR.get().cloned().unwrap_or(Actor::Operator)
}

/// The subcommand path of a parsed command line (`["partner", "add"]`) and the matches of
/// its last subcommand.
fn leaf(matches: &ArgMatches) -> (Vec<String>, &ArgMatches) {
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_owned());
        m = sub;
    }
    (path, m)
}

/// The operation of a CLI command, by its subcommand path (`partner add`); `export` is a
/// release when it is for a partner (`--partner`), a read of the operator's own copy
/// otherwise. A command [`listed_operation`] does not name is the node's operator's
/// (`manage node`): a command added later is closed to other roles until it is listed (a
/// test walks every command of the CLI).
pub fn operation_of(path: &[&str], for_partner: bool) -> Operation {
    listed_operation(path, for_partner).unwrap_or(Operation::ManageNode)
}

/// The operation of each command the role table knows; `None` for any other path.
fn listed_operation(path: &[&str], for_partner: bool) -> Option<Operation> {
    Some(match path {
        ["audit", ..] => Operation::ReadAudit,
        [
            "partner" | "peer" | "webhook" | "sync" | "invite" | "join",
            ..,
        ] => Operation::ManagePartners,
        [
            "user" | "node" | "init" | "quickstart" | "serve" | "migrate" | "migrate-store",
            ..,
        ] => Operation::ManageNode,
        ["collection", "create"] => Operation::ManageNode,
        ["collection", "share"] => Operation::Release,
        ["export", ..] if for_partner => Operation::Release,
        ["incident", "grant"] => Operation::Release,
        ["approval", ..] => Operation::Release,
        ["import" | "match", ..] => Operation::Import,
        ["incident", "open" | "request" | "respond" | "close"] => Operation::Import,
        ["indicator", "revoke" | "expire" | "false-positive"] => Operation::Import,
        ["export"]
        | ["pattern", "check" | "match"]
        | ["collection", "list"]
        | ["indicator", "show" | "list"]
        | ["incident", "list" | "show"]
        | ["policy", "show" | "explain" | "marking"] => Operation::Browse,
        _ => return None,
    })
}

/// The CLI's door of the role check, before the command runs: the named user of `--as`
/// (or of `[users.os]` for the OS user running it) must exist on the node and its role
/// allow the command's operation. Remembers the actor for [`actor`].
///
/// Errors: `--as` on a command that opens no node; no such user; a refused operation,
/// naming the user, its role, the operation and the roles that may.
pub fn authorize_cli(matches: &ArgMatches, act_as: Option<&str>) -> Result<()> {
    let (path, m) = leaf(matches);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let data = m
        .try_get_one::<PathBuf>("data_dir")
        .ok()
        .flatten()
        .map(|dir| DataDirArg {
            data_dir: dir.clone(),
            database_url: m
                .try_get_one::<String>("database_url")
                .ok()
                .flatten()
                .cloned(),
        });
    let for_partner = m.try_get_one::<String>("partner").ok().flatten().is_some();
    let Some(data) = data else {
        if let Some(name) = act_as {
            bail!(
                "--as {name}: `concord {}` opens no node, so no user can be looked up",
                path.join(" ")
            );
        }
        return Ok(());
    };
    // The OS user's mapping needs the configuration, which exists once the node does.
    let name = match act_as {
        Some(n) => Some(n.to_owned()),
        None if !data.data_dir.join(crate::config::CONFIG_FILE).exists() => None,
        None => {
            let config = Config::load(&data.data_dir)?;
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .and_then(|os| config.users.os.get(&os).cloned())
        }
    };
    let Some(name) = name else {
        let _ = ACTOR.set(Actor::Operator);
        return Ok(());
    };
    let store = crate::open_store(&data).with_context(|| format!("--as {name}"))?;
    let Some(user) = store.user(&name)? else {
        bail!("--as {name}: no user of that name on this node (see `concord user list`)");
    };
    let role: Role = user
        .role
        .parse()
        .map_err(|e: String| anyhow::anyhow!("user {name}: {e}"))?;
    let actor = Actor::User { name, role };
    authorize(&actor, operation_of(&path, for_partner))?;
    let _ = ACTOR.set(actor);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_operations() {
        assert_eq!(
            operation_of(&["audit", "show"], false),
            Operation::ReadAudit
        );
        assert_eq!(
            operation_of(&["partner", "add"], false),
            Operation::ManagePartners
        );
        assert_eq!(operation_of(&["user", "add"], false), Operation::ManageNode);
        assert_eq!(operation_of(&["invite"], false), Operation::ManagePartners);
        assert_eq!(
            operation_of(&["collection", "share"], false),
            Operation::Release
        );
        assert_eq!(
            operation_of(&["collection", "list"], false),
            Operation::Browse
        );
        assert_eq!(operation_of(&["export"], true), Operation::Release);
        assert_eq!(operation_of(&["export"], false), Operation::Browse);
        assert_eq!(operation_of(&["import"], false), Operation::Import);
        assert_eq!(
            operation_of(&["incident", "grant"], false),
            Operation::Release
        );
        assert_eq!(
            operation_of(&["incident", "open"], false),
            Operation::Import
        );
        assert_eq!(
            operation_of(&["policy", "explain"], false),
            Operation::Browse
        );
        // Not listed: the operator's alone (fail closed).
        assert_eq!(
            operation_of(&["collection", "drop"], false),
            Operation::ManageNode
        );
    }

    /// Every command of the CLI is named by the role table: none falls to the closed
    /// default by omission.
    #[test]
    fn every_command_is_listed() {
        fn leaves(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            let subs: Vec<&clap::Command> = cmd
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .collect();
            if subs.is_empty() {
                out.push(path.clone());
            }
            for c in subs {
                path.push(c.get_name().to_owned());
                leaves(c, path, out);
                path.pop();
            }
        }
        let mut all = Vec::new();
        leaves(
            &<crate::Cli as clap::CommandFactory>::command(),
            &mut Vec::new(),
            &mut all,
        );
        assert!(all.len() > 40, "{all:?}");
        for path in &all {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            assert!(
                listed_operation(&path, false).is_some(),
                "`concord {}` is not in the role table (users::listed_operation)",
                path.join(" ")
            );
        }
    }
}
