//! The `switchyard` binary.
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use switchyard_core::{ApiKeyId, OrgId, Scope};

/// mimalloc: measured faster than the system allocator on the delivery path,
/// where many small buffers are allocated and freed across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod actions;
mod bench;
mod bootstrap;
mod client;
mod config;

use config::{Config, LogFormat, Overrides};

/// Switchyard: an integrations hub for IoT and energy platforms.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Configuration file (default: ./switchyard.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: the SQLite database, the secret key file, the admin key.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Use PostgreSQL instead of SQLite, e.g. postgres://user@host/db.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (HTTP API).
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Manage organizations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Follow and list actions (backfills, test sends) through a running server's API.
    #[command(subcommand)]
    Actions(actions::ActionsCommand),
    /// Measure delivery throughput, latency and memory against a baseline (temporary SQLite).
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum OrgsCommand {
    /// Create an organization; prints its id and a new write key.
    Create {
        name: String,
        /// Offer custom integration types to this organization.
        #[arg(long)]
        custom_integrations: bool,
    },
    /// List organizations.
    List,
    /// Change an organization's settings.
    Update {
        #[arg(value_parser = OrgId::parse)]
        org: OrgId,
        /// Offer (true) or stop offering (false) custom integration types.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        custom_integrations: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key; prints it once.
    Create {
        #[arg(long, value_parser = OrgId::parse)]
        org: OrgId,
        #[arg(long, default_value = "read", value_parser = ["read", "write"])]
        scope: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an organization's keys (never the keys themselves).
    List {
        #[arg(long, value_parser = OrgId::parse)]
        org: OrgId,
    },
    /// Revoke a key; requests with it are refused from then on.
    Revoke {
        #[arg(long, value_parser = OrgId::parse)]
        org: OrgId,
        /// The key's id (`key_…`).
        #[arg(value_parser = ApiKeyId::parse)]
        key: ApiKeyId,
    },
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Bench(args) = cli.command {
        // The bench's store is always a temporary SQLite database; the
        // configuration tunes its engine, as it would the server's.
        if cli.global.data_dir.is_some() || cli.global.database_url.is_some() {
            anyhow::bail!("bench: --data-dir and --database-url do not apply; it runs on a temporary SQLite database");
        }
        let config = Config::load(cli.global.config.as_deref(), &Overrides::default())?;
        return bench::run(args, engine_config(&config)?).await;
    }
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides { listen, data_dir: cli.global.data_dir, database_url: cli.global.database_url };
    let config = Config::load(cli.global.config.as_deref(), &overrides)?;
    if let Command::Actions(command) = cli.command {
        // Through the server's API: the store is the server's.
        return actions::run(command, &config.listen).await;
    }
    init_logging(&config);
    let store = bootstrap::open_store(&config).await?;
    match cli.command {
        Command::Serve { .. } => serve(config, store).await,
        Command::Migrate => {
            println!("The database is up to date.");
            Ok(())
        }
        Command::Orgs(OrgsCommand::Create { name, custom_integrations }) => {
            if name.trim().is_empty() {
                anyhow::bail!("the organization name must not be blank");
            }
            let (org, key) = bootstrap::create_org(&*store, name.trim(), custom_integrations).await?;
            println!("{}", org.id);
            println!("write key (shown once): {key}");
            Ok(())
        }
        Command::Orgs(OrgsCommand::List) => {
            for org in store.list_orgs().await? {
                let custom = if org.custom_integrations { "custom integrations" } else { "" };
                println!("{}\t{}\t{custom}", org.id, org.name);
            }
            Ok(())
        }
        Command::Orgs(OrgsCommand::Update { org: id, custom_integrations }) => {
            if !store.set_custom_integrations(&id, custom_integrations).await? {
                anyhow::bail!("no organization {id}");
            }
            println!("{id}: custom integrations {}", if custom_integrations { "enabled" } else { "disabled" });
            Ok(())
        }
        Command::Keys(KeysCommand::Create { org: id, scope, name }) => {
            store.get_org(&id).await?.with_context(|| format!("no organization {id}"))?;
            let scope = Scope::parse(&scope).expect("clap checked the value");
            let (key, plaintext) = bootstrap::create_key(&*store, &id, &name, scope).await?;
            println!("{}", key.id);
            println!("{} key (shown once): {plaintext}", scope.as_str());
            Ok(())
        }
        Command::Keys(KeysCommand::List { org: id }) => {
            for key in store.list_keys(&id).await? {
                let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{}\t{}…\t{}\t{}\t{state}", key.id, key.prefix, key.scope.as_str(), key.name);
            }
            Ok(())
        }
        Command::Bench(_) => unreachable!("handled before the configuration is loaded"),
        Command::Actions(_) => unreachable!("handled before the store is opened"),
        Command::Keys(KeysCommand::Revoke { org, key }) => {
            if !store.revoke_key(&org, &key).await? {
                anyhow::bail!("no active key {key} in organization {org}");
            }
            println!("revoked {key}");
            Ok(())
        }
    }
}

async fn serve(config: Config, store: std::sync::Arc<dyn switchyard_store::Store>) -> anyhow::Result<()> {
    bootstrap::first_start(&*store, &config.data_dir).await?;
    let addr = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("Switchyard listening on http://{local}");
    tracing::info!(address = %local, store = ?store.backend(), "listening");
    let api = switchyard_api::ApiConfig { body_limit: config.body_limit_bytes };
    let stop = tokio_util::sync::CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let engine = switchyard_engine::Engine::start(store, engine_config(&config)?, stop.clone(), &tasks).await?;
    let on_signal = stop.clone();
    let signal = async move {
        shutdown_signal().await;
        on_signal.cancel();
    };
    switchyard_api::serve(listener, switchyard_api::AppState::new(engine), &api, signal).await?;
    // The API has stopped taking requests; let the sends in flight finish and be recorded.
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// The engine's settings from the configuration.
fn engine_config(config: &Config) -> anyhow::Result<switchyard_engine::EngineConfig> {
    Ok(switchyard_engine::EngineConfig {
        egress: config.egress_policy()?,
        retention: std::time::Duration::from_secs_f64(config.retention_days * 86400.0),
        dispatcher: switchyard_engine::DispatcherConfig {
            max_queued_bytes: (config.queue_memory_mb << 20) as usize,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
