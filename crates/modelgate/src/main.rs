//! The `modelgate` command line: `serve`, `validate-config`, `print-schema`, `version`.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use modelgate_config::{Config, ProcessEnv};
use modelgate_store::governance::Entity;

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
    /// Manage virtual keys in the store (same store as `serve`).
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage teams in the store.
    Teams {
        #[command(subcommand)]
        cmd: MembersCmd,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage users in the store.
    Users {
        #[command(subcommand)]
        cmd: MembersCmd,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check the audit trail's hash chain; exits non-zero at the first broken link.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk the chain and report the first broken link.
    Verify,
}

#[derive(clap::Args)]
struct StoreArgs {
    /// YAML config file (for the store location and key secret).
    #[arg(long, short, env = "MODELGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// SQLite file (overrides store.sqlite_path).
    #[arg(long, env = "MODELGATE_DB", global = true)]
    db: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
struct LimitArgs {
    /// Allowed model patterns, comma-separated (`gpt-*,mock/*`).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    #[arg(long)]
    rpm: Option<u64>,
    #[arg(long)]
    tpm: Option<u64>,
    #[arg(long)]
    max_parallel: Option<u64>,
    #[arg(long)]
    max_budget_usd: Option<f64>,
    /// daily, weekly, monthly or total.
    #[arg(long)]
    budget_period: Option<String>,
    #[arg(long)]
    soft_budget_usd: Option<f64>,
}

impl LimitArgs {
    fn input(self) -> modelgate_server::admin::LimitInput {
        modelgate_server::admin::LimitInput {
            models: self.models.map(Some),
            rpm: self.rpm.map(Some),
            tpm: self.tpm.map(Some),
            max_parallel: self.max_parallel.map(Some),
            max_budget_usd: self.max_budget_usd.map(Some),
            budget_period: self.budget_period.map(Some),
            soft_budget_usd: self.soft_budget_usd.map(Some),
            metadata: None,
        }
    }
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum KeysCmd {
    /// Create a key; prints it once (with its plaintext `key`).
    Create {
        #[arg(long)]
        name: Option<String>,
        /// Team id or name.
        #[arg(long)]
        team: Option<String>,
        /// User id or name.
        #[arg(long)]
        user: Option<String>,
        /// user or admin.
        #[arg(long)]
        role: Option<String>,
        /// RFC 3339 time or Unix seconds.
        #[arg(long)]
        expires_at: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List keys (prefixes only).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum MembersCmd {
    /// Create one.
    Create {
        name: String,
        /// Users only: team id or name.
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List them.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

mod logbuf;

// mimalloc: the request path allocates many small, short-lived objects;
// glibc's allocator spent a tenth of the gateway's CPU on them in the
// benchmark (bench/RESULTS.md), and fragmented memory over time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let code = run();
    logbuf::flush();
    code
}

fn run() -> ExitCode {
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
        Command::Keys { cmd, store } => admin_cli(store, Admin::Keys(cmd)),
        Command::Audit {
            cmd: AuditCmd::Verify,
            store,
        } => admin_cli(store, Admin::AuditVerify),
        Command::Teams { cmd, store } => admin_cli(store, Admin::Members(Entity::Team, cmd)),
        Command::Users { cmd, store } => admin_cli(store, Admin::Members(Entity::User, cmd)),
        Command::Serve {
            config,
            listen,
            db,
            log_format,
        } => {
            init_logging(log_format);
            // The same file and overrides on every (re)load.
            let reload = move || -> Result<(Config, String), String> {
                let text = read_config(config.as_deref())?;
                let mut cfg = load_text(config.as_deref(), text.as_deref())?;
                if let Some(l) = listen {
                    cfg.server.listen = l;
                }
                if let Some(p) = &db {
                    cfg.store.sqlite_path = p.clone();
                }
                Ok((cfg, text.unwrap_or_default()))
            };
            let (cfg, text) = match reload() {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("{msg}");
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime_builder().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(cfg, Arc::new(reload), text)) {
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

/// The async runtime: one worker per core (`TOKIO_WORKER_THREADS` caps it);
/// with a single worker, the current-thread scheduler, which does the same
/// work without the cross-thread machinery (the accept loop and every
/// connection on one thread).
fn runtime_builder() -> tokio::runtime::Builder {
    runtime_builder_for(std::env::var("TOKIO_WORKER_THREADS").ok().as_deref())
}

/// [`runtime_builder`] for a `TOKIO_WORKER_THREADS` value.
fn runtime_builder_for(workers: Option<&str>) -> tokio::runtime::Builder {
    let workers = workers
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}

enum Admin {
    Keys(KeysCmd),
    Members(Entity, MembersCmd),
    AuditVerify,
}

fn admin_cli(args: StoreArgs, cmd: Admin) -> ExitCode {
    let mut cfg = match load(args.config.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if let Some(p) = args.db {
        cfg.store.sqlite_path = p;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_admin(cfg, cmd)) {
        Ok(out) => {
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("modelgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_admin(cfg: Config, cmd: Admin) -> anyhow::Result<serde_json::Value> {
    use modelgate_server::admin;
    let store = open_store(&cfg).await?;
    let gov = modelgate_server::governance::Governance::init(
        &cfg,
        &store,
        std::sync::Arc::new(modelgate_telemetry::Metrics::new()),
    )
    .await?;
    let fail = |e: modelgate_server::error::ApiError| anyhow::anyhow!("{}", e.message);
    let out = match cmd {
        Admin::Keys(KeysCmd::Create {
            name,
            team,
            user,
            role,
            expires_at,
            limits,
        }) => {
            let input = admin::KeyInput {
                name: name.map(Some),
                team: team.map(Some),
                user: user.map(Some),
                role,
                expires_at: expires_at.map(|e| Some(serde_json::Value::String(e))),
                enabled: None,
                limits: limits.input(),
            };
            let view = admin::create_key(&store, &gov, &modelgate_server::Caller::Cli, input)
                .await
                .map_err(fail)?;
            serde_json::to_value(view)?
        }
        Admin::Keys(KeysCmd::List) => {
            let keys: Vec<_> = store
                .list_keys()
                .await?
                .iter()
                .map(|k| admin::KeyView::of(k, None))
                .collect();
            serde_json::to_value(keys)?
        }
        Admin::Keys(KeysCmd::Revoke { id }) => serde_json::to_value(
            admin::revoke_key(&store, &gov, "cli", &id)
                .await
                .map_err(fail)?,
        )?,
        Admin::Members(entity, MembersCmd::Create { name, team, limits }) => {
            let input = admin::MemberInput {
                name: Some(name),
                team: team.map(Some),
                limits: limits.input(),
            };
            serde_json::to_value(
                admin::create_member(&store, "cli", entity, input)
                    .await
                    .map_err(fail)?,
            )?
        }
        Admin::AuditVerify => {
            let (checked, broken) = store.verify_audit().await?;
            store.close().await;
            if let Some(b) = broken {
                anyhow::bail!(
                    "audit trail broken at record {}: {} ({checked} records before it are intact)",
                    b.seq,
                    b.reason
                );
            }
            return Ok(serde_json::json!({"ok": true, "records": checked}));
        }
        Admin::Members(entity, MembersCmd::List) => {
            let all: Vec<_> = store
                .list_members(entity)
                .await?
                .iter()
                .map(admin::MemberView::of)
                .collect();
            serde_json::to_value(all)?
        }
    };
    store.close().await;
    Ok(out)
}

/// Loads the config, returning every error as printable text.
fn load(path: Option<&Path>) -> Result<Config, String> {
    load_text(path, read_config(path)?.as_deref())
}

/// The config file's text (`None` without a file).
fn read_config(path: Option<&Path>) -> Result<Option<String>, String> {
    path.map(|p| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    })
    .transpose()
}

/// Parses config `text` read from `path`, returning every error as printable text.
fn load_text(path: Option<&Path>, text: Option<&str>) -> Result<Config, String> {
    Config::load(text, &ProcessEnv).map_err(|errs| {
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
    // Colours only for a terminal: escape codes in collected logs are noise,
    // and colouring every line costs time on every request.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(logbuf::BufferedStderr::start());
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(
    cfg: Config,
    reload: modelgate_server::state::Reloader,
    source: String,
) -> anyhow::Result<()> {
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
    let store = open_store(&cfg).await?;
    let (sink, writer) = modelgate_store::spawn_log_writer(store.clone());
    let grace = cfg.server.shutdown_grace;
    let providers: Vec<String> = cfg.prefixes.keys().map(|p| format!("{p}/*")).collect();
    let models = cfg.models.len();
    let state = modelgate_server::AppState::new(Arc::new(cfg), store.clone(), sink)
        .await?
        .with_reloader(reload, &source);
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(state.clone()));
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

fn store_path_hint(store: &modelgate_store::Store) -> &'static str {
    store.dialect()
}

/// PostgreSQL when `store.url` / `MODELGATE_DATABASE_URL` is set, else the SQLite file.
async fn open_store(cfg: &Config) -> anyhow::Result<modelgate_store::Store> {
    match &cfg.store.postgres_url {
        Some(url) => modelgate_store::Store::open_postgres(url.expose(), None)
            .await
            .context("opening the PostgreSQL store"),
        None => modelgate_store::Store::open_sqlite(&cfg.store.sqlite_path)
            .await
            .with_context(|| format!("opening the store at {}", cfg.store.sqlite_path.display())),
    }
}

/// SIGHUP re-reads the configuration (like `POST /admin/config/reload`).
#[cfg(unix)]
async fn reload_on_sighup(state: modelgate_server::AppState) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /admin/config/reload");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        // The outcome is logged and audited by `reload`.
        let _ = state.reload("signal:SIGHUP").await;
    }
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

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::runtime_builder_for;

    #[test]
    fn one_worker_runs_the_current_thread_scheduler() {
        let flavor = |v: Option<&str>| {
            runtime_builder_for(v)
                .enable_all()
                .build()
                .map(|rt| rt.handle().runtime_flavor())
                .ok()
        };
        assert_eq!(flavor(Some("1")), Some(RuntimeFlavor::CurrentThread));
        assert_eq!(flavor(Some(" 2 ")), Some(RuntimeFlavor::MultiThread));
        assert_eq!(flavor(Some("4")), Some(RuntimeFlavor::MultiThread));
    }
}
