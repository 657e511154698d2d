//! The `tilegate` command: a thin CLI over the library.
//!
//! Parses arguments, loads and validates the whole config (exit 64 on errors,
//! before anything binds), then serves, runs the demo or manages tokens.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use tilegate::admin::{self, Minter};
use tilegate::config::{self, Config, LogFormat};
use tilegate::policy::TokenId;
use tilegate::store::{Page, Store, TokenRecord};

/// Exit code for configuration errors (EX_CONFIG).
const EXIT_CONFIG: u8 = 64;
/// Exit code for flags that are refused (clap's own usage errors are 2 too).
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "tilegate", version, about = "An authorization gateway for map tile and feature servers")]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "config.toml", env = "TILEGATE_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway with the configuration file.
    Serve,
    /// Run the gateway on a built-in sample upstream and show an allowed and a refused request.
    Demo(DemoArgs),
    /// Validate the configuration file and exit (0 valid, 64 invalid).
    CheckConfig,
    /// Create, list and revoke tokens in the store named by the configuration.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Make TLS certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Manage the token store itself.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print the audit trail of token creations and revocations.
    Audit {
        /// Only entries about this token id (as target or actor).
        #[arg(long)]
        token: Option<String>,
        /// Only entries at or after this time (RFC 3339, or unix seconds).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a SQLite store (tokens, grants, audit trail) into PostgreSQL, verifying
    /// the counts; safe to run again (copies only what is new, carries revocations).
    Migrate {
        /// The SQLite file: `sqlite:PATH`.
        #[arg(long)]
        from: String,
        /// The PostgreSQL store: `postgres://USER@HOST:PORT/DATABASE?sslmode=require`.
        #[arg(long)]
        to: String,
        /// A file holding the PostgreSQL password (instead of one in the URL).
        #[arg(long)]
        password_file: Option<String>,
        /// An environment variable holding the PostgreSQL password.
        #[arg(long)]
        password_env: Option<String>,
        /// PEM roots for TLS to PostgreSQL (default: public and system roots).
        #[arg(long)]
        ca_file: Option<String>,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a self-signed development certificate and key for localhost,
    /// 127.0.0.1 and ::1 (dev-cert.pem, dev-key.pem). Never use it in production.
    Dev {
        /// The folder to write into.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct DemoArgs {
    /// Run the sample requests, print them and exit instead of serving on.
    #[arg(long)]
    once: bool,
    /// The gateway's port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a root token. Prints the token alone on the first line and its id on the second.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List,
    /// Revoke a token and every token created from it.
    Revoke {
        /// The token id (a UUID, as printed by `token create` and `token list`).
        id: String,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// A path id to grant; repeat with one --tier each.
    #[arg(long = "path", required = true)]
    paths: Vec<String>,
    /// The tier for the --path at the same position: view, viewPlus, share, edit, fullView, editPlus, admin.
    #[arg(long = "tier", required = true)]
    tiers: Vec<String>,
    /// `all` (default) or `ogc` (only the /ogc/… endpoints).
    #[arg(long, default_value = "all")]
    scope: String,
    /// Seconds until the token expires (at most ten years); never when absent.
    #[arg(long, conflicts_with = "expires_at")]
    valid_for: Option<u64>,
    /// When the token expires, RFC 3339 (2027-01-31T12:00:00Z); in the future, at most ten years away.
    #[arg(long)]
    expires_at: Option<String>,
    /// The deepest zoom the token may request on every granted path (0 to 24).
    #[arg(long)]
    max_zoom: Option<u32>,
    /// A fence tile `Z/X/Y` (repeatable); the token only reaches tiles inside one.
    #[arg(long = "tile")]
    tiles: Vec<String>,
    /// A visible property (repeatable); vector paths only. Absent: all properties.
    #[arg(long = "property")]
    properties: Vec<String>,
    /// Make the property fence empty (geometry only).
    #[arg(long, conflicts_with = "properties")]
    no_properties: bool,
    /// What the token is for (1–128 characters).
    #[arg(long)]
    description: String,
    /// A web origin the token may be used from (repeatable): `https://app.example.org`
    /// or `https://*.example.org`. Absent: any origin, and clients that send none.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
}

/// `println!` for the CLI's output: a write error (the reader closed the pipe, as
/// `tilegate token list | head` does) is returned, not a panic; [`main`] ends quietly
/// on a closed pipe, as coreutils do.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve) {
        return serve_main(&cli.config);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `tilegate serve`: the config decides the runtime, so it is loaded first.
///
/// `server.runtime = "multi-thread"`: one tokio multi-thread runtime serves and runs
/// the background tasks (`server.workers` threads when set; tokio's default, which
/// honours `TOKIO_WORKER_THREADS`, otherwise). `"per-core"`: this thread runs a
/// single-thread control runtime (signals, background tasks, the ops listener) and
/// the server starts one worker thread per core (src/server/workers.rs).
fn serve_main(path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("error: {} is not valid: {errors}", path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(config.log.format);
    let built = match config.server.runtime {
        config::Runtime::MultiThread => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = config.server.workers {
                builder.worker_threads(n);
            }
            builder.enable_all().build()
        }
        config::Runtime::PerCore => tokio::runtime::Builder::new_current_thread().enable_all().build(),
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The reader of our standard output went away (`| head`): nothing is wrong.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Demo(args) = &cli.command {
        init_logging(LogFormat::Plain);
        return tilegate::demo::run(args.port, args.once).await.map(|()| ExitCode::SUCCESS);
    }
    if let Command::Certs(CertsCommand::Dev { out }) = &cli.command {
        let (cert, key) = tilegate::server::tls::write_dev_cert(out)?;
        out!("wrote {} and {} (self-signed for localhost, 127.0.0.1, ::1)", cert.display(), key.display());
        out!(
            "use them with:

[server.tls]
cert = \"{}\"
key = \"{}\"",
            cert.display(),
            key.display()
        );
        out!(
            "\npaths are relative to the config file's folder; clients must trust {} (e.g. curl --cacert)",
            cert.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Store(StoreCommand::Migrate { from, to, password_file, password_env, ca_file }) = &cli.command {
        let flags = admin::cli::MigrateFlags {
            from: from.clone(),
            to: to.clone(),
            password_file: password_file.clone(),
            password_env: password_env.clone(),
            ca_file: ca_file.clone(),
        };
        return match admin::cli::store_migrate(&flags).await {
            Ok(r) => {
                out!(
                    "copied {} token row(s) and {} audit row(s); PostgreSQL now holds all {} token(s) ({} revoked), {} grant(s), {} fence tile(s) and {} audit row(s) of the SQLite store",
                    r.tokens_written, r.audit_written, r.tokens, r.revoked, r.grants, r.tiles, r.audit
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("error: {} is not valid: {errors}", cli.config.display());
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    match cli.command {
        Command::CheckConfig => {
            out!("{}: valid ({} paths)", cli.config.display(), config.paths.len());
        }
        Command::Serve => unreachable!("served by serve_main"),
        Command::Token(TokenCommand::Create(args)) => return create(&config, args).await,
        Command::Token(TokenCommand::List) => list(&config).await?,
        Command::Token(TokenCommand::Revoke { id }) => {
            let id: TokenId = id.parse().map_err(|_| {
                anyhow::anyhow!("`{id}` is not a token id; use the UUID printed by `token create` or `token list`")
            })?;
            let store = open_store(&config).await?;
            if store.get(id).await?.is_none() {
                bail!("no token has id `{id}`");
            }
            let revoked = store.revoke(id, None, "cli".into()).await?;
            out!("revoked {} token(s)", revoked.len());
        }
        Command::Audit { token, since } => audit(&config, token, since).await?,
        Command::Demo(_) | Command::Certs(_) | Command::Store(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}

async fn open_store(config: &Config) -> Result<Store> {
    let key = match &config.store.postgres {
        Some(pg) => format!("store.url = {}", tilegate::store::describe_postgres(&pg.config)),
        None => format!("store.path = {}", config.store.path.display()),
    };
    Store::connect(&config.store).await.with_context(|| key)
}

async fn serve(config: Config) -> Result<()> {
    let running = tilegate::server::start(config).await?;
    let addr = running.addr;
    wait_for_signals(&running).await?;
    let grace = running.gateway.config().server.shutdown_grace;
    tracing::info!(listen = %addr, grace = ?grace, "shutting down; draining in-flight requests");
    running.shutdown(grace).await;
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the config on SIGHUP; returns on SIGTERM or SIGINT (Ctrl-C).
#[cfg(unix)]
async fn wait_for_signals(running: &tilegate::server::Running) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                // A refused config is logged by the reloader; the old one stays.
                let _ = running.reload().await;
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_running: &tilegate::server::Running) -> Result<()> {
    tokio::signal::ctrl_c().await.context("cannot listen for Ctrl-C")
}

async fn create(config: &Config, args: CreateArgs) -> Result<ExitCode> {
    let flags = admin::cli::CreateFlags {
        paths: args.paths,
        tiers: args.tiers,
        scope: args.scope,
        valid_for: args.valid_for,
        expires_at: args.expires_at,
        max_zoom: args.max_zoom,
        tiles: args.tiles,
        properties: args.properties,
        no_properties: args.no_properties,
        description: args.description,
        allowed_origins: args.allowed_origins,
    };
    let now = tilegate::store::now_unix();
    let token = match admin::cli::check_create(&flags, &config.paths, now) {
        Ok(t) => t,
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let store = open_store(config).await?;
    let minter = Minter { creator: None, client: "cli".into() };
    let mut minted =
        admin::mint(&config.tokens.prefix, token.description, token.scope, now, token.expires_at, token.access, minter)
            .context("cannot read OS randomness")?;
    minted.row.allowed_origins = token.allowed_origins;
    let record = store.create(minted.row).await?;
    // One write for both lines: a reader that closes the pipe after the first line
    // (`| head -n1`) must not turn a created token into a crash.
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}\n{}", minted.secret.expose(), record.id).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

async fn list(config: &Config) -> Result<()> {
    let store = open_store(config).await?;
    out!(
        "{:<36}  {:<14}  {:<5}  {:<20}  {:<20}  {:<20}  {:<20}  {:<39}  {:>8}  {:<40}  {:<30}  description",
        "id",
        "displayKey",
        "scope",
        "created",
        "expires",
        "revoked",
        "lastUsed",
        "lastUsedFrom",
        "requests",
        "access",
        "allowedOrigins"
    );
    let mut after = 0;
    loop {
        let page = store.list(Page::All { after, limit: 100 }).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for t in &page {
            out!(
                "{:<36}  {:<14}  {:<5}  {:<20}  {:<20}  {:<20}  {:<20}  {:<39}  {:>8}  {:<40}  {:<30}  {}",
                t.id,
                t.display_key,
                t.scope.as_str(),
                time_text(Some(t.created_at)),
                time_text(t.expires_at),
                time_text(t.revoked_at),
                time_text(t.usage.last_used_at),
                t.usage.last_used_from.as_deref().unwrap_or("-"),
                t.usage.request_count,
                access_text(t),
                origins_text(t),
                tilegate::admin::printable(&t.description)
            );
        }
    }
    Ok(())
}

fn access_text(t: &TokenRecord) -> String {
    t.access
        .iter()
        .map(|a| {
            let mut s = format!("{}:{}", a.path_id, a.tier);
            if let Some(z) = a.fence.max_zoom() {
                s.push_str(&format!(" maxZoom={z}"));
            }
            if let Some(tiles) = a.fence.tiles() {
                s.push_str(&format!(" tiles={}", tiles.count()));
            }
            if let Some(p) = &a.properties {
                s.push_str(&format!(" properties=[{}]", p.join(",")));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `allowedOrigins` for `token list`: `*` for any origin.
fn origins_text(t: &TokenRecord) -> String {
    t.allowed_origins
        .as_ref()
        .map_or_else(|| "*".into(), |l| l.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

fn time_text(t: Option<i64>) -> String {
    t.and_then(tilegate::store::rfc3339).unwrap_or_else(|| "-".into())
}

async fn audit(config: &Config, token: Option<String>, since: Option<String>) -> Result<()> {
    let token = token
        .map(|t| t.parse::<TokenId>().map_err(|_| anyhow::anyhow!("--token `{t}` is not a token id")))
        .transpose()?;
    let since = since
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .or_else(|| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .ok()
                        .map(|t| t.unix_timestamp())
                })
                .ok_or_else(|| {
                    anyhow::anyhow!("--since `{s}` is neither RFC 3339 (2026-01-31T12:00:00Z) nor unix seconds")
                })
        })
        .transpose()?;
    let store = open_store(config).await?;
    for e in store.audit(token, since).await? {
        out!(
            "{}  {:<6}  target={}  actor={}  client={}  {}",
            time_text(Some(e.at)),
            e.action,
            e.target,
            e.actor.as_deref().unwrap_or("cli"),
            e.client,
            e.detail
        );
    }
    Ok(())
}
