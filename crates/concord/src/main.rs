//! `concord`: the command line of a Concord node (DESIGN.md, "Interfaces").
//!
//! Exit status: 0 success, 1 a negative answer or invalid input (e.g. an import with rejected
//! objects), 2 a usage or system error, 141 stdout was a closed pipe (`| head`). Commands
//! that report take `--json` and then print one JSON document on stdout; messages go to
//! stderr.

/// `println!` for what a command prints on stdout: when stdout is a pipe whose reader has
/// gone (`concord audit show | head`), the process ends quietly with status 141 (as a
/// process killed by SIGPIPE does) instead of panicking; any other write error is reported
/// and ends it with status 2 ([`stdout_failed`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            crate::stdout_failed(e);
        }
    }};
}

/// [`out!`] without the newline (`print!`).
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($arg)*) {
            crate::stdout_failed(e);
        }
    }};
}

mod approval;
mod audit;
mod config;
mod incident;
mod indicator;
mod join;
mod matching;
mod misp;
mod partner;
mod pattern;
mod policy;
mod sync;
mod transfer;
mod users;
mod webhook;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Subcommand};
use concord_server::auth::{ADMIN_TOKEN_SETTING, token_hash};
use concord_store::{NewCollection, PostgresStore, SqliteStore, Store};

use crate::config::{Config, DEFAULT_CONFIG, DataDir, with_database_url};

/// Concord: exchange threat intelligence (STIX 2.1 over TAXII 2.1) between partners.
#[derive(clap::Parser)]
#[command(
    name = "concord",
    version,
    about = "Share cyber-threat intelligence with partners: import STIX 2.1, MISP and IOC lists, \
             serve them over TAXII 2.1 under each partner's sharing agreement, match your logs \
             against them",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written on stderr: `text` for people, `json` for log shippers (one
    /// JSON object per line; `serve` writes one per request with its request id, route,
    /// status, principal and duration).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CONCORD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Act as this named user (`concord user add`): its role must allow the command, and
    /// the audit log names it. Default: the OS user mapped in `[users.os]`, else the
    /// node's operator.
    #[arg(long = "as", global = true, value_name = "NAME", env = "CONCORD_AS")]
    act_as: Option<String>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Clone)]
struct DataDirArg {
    /// Data directory of the node (configuration and SQLite database).
    #[arg(long, env = "CONCORD_DATA_DIR", default_value = "concord-data")]
    data_dir: PathBuf,
    /// Database: a PostgreSQL URL (`postgres://USER@HOST/DB`) or `sqlite:PATH`; overrides
    /// `database_url` of the configuration (default: the SQLite file in the data directory).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration, database, admin token.
    Init {
        #[command(flatten)]
        data: DataDirArg,
        /// Admin token to set (otherwise one is generated and printed once).
        #[arg(long, env = "CONCORD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// The node's jurisdiction, ISO 3166-1 alpha-2 (e.g. CN, DE): partners elsewhere are
        /// across a border for the egress policy. Without it, every partner is.
        #[arg(long, value_name = "CC")]
        jurisdiction: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Import STIX 2.1 bundles (files, `-` for stdin, `.gz` compressed) into a collection.
    Import {
        #[command(flatten)]
        data: DataDirArg,
        /// Collection (alias or id); created when it does not exist.
        #[arg(long)]
        collection: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// What the files hold: `stix` (STIX 2.1 bundles; also MISP event JSON, recognised
        /// by its shape) or `ioc-list` (one IP, CIDR, domain, URL, hash or e-mail address per
        /// line, made into indicators with deterministic ids).
        #[arg(long, value_name = "FORMAT", default_value = "stix", value_parser = ["stix", "ioc-list"])]
        format: String,
        /// `ioc-list`: lines with an IPv4 CIDR block shorter than this prefix (such as
        /// `0.0.0.0/0`, which would match every address) are refused.
        #[arg(long, value_name = "BITS", default_value_t = concord_match::ioc_list::DEFAULT_MIN_PREFIX_V4,
              value_parser = clap::value_parser!(u8).range(0..=32))]
        min_prefix_v4: u8,
        /// `ioc-list`: the same for IPv6 (`::/0`).
        #[arg(long, value_name = "BITS", default_value_t = concord_match::ioc_list::DEFAULT_MIN_PREFIX_V6,
              value_parser = clap::value_parser!(u8).range(0..=128))]
        min_prefix_v6: u8,
        /// MISP: feeds, report or grouping, warninglists.
        #[command(flatten)]
        misp: misp::ImportArgs,
        /// Transfer packages (directories or `.tar` files written by `export --package`): the producer's
        /// public node key (a file with 64 hex digits, from its `concord node key -o FILE`)
        /// that must have signed them and that their manifest must name. Without it, the
        /// key of a known peer (`peer add --node-key`) that the package names. Either way a
        /// package addressed to another node's key is refused.
        #[arg(long, value_name = "KEYFILE")]
        signed_by: Option<PathBuf>,
        /// Transfer packages: check signature, file digests and chain, and store nothing.
        #[arg(long)]
        verify_only: bool,
        /// Bundles or MISP event JSON files to import, or transfer packages (directories,
        /// or `.tar` files: the same package as one file).
        #[arg(required_unless_present = "misp_feed")]
        files: Vec<PathBuf>,
    },
    /// Write every object version of a collection as one STIX 2.1 bundle.
    Export {
        #[command(flatten)]
        data: DataDirArg,
        /// Collection (alias or id).
        #[arg(long)]
        collection: String,
        /// Output file (default: stdout).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Export what this partner would receive: every object passes the egress policy for
        /// it (withheld ones are left out). Without it, the operator's full copy.
        #[arg(long, value_name = "NAME")]
        partner: Option<String>,
        /// Output format: a STIX bundle, MISP event JSON, a MISP feed directory (`-o DIR`),
        /// or the indicators as sensors load them (suricata, zeek-intel, rpz, csv, plain).
        #[arg(long, value_enum, default_value_t)]
        format: misp::Format,
        /// Write a signed transfer package into the new directory `-o DIR` instead, or as
        /// one uncompressed tar of the same files with `-o FILE.tar` (needs `--partner`):
        /// the partner's copies, compressed, a manifest with the SHA-256 of each file and
        /// the previous package's digest, signed with the node key, addressed to the node
        /// key of the partner's node (`--recipient-key`, or `peer add NAME --node-key
        /// KEYFILE --partner P`; refused while none is known).
        #[arg(long, requires_all = ["partner", "output"], conflicts_with = "format")]
        package: bool,
        /// With `--package`: the public node key of the partner's node (a file with 64 hex
        /// digits, its `concord node key -o FILE`), for a partner whose node is not
        /// recorded as a peer. A peer linked to the partner with another key: refused.
        #[arg(long, value_name = "KEYFILE", requires = "package")]
        recipient_key: Option<PathBuf>,
        /// With `--package`: only what was added since the last package for this partner
        /// and collection.
        #[arg(long, requires = "package")]
        since_last: bool,
        /// With `--package`: how the object files are compressed.
        #[arg(long, value_enum, default_value_t, requires = "package")]
        compression: transfer::PackageCompression,
        /// Sensor formats: leave out values on these MISP warninglists (a directory of
        /// `<name>/list.json`). Default: `feed_warninglists` of concord.toml.
        #[arg(long, value_name = "DIR")]
        warninglists: Option<PathBuf>,
    },
    /// Serve TAXII 2.1 until interrupted.
    Serve {
        #[command(flatten)]
        data: DataDirArg,
        /// Address to listen on (overrides `listen` of the configuration); port 0 picks one.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Set up a node with MITRE ATT&CK for ICS (shipped with Concord) and serve it.
    Quickstart {
        #[command(flatten)]
        data: DataDirArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The node's jurisdiction, ISO 3166-1 alpha-2 (e.g. CN, DE), as for `init`: partners
        /// elsewhere are across a border for the egress policy. Without it, every partner is.
        #[arg(long, value_name = "CC")]
        jurisdiction: Option<String>,
    },
    /// Check STIX patterns, or evaluate one against observed-data.
    Pattern {
        #[command(subcommand)]
        command: pattern::PatternCommand,
    },
    /// Manage collections.
    Collection {
        #[command(subcommand)]
        command: CollectionCommand,
    },
    /// Manage partners: organisations with an API key and permissions on this node.
    Partner {
        #[command(subcommand)]
        command: partner::PartnerCommand,
    },
    /// Match log files against the indicators of collections: one JSON line per hit, and
    /// optionally one STIX sighting per matched indicator.
    Match(matching::MatchArgs),
    /// Indicators that change together across borders: sightings and false-positive
    /// reports per indicator; revoke or expire the ones this node created (new versions,
    /// carried by sync).
    Indicator {
        #[command(subcommand)]
        command: indicator::IndicatorCommand,
    },
    /// Manage peers: TAXII 2.1 servers this node pulls from and pushes to.
    Peer {
        #[command(subcommand)]
        command: sync::PeerCommand,
    },
    /// Manage webhooks: new objects POSTed, signed, to a receiver while `serve` runs.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Invite an organisation to join as a partner: writes a signed, single-use invitation
    /// file (issue 19).
    Invite(join::InviteArgs),
    /// Join the node that wrote an invitation: one exchange creates the partner and the
    /// peer on both sides, and prints what will flow (issue 19).
    Join(join::JoinArgs),
    /// Run one sync round with every peer (or one) and exit; `serve` runs rounds on schedule.
    Sync {
        #[command(flatten)]
        data: DataDirArg,
        /// Only this peer.
        #[arg(long, value_name = "NAME")]
        peer: Option<String>,
        /// Objects per pulled page (the peer may send fewer).
        #[arg(long, value_name = "N", default_value_t = 500)]
        page_size: usize,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Cross-border incident coordination: incidents, requests for assistance to partners,
    /// answers, deadlines (STIX Incident Core objects, carried by sync).
    Incident {
        #[command(subcommand)]
        command: incident::IncidentCommand,
    },
    /// Four-eyes release (`[release] four_eyes`): list the changes that widen a
    /// cross-border release and wait for a second releaser; approve (apply) or reject one.
    Approval {
        #[command(subcommand)]
        command: approval::ApprovalCommand,
    },
    /// The egress policy: show the active version, explain what a partner would receive.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// The audit log of every egress and ingress: verify it, show what went where, sign
    /// checkpoints, archive old entries.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The node itself: its signing key.
    Node {
        #[command(subcommand)]
        command: audit::NodeCommand,
    },
    /// Named users of the node and their roles: analyst, releaser, operator, auditor.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Apply pending schema migrations to the node's database (also done at every start).
    Migrate {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Copy a node's data from one store to another (today: SQLite to PostgreSQL), then
    /// verify the copy by counts and a checksum of both sides.
    MigrateStore {
        /// Source: `sqlite:PATH` (e.g. `sqlite:concord-data/concord.sqlite`).
        #[arg(long, value_name = "sqlite:PATH")]
        from: String,
        /// Target: a PostgreSQL URL; its schema must hold no collection yet.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CollectionCommand {
    /// Set how a collection is shared with partners (TLP gate).
    Share {
        #[command(flatten)]
        data: DataDirArg,
        /// Alias or id of the collection.
        collection: String,
        /// TLP of objects without a TLP marking: clear, green, amber (the default),
        /// amber+strict, red.
        #[arg(long, value_name = "TLP")]
        default_tlp: Option<String>,
        /// Share TLP:GREEN with this sharing group only (repeatable).
        #[arg(long = "group", value_name = "G", conflicts_with = "community")]
        groups: Vec<String>,
        /// Share TLP:GREEN with every partner (the default).
        #[arg(long)]
        community: bool,
        /// Recipient of TLP:AMBER/AMBER+STRICT objects: a partner name, or `group:G` for the
        /// members of a group (AMBER only) (repeatable; replaces the list).
        #[arg(long = "recipient", value_name = "P")]
        recipients: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List collections with their number of object versions.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Create an empty collection.
    Create {
        #[command(flatten)]
        data: DataDirArg,
        /// Alias (unique name) of the collection.
        alias: String,
        /// Title (default: the alias).
        #[arg(long)]
        title: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Outcome of a command that succeeded in running: `Ok(false)` is a negative answer (exit 1).
type Outcome = Result<bool>;

fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let (matches, cli) = match parsed {
        Ok(x) => x,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colours only on a terminal: log files and pipes get plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    if let Err(e) = users::authorize_cli(&matches, cli.act_as.as_deref()) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // Output written through a handle of its own (`export`, `match`) to a closed pipe.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(141)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What a failed write of [`out!`] does: a closed pipe ends the process quietly with status
/// 141 (128 + SIGPIPE, what a shell reports for a reader that stopped early); any other
/// error is reported, status 2.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(2);
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Init {
            data,
            admin_token,
            jurisdiction,
            json,
        } => init(&data, admin_token, jurisdiction, json).map(|_| true),
        Command::Import {
            data,
            collection,
            json,
            format,
            min_prefix_v4,
            min_prefix_v6,
            misp,
            signed_by,
            verify_only,
            files,
        } => {
            let config = Config::load(&data_dir(&data).dir)?;
            transfer::set_limits(config.ingress_limits());
            let store = open_store(&data)?;
            // A package is a directory, or one file named `.tar`.
            let is_package = |f: &PathBuf| {
                f.is_dir() || concord_sync::package::Form::of(f) == concord_sync::package::Form::Tar
            };
            if files.iter().any(is_package) {
                if format != "stix" || !files.iter().all(is_package) {
                    bail!(
                        "transfer packages (directories and .tar files) are imported on their \
                         own, without --format or other files"
                    );
                }
                // A package is imported only by the node it is addressed to: this one's key.
                let this_node = audit::node_key(&data.data_dir, store.as_ref())?.public();
                return transfer::import_packages(
                    store.as_ref(),
                    &collection,
                    &files,
                    &this_node,
                    signed_by.as_deref(),
                    verify_only,
                    json,
                );
            }
            if verify_only {
                bail!("--verify-only applies to transfer packages (directories and .tar files)");
            }
            if let Some(key) = &signed_by {
                bail!(
                    "--signed-by {}: applies to transfer packages (directories and .tar \
                     files), and no file given is one",
                    key.display()
                );
            }
            if format == "ioc-list" {
                return matching::import_ioc_lists(
                    store.as_ref(),
                    &collection,
                    &files,
                    (min_prefix_v4, min_prefix_v6),
                    json,
                );
            }
            misp::import(
                store.as_ref(),
                &collection,
                &files,
                &misp,
                json,
                config.tlp_version()?,
            )
        }
        Command::Export {
            data,
            collection,
            output,
            partner,
            format,
            package,
            recipient_key,
            since_last,
            compression,
            warninglists,
        } => {
            let store = open_store(&data)?;
            if package {
                let (Some(partner), Some(output)) = (partner, output) else {
                    bail!("--package needs --partner P and -o DIR (or -o FILE.tar)");
                };
                let policy = policy::load(&data, store.as_ref())?;
                let key = audit::node_key(&data.data_dir, store.as_ref())?;
                let title = Config::load(&data.data_dir)?.title;
                return transfer::export_package(
                    store,
                    &transfer::PackageRequest {
                        collection: &collection,
                        partner: &partner,
                        output: &output,
                        recipient_key: recipient_key.as_deref(),
                        since_last,
                        compression,
                        producer: &title,
                    },
                    policy,
                    &key,
                );
            }
            // The policy is built only for a partner's export: the operator's copy is the
            // stored one.
            let policy = match partner {
                Some(_) => Some(policy::load(&data, store.as_ref())?),
                None => None,
            };
            if let Some(feed) = format.feed() {
                let dir = match warninglists {
                    Some(d) => Some(d),
                    None => feed_warninglists(&data)?,
                };
                let lists = match &dir {
                    Some(d) => Some(
                        concord_misp::Warninglists::load_dir(d)
                            .with_context(|| format!("warninglists {}", d.display()))?,
                    ),
                    None => None,
                };
                return transfer::export_feed(
                    store.clone(),
                    &collection,
                    feed,
                    output.as_deref(),
                    partner.as_deref().zip(policy.as_ref()),
                    lists.as_ref(),
                );
            }
            if format != misp::Format::Stix {
                return misp::export(
                    store.clone(),
                    &collection,
                    format,
                    output.as_deref(),
                    partner.as_deref().zip(policy.as_ref()),
                );
            }
            transfer::export(
                store.clone(),
                &collection,
                output.as_deref(),
                partner.as_deref().zip(policy.as_ref()),
            )
        }
        Command::Serve { data, listen } => serve(&data, listen).map(|()| true),
        Command::Quickstart {
            data,
            listen,
            jurisdiction,
        } => quickstart(&data, listen, jurisdiction),
        Command::Collection { command } => collection(command),
        Command::Partner { command } => partner::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Node { command } => audit::run_node(command),
        Command::Policy { command } => policy::run(command),
        Command::Incident { command } => incident::run(command),
        Command::Approval { command } => approval::run(command),
        Command::Peer { command } => sync::run_peer(command),
        Command::Webhook { command } => webhook::run(command),
        Command::Match(args) => matching::run_match(args),
        Command::Indicator { command } => indicator::run(command),
        Command::Invite(args) => join::invite(args),
        Command::Join(args) => join::join(args),
        Command::Sync {
            data,
            peer,
            page_size,
            json,
        } => sync::sync_once(&data, peer.as_deref(), page_size, json),
        Command::Pattern { command } => pattern::run(command),
        Command::User { command } => users::run(command),
        Command::Migrate { data, json } => migrate(&data, json),
        Command::MigrateStore { from, to, json } => migrate_store(&from, &to, json),
    }
}

fn data_dir(data: &DataDirArg) -> DataDir {
    DataDir {
        dir: data.data_dir.clone(),
    }
}

/// Where a node's data lives.
enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Location {
    /// What `concord_store::open` takes.
    fn as_str(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("sqlite:{}", p.display()),
            Location::Postgres(url) => url.clone(),
        }
    }

    /// For messages: the path, or the URL without its password.
    fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A URL with its password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The database of a node: `--database-url`, else `database_url` of the configuration (or
/// `CONCORD_DATABASE_URL`), else the SQLite file of the data directory.
fn location(data: &DataDirArg) -> Result<Location> {
    let dir = data_dir(data);
    let url = match &data.database_url {
        Some(u) => u.clone(),
        None => Config::load(&dir.dir)?.database_url,
    };
    Ok(if url.is_empty() {
        Location::Sqlite(dir.database())
    } else if concord_store::postgres::is_url(&url) {
        Location::Postgres(url)
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        Location::Sqlite(PathBuf::from(path))
    } else {
        bail!(
            "database URL {:?}: expected postgres://… or sqlite:PATH",
            redact(&url)
        )
    })
}

/// Opens the store of an initialised node (applying pending migrations), sized by the
/// `[limits]` of its configuration ([`config::Limits::store`]).
fn open_store(data: &DataDirArg) -> Result<Arc<dyn Store>> {
    let dir = data_dir(data);
    let options = Config::load(&dir.dir)?.limits.store();
    match location(data)? {
        Location::Sqlite(path) => {
            if !path.exists() {
                bail!(
                    "{} is not a Concord data directory: run `concord init --data-dir {}` first",
                    dir.dir.display(),
                    dir.dir.display()
                );
            }
            let store = SqliteStore::open_with(&path, &options)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Location::Postgres(url) => {
            let store = PostgresStore::open_with(&url, &options)
                .with_context(|| format!("cannot open {}", redact(&url)))?;
            Ok(Arc::new(store))
        }
    }
}

/// What `init` and `quickstart` say on a terminal when no jurisdiction is given.
const NO_JURISDICTION_NOTE: &str = "note: no --jurisdiction given: every partner counts as \
across a border, so personal data is pseudonymised for all of them (domestic partners \
included). Run `concord init --jurisdiction CC` (ISO 3166-1 alpha-2, e.g. DE) to set it.";

/// `concord init`: writes the configuration (if absent), creates the database, sets the
/// admin token. Re-running it on an initialised directory only replaces the token.
fn init(
    data: &DataDirArg,
    admin_token: Option<String>,
    jurisdiction: Option<String>,
    json: bool,
) -> Result<()> {
    // Checked before anything is written.
    let jurisdiction = jurisdiction
        .map(|j| concord_admin::ops::jurisdiction_code(&j))
        .transpose()?;
    let dir = data_dir(data);
    std::fs::create_dir_all(&dir.dir)
        .with_context(|| format!("cannot create {}", dir.dir.display()))?;
    if !dir.config().exists() || data.database_url.is_some() {
        let text = match std::fs::read_to_string(dir.config()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_CONFIG.to_owned(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", dir.config().display()));
            }
        };
        // `--database-url` is remembered, so that later commands find the database.
        let text = match &data.database_url {
            Some(url) => with_database_url(&text, url),
            None => text,
        };
        std::fs::write(dir.config(), text)
            .with_context(|| format!("cannot write {}", dir.config().display()))?;
    }
    Config::load(&dir.dir)?;
    let location = location(data)?;
    let store: Box<dyn Store> = concord_store::open(&location.as_str())
        .with_context(|| format!("cannot create {}", location.display()))?;
    let generated = admin_token.is_none();
    let token = match admin_token {
        Some(t) if t.len() < 16 => bail!("--admin-token must be at least 16 characters"),
        Some(t) => t,
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    store.set_setting(ADMIN_TOKEN_SETTING, &token_hash(&token))?;
    match &jurisdiction {
        Some(j) => store.set_setting(concord_server::policy::JURISDICTION_SETTING, j)?,
        // Said only to a person at a terminal: a script that wants no jurisdiction gets no
        // noise. What it changes is large enough to say before the first transfer.
        None if interactive()
            && store
                .setting(concord_server::policy::JURISDICTION_SETTING)?
                .is_none() =>
        {
            eprintln!("{NO_JURISDICTION_NOTE}");
        }
        None => {}
    }
    if json {
        let mut out = serde_json::json!({
            "data_dir": dir.dir,
            "database": location.display(),
            "config": dir.config(),
        });
        if generated {
            out["admin_token"] = token.clone().into();
        }
        out!("{out}");
    } else {
        eprintln!("initialised {}", dir.dir.display());
        if generated {
            eprintln!("admin token (shown once; use as Bearer token or Basic password):");
            out!("{token}");
        }
    }
    Ok(())
}

/// Signs audit checkpoints beside the server (see [`concord_store::audit::checkpoint_if_due`]).
fn spawn_checkpointer(dir: &std::path::Path, store: Arc<dyn Store>, every: i64) -> Result<()> {
    let key = audit::node_key(dir, store.as_ref())?;
    std::thread::Builder::new()
        .name("concord-audit".into())
        .spawn(move || {
            for tick in 0u64.. {
                if let Err(e) = store.flush() {
                    tracing::warn!(error = %e, "cannot flush the audit log");
                }
                let now = concord_store::Timestamp::now_micros().unix_nanos();
                if tick.is_multiple_of(5)
                    && let Err(e) =
                        concord_store::audit::checkpoint_if_due(store.as_ref(), &key, every, now)
                {
                    tracing::warn!(error = %e, "cannot sign an audit checkpoint");
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .context("cannot start the audit checkpointer")?;
    Ok(())
}

/// `feed_warninglists` of the node's concord.toml, relative to the data directory; `None`
/// when empty.
fn feed_warninglists(data: &DataDirArg) -> Result<Option<PathBuf>> {
    let dir = data_dir(data);
    let config = Config::load(&dir.dir)?;
    Ok((!config.feed_warninglists.is_empty()).then(|| dir.dir.join(&config.feed_warninglists)))
}

fn serve(data: &DataDirArg, listen: Option<String>) -> Result<()> {
    let dir = data_dir(data);
    let config = Config::load(&dir.dir)?;
    let store = open_store(data)?;
    // A benchmark build (BENCHMARKS §11, issue 17): the "audit stubbed" side of the
    // comparison, said on every start so that nobody mistakes it for a node.
    #[cfg(feature = "bench-stub-audit")]
    let store: Arc<dyn Store> = {
        eprintln!(
            "BENCHMARK BUILD (feature bench-stub-audit): transfers are NOT recorded in the \
             audit log; never serve partners with this binary"
        );
        Arc::new(concord_store::bench_stub::NoAudit(store))
    };
    let listen = listen.unwrap_or(config.listen.clone());
    let ingress = config.ingress_limits();
    let peer_files_dir = config.peer_files_dir(&dir.dir);
    let own_files = config.own_files(&dir.dir);
    // Sync rounds and the peer and join doors under `[outbound] allow` (checked before
    // anything listens).
    let round = config.round()?;
    let state = concord_server::AppState::new(
        store.clone(),
        concord_server::ServerConfig {
            title: config.title,
            description: Some(config.description).filter(|d| !d.is_empty()),
            contact: Some(config.contact).filter(|c| !c.is_empty()),
            api_root: config.api_root.clone(),
            max_content_length: config.max_content_length,
            ingress,
            limits: config.limits.server(),
            policy: config.policy,
            auth_limits: config.limits.auth(),
        },
    )?;
    let state = state
        .with_users(config.users.options()?)
        .with_four_eyes(config.release.four_eyes)
        .with_unnamed_persons(config.release.unnamed_persons);
    // Agreement documents served to partners are signed with the node key (issue 19).
    let state = state.with_node_key(Arc::new(audit::node_key(&dir.dir, store.as_ref())?));
    let state = match feed_warninglists(data)? {
        Some(d) => state.with_warninglists(Arc::new(
            concord_misp::Warninglists::load_dir(&d)
                .with_context(|| format!("feed_warninglists {}", d.display()))?,
        )),
        None => state,
    };
    // The web UI's OpenID Connect login (checked before anything listens).
    let oidc = config.oidc.options(&dir.dir, &config.public_url)?;
    let connections = config.limits.connections();
    // Checked before anything listens: a bad `[webhooks]` key stops `serve` at once.
    config.webhooks.options()?;
    // Checkpoints of the audit log, signed with the node key, every `checkpoint_every`
    // entries (checked every 5 s); read entries flushed to disk every second. Blocking
    // store calls: started before the async runtime.
    spawn_checkpointer(&dir.dir, store.clone(), config.audit.checkpoint_every)?;
    // Notices of requests for assistance addressed to this node (`[incident]`).
    incident::spawn_notifier(&dir.dir, store.clone(), &config.incident)?;
    // The admin API verifies checkpoints against the key file's public half, as
    // `concord audit verify` does.
    let admin = concord_admin::AdminConfig {
        node_public_key: Some(audit::node_key(&dir.dir, store.as_ref())?.public()),
        peer_files_dir: Some(peer_files_dir),
        own_files,
        webhook_options: Some(config.webhooks.options()?),
        outbound: round.outbound.clone(),
    };
    // Invitations are answered at POST /concord/join/ (issue 19), signed with the node key.
    let join = {
        let (me, _) = join::node_self(data, store.as_ref())?;
        concord_admin::join::JoinService {
            me,
            files: concord_admin::ops::PeerFiles {
                within: admin.peer_files_dir.clone(),
                refused: admin.own_files.clone(),
            },
            outbound: round.outbound.clone(),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // TLS (checked before anything listens): the certificate files named by the config.
    let tls = if config.tls_cert.is_empty() {
        None
    } else {
        let files = concord_server::TlsFiles {
            cert: config.tls_cert.clone(),
            key: config.tls_key.clone(),
            client_ca: Some(config.tls_client_ca.clone()).filter(|c| !c.is_empty()),
        };
        // Client certificates pinned by partners (`join --mtls`, issue 19) are accepted
        // beside tls_client_ca's.
        Some(
            concord_server::tls_server(&files, store.clone())
                .map_err(|e| anyhow::anyhow!("TLS: {e}"))?,
        )
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {listen} (another process on that port? \
                     --listen 127.0.0.1:0 picks a free one and prints it)"
                )
            })?;
        let addr = listener.local_addr()?;
        // One line on stdout, for scripts and tests that listen on port 0.
        let scheme = if tls.is_some() { "https" } else { "http" };
        out!(
            "listening on {scheme}://{addr}/taxii2/ (API root /{}/)",
            config.api_root
        );
        eprintln!("web UI on {scheme}://{addr}/ui/");
        tracing::info!(%addr, "serving TAXII 2.1 and the web UI");
        // Sync rounds with the peers run beside the server, with the same policy.
        if config.sync_schedule {
            sync::spawn_scheduler(store.clone(), (*state.policy()).clone(), round)
                .context("cannot start the sync scheduler")?;
        }
        // Webhooks (`concord webhook add`) are delivered beside the server, with the same
        // policy.
        webhook::spawn_deliverer(store, (*state.policy()).clone(), &config.webhooks)?;
        // TAXII and the web UI (at /ui/) on the same listener and state.
        let bodies = concord_server::BodyLimits::of(state.config());
        let stopping = state.clone();
        // The signal also tells long work (imports) to roll back and give up, so that the
        // grace period is spent closing connections, not waiting on them.
        let shutdown = async move {
            shutdown_signal().await;
            stopping.stop();
        };
        let app = concord_server::router(state.clone())
            .merge(concord_admin::join::router(state.clone(), join))
            .merge(concord_admin::router(state.clone(), admin))
            .merge(concord_web::router_with(
                state,
                concord_web::WebOptions { oidc },
            ));
        let app = concord_server::limit_bodies_with(concord_server::ops::observe(app), bodies);
        match tls {
            Some(tls) => {
                concord_server::serve_tls(listener, app, tls, connections, shutdown).await?;
            }
            None => concord_server::serve(listener, app, connections, shutdown).await?,
        }
        anyhow::Ok(())
    })?;
    // Blocking work that checks no flag (a long /api/match, a sync round) must not hold the
    // process either: its transaction is not committed, so leaving it is safe.
    runtime.shutdown_timeout(concord_server::SHUTDOWN_GRACE);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The ATT&CK for ICS bundle shipped with Concord (MITRE ATT&CK terms of use, see
/// `assets/LICENSE-MITRE-ATTACK.txt`).
const ICS_BUNDLE_GZ: &[u8] = include_bytes!("../assets/ics-attack-18.1.json.gz");

fn quickstart(data: &DataDirArg, listen: String, jurisdiction: Option<String>) -> Outcome {
    let dir = data_dir(data);
    let initialised = match location(data)? {
        Location::Sqlite(path) => path.exists(),
        Location::Postgres(_) => open_store(data)?.setting(ADMIN_TOKEN_SETTING)?.is_some(),
    };
    if !initialised {
        init(
            data,
            std::env::var("CONCORD_ADMIN_TOKEN").ok(),
            jurisdiction,
            false,
        )?;
    } else {
        eprintln!(
            "using the existing node in {} (its admin token is unchanged)",
            dir.dir.display()
        );
        // An existing node gets a jurisdiction it lacks; one it has is never changed
        // silently (every earlier transfer was decided under it).
        if let Some(j) = jurisdiction {
            let j = concord_admin::ops::jurisdiction_code(&j)?;
            let store = open_store(data)?;
            match store.setting(concord_server::policy::JURISDICTION_SETTING)? {
                None => store.set_setting(concord_server::policy::JURISDICTION_SETTING, &j)?,
                Some(old) if old == j => {}
                Some(old) => bail!(
                    "the node in {} already has the jurisdiction {old}, not {j}",
                    dir.dir.display()
                ),
            }
        }
    }
    let store = open_store(data)?;
    let ok = transfer::import_reader(
        store.as_ref(),
        "ics-attack",
        "ics-attack-18.1.json.gz (shipped)",
        Box::new(flate2::read::GzDecoder::new(ICS_BUNDLE_GZ)),
        false,
    )?;
    if !ok {
        bail!("the shipped ATT&CK for ICS bundle did not import cleanly");
    }
    // ATT&CK is public (MITRE's terms of use): partners may read it as TLP:CLEAR unless the
    // operator has set the collection's sharing otherwise.
    if let Some(c) = store.collection("ics-attack")?
        && store
            .setting(&concord_policy::egress::sharing_setting_key(&c.id))?
            .is_none()
    {
        let sharing = concord_policy::egress::CollectionSharing {
            default_tlp: concord_policy::tlp::Tlp::Clear,
            ..Default::default()
        };
        store.set_setting(
            &concord_policy::egress::sharing_setting_key(&c.id),
            &sharing.to_json(),
        )?;
    }
    drop(store);
    serve(data, Some(listen))?;
    Ok(true)
}

fn collection(command: CollectionCommand) -> Outcome {
    match command {
        CollectionCommand::Share {
            data,
            collection,
            default_tlp,
            groups,
            community,
            recipients,
            json,
        } => {
            let store = open_store(&data)?;
            partner::share(
                &data,
                store.as_ref(),
                &collection,
                default_tlp.as_deref(),
                &groups,
                community,
                &recipients,
                json,
            )
        }
        CollectionCommand::List { data, json } => {
            let store = open_store(&data)?;
            let rows = concord_admin::ops::list_collections(store.as_ref())?;
            if json {
                out!("{}", serde_json::to_value(&rows)?);
            } else {
                for r in rows {
                    out!(
                        "{}\t{}\t{} object versions",
                        r.id,
                        r.alias.unwrap_or_default(),
                        r.object_versions
                    );
                }
            }
            Ok(true)
        }
        CollectionCommand::Create {
            data,
            alias,
            title,
            description,
            json,
        } => {
            let store = open_store(&data)?;
            let c = concord_admin::ops::create_collection(
                store.as_ref(),
                &NewCollection {
                    alias,
                    title,
                    description,
                },
            )?;
            if json {
                out!(
                    "{}",
                    serde_json::json!({"id": c.id, "alias": c.alias, "title": c.title})
                );
            } else {
                out!("{}", c.id);
            }
            Ok(true)
        }
    }
}

/// Whether progress should be drawn (stderr is a terminal).
/// `n` and the noun, singular for one: `count(1, "line")` is `1 line`, `count(2, "line")`
/// `2 lines` (issue 24, item 13: the reports said `1 lines`, `1 events`).
pub(crate) fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A rate for progress lines: whole units per second under 10,000, else with a thousands
/// separator and no fraction (issue 24, item 13: it showed `23,943.6669/s`).
pub(crate) fn rate(per_sec: f64) -> String {
    let n = per_sec.max(0.0).round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && digits.len() > 4 {
            out.push(',');
        }
        out.push(c);
    }
    out + "/s"
}

fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// `concord migrate`: applies pending migrations and says which ran.
fn migrate(data: &DataDirArg, json: bool) -> Outcome {
    let location = location(data)?;
    if let Location::Sqlite(path) = &location
        && !path.exists()
    {
        bail!(
            "{} does not exist: run `concord init` first",
            path.display()
        );
    }
    let report = concord_store::migrate(&location.as_str())
        .with_context(|| format!("cannot migrate {}", location.display()))?;
    if json {
        out!(
            "{}",
            serde_json::json!({
                "database": location.display(), "from": report.from, "to": report.to,
                "applied": report.applied,
            })
        );
    } else if report.applied.is_empty() {
        eprintln!(
            "{}: schema version {}, up to date",
            location.display(),
            report.to
        );
    } else {
        eprintln!(
            "{}: schema version {} -> {} (applied {})",
            location.display(),
            report.from,
            report.to,
            report.applied.join(", ")
        );
    }
    Ok(true)
}

/// `concord migrate-store --from sqlite:PATH --to postgres://…`: copies a node's data, then
/// compares counts and checksums of both sides. Exit 1 when they differ.
fn migrate_store(from: &str, to: &str, json: bool) -> Outcome {
    let Some(path) = from.strip_prefix("sqlite:") else {
        bail!("--from {from:?}: expected sqlite:PATH");
    };
    let path = PathBuf::from(path);
    if !concord_store::postgres::is_url(to) {
        bail!("--to {:?}: expected a postgres:// URL", redact(to));
    }
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    // Brings the source to the current schema first.
    drop(SqliteStore::open(&path).with_context(|| format!("cannot open {}", path.display()))?);
    let target = PostgresStore::open(to).with_context(|| format!("cannot open {}", redact(to)))?;
    if !target.is_empty()? {
        bail!(
            "{} already holds collections or object versions: migrate-store copies into an empty database (or schema) only",
            redact(to)
        );
    }
    let bar = if interactive() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} copying: {pos} rows ({per_sec}, {elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    let source = concord_store::postgres::summarize_sqlite(&path)?;
    let rows = target.copy_from_sqlite(&path, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let copied = target.summary()?;
    let same = source == copied;
    let side = |s: &concord_store::postgres::StoreSummary| {
        serde_json::json!({
            "collections": s.collections, "object_versions": s.object_versions,
            "entries": s.entries, "status_resources": s.status_resources,
            "settings": s.settings, "partners": s.partners, "checksum": s.checksum,
        })
    };
    if json {
        out!(
            "{}",
            serde_json::json!({
                "from": path, "to": redact(to), "rows": rows, "verified": same,
                "source": side(&source), "target": side(&copied),
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else {
        for (name, s) in [("source", &source), ("target", &copied)] {
            out!(
                "{name}: {} collections, {} object versions, {} entries, {} status resources, {} settings, {} partners; checksum {}",
                s.collections,
                s.object_versions,
                s.entries,
                s.status_resources,
                s.settings,
                s.partners,
                s.checksum
            );
        }
        eprintln!(
            "{} rows copied in {:.1} s; {}",
            rows,
            started.elapsed().as_secs_f64(),
            if same {
                "counts and checksums agree"
            } else {
                "counts or checksums DIFFER"
            }
        );
    }
    Ok(same)
}

#[cfg(test)]
mod tests {
    /// Issue 24, item 13: plurals and progress rates.
    #[test]
    fn counts_and_rates() {
        assert_eq!(super::count(1u64, "line"), "1 line");
        assert_eq!(super::count(0u64, "line"), "0 lines");
        assert_eq!(super::count(2u64, "event"), "2 events");
        assert_eq!(super::rate(23_943.666_9), "23,944/s");
        assert_eq!(super::rate(1_234_567.0), "1,234,567/s");
        assert_eq!(super::rate(9_999.4), "9999/s");
        assert_eq!(super::rate(12.5), "13/s");
        assert_eq!(super::rate(0.2), "0/s");
    }
}
