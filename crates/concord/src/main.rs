//! `concord`: the command line of a Concord node (DESIGN.md, "Interfaces").
//!
//! Exit status: 0 success, 1 a negative answer or invalid input (e.g. an import with rejected
//! objects), 2 a usage or system error. Commands that report take `--json` and then print one
//! JSON document on stdout; messages go to stderr.

mod config;
mod pattern;
mod transfer;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use concord_server::auth::{ADMIN_TOKEN_SETTING, token_hash};
use concord_store::{NewCollection, SqliteStore, Store};

use crate::config::{Config, DEFAULT_CONFIG, DataDir};

/// Concord: exchange threat intelligence (STIX 2.1 over TAXII 2.1) between partners.
#[derive(Parser)]
#[command(name = "concord", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataDirArg {
    /// Data directory of the node (configuration and SQLite database).
    #[arg(long, env = "CONCORD_DATA_DIR", default_value = "concord-data")]
    data_dir: PathBuf,
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
        /// Bundles to import.
        #[arg(required = true)]
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
}

#[derive(Subcommand)]
enum CollectionCommand {
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Init {
            data,
            admin_token,
            json,
        } => init(&data, admin_token, json).map(|_| true),
        Command::Import {
            data,
            collection,
            json,
            files,
        } => {
            let store = open_store(&data)?;
            transfer::import(store.as_ref(), &collection, &files, json)
        }
        Command::Export {
            data,
            collection,
            output,
        } => {
            let store = open_store(&data)?;
            transfer::export(store.as_ref(), &collection, output.as_deref())
        }
        Command::Serve { data, listen } => serve(&data, listen).map(|()| true),
        Command::Quickstart { data, listen } => quickstart(&data, listen),
        Command::Collection { command } => collection(command),
        Command::Pattern { command } => pattern::run(command),
    }
}

fn data_dir(data: &DataDirArg) -> DataDir {
    DataDir {
        dir: data.data_dir.clone(),
    }
}

/// Opens the store of an initialised data directory.
fn open_store(data: &DataDirArg) -> Result<Arc<dyn Store>> {
    let dir = data_dir(data);
    if !dir.database().exists() {
        bail!(
            "{} is not a Concord data directory: run `concord init --data-dir {}` first",
            dir.dir.display(),
            dir.dir.display()
        );
    }
    let store = SqliteStore::open(&dir.database())
        .with_context(|| format!("cannot open {}", dir.database().display()))?;
    Ok(Arc::new(store))
}

/// `concord init`: writes the configuration (if absent), creates the database, sets the
/// admin token. Re-running it on an initialised directory only replaces the token.
fn init(data: &DataDirArg, admin_token: Option<String>, json: bool) -> Result<()> {
    let dir = data_dir(data);
    std::fs::create_dir_all(&dir.dir)
        .with_context(|| format!("cannot create {}", dir.dir.display()))?;
    if !dir.config().exists() {
        std::fs::write(dir.config(), DEFAULT_CONFIG)
            .with_context(|| format!("cannot write {}", dir.config().display()))?;
    }
    Config::load(&dir.dir)?;
    let store = SqliteStore::open(&dir.database())
        .with_context(|| format!("cannot create {}", dir.database().display()))?;
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
    if json {
        let mut out = serde_json::json!({
            "data_dir": dir.dir,
            "database": dir.database(),
            "config": dir.config(),
        });
        if generated {
            out["admin_token"] = token.clone().into();
        }
        println!("{out}");
    } else {
        eprintln!("initialised {}", dir.dir.display());
        if generated {
            eprintln!("admin token (shown once; use as Bearer token or Basic password):");
            println!("{token}");
        }
    }
    Ok(())
}

fn serve(data: &DataDirArg, listen: Option<String>) -> Result<()> {
    let dir = data_dir(data);
    let config = Config::load(&dir.dir)?;
    let store = open_store(data)?;
    let listen = listen.unwrap_or(config.listen.clone());
    let state = concord_server::AppState::new(
        store,
        concord_server::ServerConfig {
            title: config.title,
            description: Some(config.description).filter(|d| !d.is_empty()),
            contact: Some(config.contact).filter(|c| !c.is_empty()),
            api_root: config.api_root.clone(),
            max_content_length: config.max_content_length,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // One line on stdout, for scripts and tests that listen on port 0.
        println!(
            "listening on http://{addr}/taxii2/ (API root /{}/)",
            config.api_root
        );
        tracing::info!(%addr, "serving TAXII 2.1");
        concord_server::serve(listener, state, shutdown_signal()).await?;
        Ok(())
    })
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

fn quickstart(data: &DataDirArg, listen: String) -> Outcome {
    let dir = data_dir(data);
    if !dir.database().exists() {
        init(data, std::env::var("CONCORD_ADMIN_TOKEN").ok(), false)?;
    } else {
        eprintln!(
            "using the existing node in {} (its admin token is unchanged)",
            dir.dir.display()
        );
    }
    let store = open_store(data)?;
    let ok = transfer::import_reader(
        store.as_ref(),
        "ics-attack",
        "ics-attack-18.1.json.gz (shipped)",
        Box::new(flate2::read::GzDecoder::new(ICS_BUNDLE_GZ)),
        false,
    )?;
    drop(store);
    if !ok {
        bail!("the shipped ATT&CK for ICS bundle did not import cleanly");
    }
    serve(data, Some(listen))?;
    Ok(true)
}

fn collection(command: CollectionCommand) -> Outcome {
    match command {
        CollectionCommand::List { data, json } => {
            let store = open_store(&data)?;
            let mut rows = Vec::new();
            for c in store.collections()? {
                let n = store.count(&c.id)?;
                rows.push(serde_json::json!({
                    "id": c.id, "alias": c.alias, "title": c.title,
                    "description": c.description, "object_versions": n,
                }));
            }
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for r in rows {
                    println!(
                        "{}\t{}\t{} object versions",
                        r["id"].as_str().unwrap_or_default(),
                        r["alias"].as_str().unwrap_or_default(),
                        r["object_versions"]
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
            let c = store.create_collection(&NewCollection {
                alias,
                title,
                description,
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": c.id, "alias": c.alias, "title": c.title})
                );
            } else {
                println!("{}", c.id);
            }
            Ok(true)
        }
    }
}

/// Whether progress should be drawn (stderr is a terminal).
fn interactive() -> bool {
    std::io::stderr().is_terminal()
}
