//! The `modelgate` command line: `serve`, `validate-config`, `print-schema`, `version`.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use modelgate_config::{Config, ProcessEnv};

#[derive(Parser)]
#[command(
    name = "modelgate",
    version,
    about = "An AI gateway: one OpenAI-compatible endpoint in front of every LLM provider."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (with no config file: loopback, SQLite, mock/* and env-keyed providers).
    Serve {
        /// YAML config file.
        #[arg(long, short, env = "MODELGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides server.listen). Default 127.0.0.1:8600.
        #[arg(long, env = "MODELGATE_LISTEN")]
        listen: Option<SocketAddr>,
        /// SQLite file (overrides store.sqlite_path). Default ./modelgate.db.
        #[arg(long, env = "MODELGATE_DB")]
        db: Option<PathBuf>,
        /// Log format.
        #[arg(
            long,
            value_enum,
            default_value = "pretty",
            env = "MODELGATE_LOG_FORMAT"
        )]
        log_format: LogFormat,
    },
    /// Check a config file; prints every error with its path and exits non-zero if any.
    ValidateConfig {
        /// YAML config file.
        file: PathBuf,
    },
    /// Print the JSON Schema of the config file.
    PrintSchema,
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("modelgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::PrintSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Config::json_schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::ValidateConfig { file } => match load(Some(&file)) {
            Ok(c) => {
                println!(
                    "{}: ok ({} model{})",
                    file.display(),
                    c.models.len(),
                    if c.models.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(msg) => {
                eprintln!("{msg}");
                ExitCode::from(2)
            }
        },
        Command::Serve {
            config,
            listen,
            db,
            log_format,
        } => {
            init_logging(log_format);
            let mut cfg = match load(config.as_deref()) {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("{msg}");
                    return ExitCode::from(2);
                }
            };
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(p) = db {
                cfg.store.sqlite_path = p;
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("modelgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Loads the config, returning every error as printable text.
fn load(path: Option<&Path>) -> Result<Config, String> {
    let text = match path {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?,
        ),
        None => None,
    };
    Config::load(text.as_deref(), &ProcessEnv).map_err(|errs| {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "environment".into());
        let mut out = format!(
            "{name}: {} error{} in the configuration:",
            errs.0.len(),
            if errs.0.len() == 1 { "" } else { "s" }
        );
        for e in &errs.0 {
            out.push_str("\n  ");
            out.push_str(&e.to_string());
        }
        out
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listen = cfg.server.listen;
    if cfg.server.master_key.is_none() {
        if !listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {listen} without a master key: anyone who can reach it could spend your provider credits. \
                 Set MODELGATE_MASTER_KEY (or server.master_key), or listen on 127.0.0.1."
            );
        }
        tracing::warn!(
            "NO MASTER KEY SET: every request to {listen} is accepted without authentication. \
             This is only allowed on loopback. Set MODELGATE_MASTER_KEY to require a key."
        );
    }
    let store = modelgate_store::Store::open_sqlite(&cfg.store.sqlite_path)
        .await
        .with_context(|| format!("opening the store at {}", cfg.store.sqlite_path.display()))?;
    let (sink, writer) = modelgate_store::spawn_log_writer(store.clone());
    let grace = cfg.server.shutdown_grace;
    let providers: Vec<String> = cfg.prefixes.keys().map(|p| format!("{p}/*")).collect();
    let models = cfg.models.len();
    let state = modelgate_server::AppState::new(Arc::new(cfg), store.clone(), sink).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        store = %store_path_hint(&store),
        configured_models = models,
        providers = %providers.join(", "),
        "modelgate {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    let drained = modelgate_server::serve(listener, state, shutdown_signal(), grace).await?;
    if !drained {
        tracing::warn!("some requests were still running at the drain deadline");
    }
    writer.shutdown().await;
    store.close().await;
    tracing::info!("request log flushed; bye");
    Ok(())
}

fn store_path_hint(_store: &modelgate_store::Store) -> &'static str {
    "sqlite"
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
