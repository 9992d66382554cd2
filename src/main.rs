//! The `pg-mcp` command: serve | stdio | migrate | seed | embed | doctor | healthcheck.

// The release build computes the layout of `main`'s future (every command's future nested in
// it) past the default query depth of 128.
#![recursion_limit = "256"]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};
use pg_mcp::config::{Config, LogFormat, redact_url};
use pg_mcp::state::AppState;
use sqlx::postgres::PgPoolOptions;

/// mimalloc instead of glibc malloc: a tool call allocates many small, short-lived buffers
/// (HTTP, JSON-RPC, rows) across threads, where glibc's allocator cost about 15% of the
/// server's CPU in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pg-mcp",
    version,
    about = "MCP server for PostgreSQL with row-level-security tenants"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over streamable HTTP at /mcp, plus /health, /metrics, /connections, /query_history.
    Serve(Config),
    /// Serve MCP over stdin/stdout for clients that launch servers as processes. Logs go to stderr.
    Stdio(StdioArgs),
    /// Apply migrations (as an admin role), set the app role's password and the tenant signing key.
    Migrate(MigrateArgs),
    /// Install the retail demo: its schema and policies, then deterministic sample data (as an
    /// admin role, after migrate).
    Seed(SeedArgs),
    /// Compute missing embeddings for the configured model (as an admin role): the retail demo's
    /// products, and every text source of PG_MCP_EMBEDDING_SOURCES.
    Embed(EmbedArgs),
    /// Audit a database's row-level security for the server's role: exit 0 when clean, 1 with
    /// findings, 2 when it could not connect. Uses the server's settings (PG_MCP_DATABASE_URL ...).
    Doctor(DoctorArgs),
    /// Exit 0 when the server at --url answers /health with 200 (for container health checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct StdioArgs {
    #[command(flatten)]
    config: Config,
    /// The tenant of every call in this process (of the tenant value's type, PG_MCP_CONTEXT).
    #[arg(long, env = "PG_MCP_RLS_USER_ID")]
    rls_user_id: Option<String>,
}

#[derive(Args)]
struct MigrateArgs {
    /// Admin connection URL (a superuser or a role that may create roles and extensions).
    #[arg(long, env = "PG_MCP_ADMIN_DATABASE_URL", hide_env_values = true)]
    admin_database_url: String,
    /// Password to give the application login role pgmcp_app.
    #[arg(long, env = "PG_MCP_APP_PASSWORD", hide_env_values = true)]
    app_password: Option<String>,
    /// Tenant signing key to store (must equal the server's PG_MCP_TENANT_SIGNING_KEY).
    #[arg(long, env = "PG_MCP_TENANT_SIGNING_KEY", hide_env_values = true)]
    tenant_signing_key: Option<String>,
    /// Most temporary-file space one query of pgmcp_app may use (PostgreSQL units; -1: no
    /// limit). A superuser setting, so the role cannot lift it.
    #[arg(long, env = "PG_MCP_APP_TEMP_FILE_LIMIT", default_value = "1GB")]
    app_temp_file_limit: String,
    /// Schemas the application role may read (the server's PG_MCP_SCHEMAS): USAGE, SELECT on
    /// their tables and views, and on the tables their owners create later. Comma separated.
    #[arg(long, env = "PG_MCP_SCHEMAS", value_delimiter = ',')]
    schemas: Vec<String>,
    /// Memory per sort or hash step of pgmcp_app's queries (reset on every tenant transaction).
    #[arg(long, env = "PG_MCP_APP_WORK_MEM", default_value = "16MB")]
    app_work_mem: String,
    /// The server's name for this database (PG_MCP_DATABASE_NAME), to tell whether
    /// PG_MCP_WRITE_DATABASES puts it in write mode.
    #[arg(long, env = "PG_MCP_DATABASE_NAME", default_value = "default")]
    database_name: String,
    /// Databases in write mode (the server's PG_MCP_WRITE_DATABASES): this one gets write
    /// grants on PG_MCP_SCHEMAS when named (or `*`); otherwise they are taken back.
    #[arg(long, env = "PG_MCP_WRITE_DATABASES", value_delimiter = ',')]
    write_databases: Vec<String>,
    /// Statement kinds of write mode (the server's PG_MCP_ALLOWED_OPERATIONS): which of
    /// INSERT, UPDATE, DELETE are granted (all three when unset, or with MERGE).
    #[arg(long, env = "PG_MCP_ALLOWED_OPERATIONS", value_delimiter = ',')]
    allowed_operations: Vec<String>,
    /// The DBA tools' monitoring role (the server's PG_MCP_MONITOR_USER).
    #[arg(long, env = "PG_MCP_MONITOR_USER", default_value = "pgmcp_monitor")]
    monitor_user: String,
    /// With it, the monitoring role is created (or updated) with this password and
    /// pg_monitor; without it, nothing is done for the DBA tools.
    #[arg(long, env = "PG_MCP_MONITOR_PASSWORD", hide_env_values = true)]
    monitor_password: Option<String>,
}

#[derive(Args)]
struct SeedArgs {
    #[arg(long, env = "PG_MCP_ADMIN_DATABASE_URL", hide_env_values = true)]
    admin_database_url: String,
    /// Data volume multiplier (1.0: 10,000 customers, 100,000 orders).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Random seed: the same seed gives the same rows.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Install or upgrade the demo's schema and policies only, keeping its data.
    #[arg(long)]
    schema_only: bool,
}

#[derive(Args)]
struct EmbedArgs {
    #[arg(long, env = "PG_MCP_ADMIN_DATABASE_URL", hide_env_values = true)]
    admin_database_url: String,
    /// Recompute every embedding of the model, not only missing or stale ones.
    #[arg(long)]
    rebuild: bool,
    #[command(flatten)]
    embeddings: pg_mcp::search::EmbeddingSettings,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    config: Config,
    /// The report as JSON (one object per database), for CI.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HealthcheckArgs {
    #[arg(
        long,
        env = "PG_MCP_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8000/health"
    )]
    url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Doctor(args) = cli.command {
        return doctor(args).await;
    }
    let result = match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Stdio(args) => stdio(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Seed(args) => seed(args).await,
        Command::Embed(args) => embed(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Doctor(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg-mcp: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn stdio(args: StdioArgs) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let _otel = pg_mcp::telemetry::init(
        args.config.log_format == LogFormat::Json,
        &args.config.log_level,
    );
    anyhow::ensure!(
        args.config.config_file.is_none(),
        "PG_MCP_CONFIG / --config is for serve; stdio takes its settings from the environment and flags"
    );
    let state = AppState::new(args.config)?;
    pg_mcp::server::check_databases(&state).await?;
    state.audit.start();
    let tenant = args
        .rls_user_id
        .map(|id| state.auth.process_tenant(&id))
        .transpose()?;
    let server = pg_mcp::mcp::PgMcpServer::with_process_tenant(state.clone(), tenant);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("stdio handshake failed")?;
    running.waiting().await.context("stdio session failed")?;
    state.audit.shutdown(Duration::from_secs(5)).await;
    state.databases.close().await;
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // With a configuration file: resolved again with it (flags and environment win), and
    // watched for changes.
    let source = config
        .config_file
        .clone()
        .map(|file| pg_mcp::reload::Source {
            file,
            argv: std::iter::once(OsString::from("pg-mcp"))
                .chain(std::env::args_os().skip_while(|a| a != "serve").skip(1))
                .collect(),
        });
    let (config, effective) = match &source {
        Some(source) => {
            let loaded =
                pg_mcp::config_file::load(&source.file, &source.argv).map_err(|errors| {
                    anyhow::anyhow!(
                        "configuration file {}: {}",
                        source.file.display(),
                        errors.join("; ")
                    )
                })?;
            (loaded.config, Some(loaded.effective))
        }
        None => (config, None),
    };
    let _otel = pg_mcp::telemetry::init(config.log_format == LogFormat::Json, &config.log_level);
    let state = AppState::new(config)?;
    let listener = tokio::net::TcpListener::bind(state.config().bind)
        .await
        .with_context(|| format!("cannot listen on {}", state.config().bind))?;
    let stop = tokio_util::sync::CancellationToken::new();
    if let (Some(source), Some(effective)) = (source, effective) {
        pg_mcp::reload::spawn(state.clone(), source, effective, stop.clone());
    }
    let shutdown = async move {
        shutdown_signal().await;
        stop.cancel();
    };
    pg_mcp::server::serve(listener, state, shutdown).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn admin_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(15))
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact_url(url)))
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = admin_pool(&args.admin_database_url).await?;
    pg_mcp::db::migrations::apply(&pool)
        .await
        .context("migrations failed")?;
    eprintln!(
        "pg-mcp's own objects installed (schemas pgmcp and pgmcp_private, roles pgmcp_owner and pgmcp_app)"
    );
    if pg_mcp::db::migrations::retire_old_history(&pool).await? {
        eprintln!(
            "dropped public._sqlx_migrations, an older pg-mcp's history (its objects were migrated in place; run pg-mcp seed --schema-only to upgrade the retail demo)"
        );
    }
    let schemas: Vec<String> = args
        .schemas
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let missing = pg_mcp::db::migrations::grant_schemas(&pool, &schemas).await?;
    let granted: Vec<&String> = schemas.iter().filter(|s| !missing.contains(s)).collect();
    if !granted.is_empty() {
        eprintln!(
            "pgmcp_app may read schemas {}",
            granted
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for schema in &missing {
        eprintln!(
            "WARNING: schema {schema} (PG_MCP_SCHEMAS) does not exist: nothing granted on it"
        );
    }
    let present: Vec<String> = schemas
        .iter()
        .filter(|s| !missing.contains(s))
        .cloned()
        .collect();
    let writable = args
        .write_databases
        .iter()
        .any(|n| n.trim() == "*" || n.trim() == args.database_name);
    if writable {
        let privileges = pg_mcp::db::migrations::write_privileges(&args.allowed_operations);
        if present.is_empty() {
            eprintln!(
                "WARNING: database {:?} is in write mode (PG_MCP_WRITE_DATABASES) but PG_MCP_SCHEMAS names no schema: no write grants made, so every write will fail",
                args.database_name
            );
        } else {
            pg_mcp::db::migrations::grant_writes(&pool, &present, &privileges).await?;
            eprintln!(
                "write mode: pgmcp_app may {} rows of schemas {} (row-level security decides which rows)",
                privileges.join(", "),
                present.join(", ")
            );
        }
    } else if !present.is_empty() {
        pg_mcp::db::migrations::revoke_writes(&pool, &present).await?;
        eprintln!(
            "read-only: pgmcp_app has no write privileges on schemas {} (PG_MCP_WRITE_DATABASES does not name {:?})",
            present.join(", "),
            args.database_name
        );
    }
    let report = pg_mcp::db::isolation::close_cross_session_objects(&pool).await?;
    eprintln!(
        "closed {} catalog views and functions that show other sessions to pgmcp_app",
        report.closed
    );
    if !report.failed.is_empty() {
        for (name, why) in &report.failed {
            eprintln!("  could not close {name}: {why}");
        }
        eprintln!(
            "WARNING: {} catalog objects still show other sessions to the application role; run pg-mcp migrate as a superuser. The server refuses to start until they are closed (PG_MCP_ALLOW_OBSERVABLE_SESSIONS=true overrides)",
            report.failed.len()
        );
    }
    match pg_mcp::db::isolation::set_role_caps(&pool, &args.app_temp_file_limit, &args.app_work_mem)
        .await
    {
        Ok(()) => eprintln!(
            "pgmcp_app caps: temp_file_limit = {}, work_mem = {}",
            args.app_temp_file_limit, args.app_work_mem
        ),
        // A managed service without a superuser cannot set temp_file_limit at all (42501);
        // that must not stop the rest of the setup. A bad value is an error.
        Err(e) if e.sqlstate.as_deref() == Some("42501") => {
            eprintln!(
                "WARNING: pgmcp_app's resource caps were not set: {}",
                e.message
            )
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(password) = args.app_password {
        // ALTER ROLE takes no bind parameters: quote the literal with format(%L) server-side.
        let stmt: String =
            sqlx::query_scalar("SELECT format('ALTER ROLE pgmcp_app LOGIN PASSWORD %L', $1::text)")
                .bind(password)
                .fetch_one(&pool)
                .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(&pool)
            .await
            .context("setting the app role password")?;
        eprintln!("password of pgmcp_app set");
    }
    if let Some(password) = args.monitor_password.filter(|p| !p.is_empty()) {
        let user = args.monitor_user.trim();
        anyhow::ensure!(
            user != "pgmcp_app" && user != "pgmcp_owner",
            "PG_MCP_MONITOR_USER must not be one of pg-mcp's own roles"
        );
        pg_mcp::db::migrations::ensure_monitor_role(&pool, user, &password)
            .await
            .context("creating the monitoring role")?;
        pg_mcp::db::migrations::revoke_monitor_reads(&pool, user, &present)
            .await
            .context("closing the tables to the monitoring role")?;
        eprintln!(
            "monitoring role {user} (pg_monitor, no superuser, no table access) ready for the DBA tools"
        );
    }
    if let Some(key) = args.tenant_signing_key {
        anyhow::ensure!(
            key.len() >= 32,
            "the tenant signing key must be at least 32 characters"
        );
        sqlx::query(
            "INSERT INTO pgmcp_private.tenant_signing_key (singleton, signing_key) VALUES (true, $1) \
             ON CONFLICT (singleton) DO UPDATE SET signing_key = EXCLUDED.signing_key, updated_at = now()",
        )
        .bind(key)
        .execute(&pool)
        .await
        .context("storing the tenant signing key")?;
        eprintln!("tenant signing key stored");
    }
    Ok(())
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = admin_pool(&args.admin_database_url).await?;
    pg_mcp_demo::install_schema(&pool).await?;
    eprintln!("retail demo schema installed");
    if args.schema_only {
        return Ok(());
    }
    let opts = pg_mcp_demo::SeedOptions {
        scale: args.scale,
        seed: args.seed,
    };
    let report = pg_mcp_demo::run(&pool, &opts).await?;
    eprintln!(
        "seeded {} stores, {} products, {} customers, {} orders, {} order items, {} inventory rows in {:.1}s",
        report.stores,
        report.products,
        report.customers,
        report.orders,
        report.order_items,
        report.inventory,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

async fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    let sources = args.embeddings.sources().map_err(anyhow::Error::msg)?;
    let cfg = args.embeddings.to_config()?;
    let embedder =
        tokio::task::spawn_blocking(move || pg_mcp::search::build_embedder(&cfg)).await??;
    let pool = admin_pool(&args.admin_database_url).await?;
    let bar = |what: &str| {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(&format!(
                "embed {{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
            ))
            .expect("valid template"),
        )
    };
    let batch = args.embeddings.embeddings_batch_size;
    // The retail demo's catalogue, when the demo is installed.
    let demo: bool = sqlx::query_scalar(
        "SELECT to_regclass('retail.product_description_embeddings') IS NOT NULL",
    )
    .fetch_one(&pool)
    .await?;
    if demo {
        let products = bar("products");
        let report = pg_mcp::search::products::embed_catalogue(
            &pool,
            embedder.as_ref(),
            batch,
            args.rebuild,
            progress_of(&products),
        )
        .await?;
        products.finish_and_clear();
        eprintln!(
            "embedded {} of {} products with {} ({} dimensions; {} unchanged) in {:.1}s ({:.0} products/s)",
            report.embedded,
            report.products,
            report.model,
            report.dimensions,
            report.unchanged,
            report.elapsed.as_secs_f64(),
            report.embedded as f64 / report.elapsed.as_secs_f64().max(1e-9)
        );
    }
    for source in sources.iter().filter(|s| s.spec.vector_column.is_none()) {
        let rows = bar(&format!("rows of {}", source.spec.name));
        let report = pg_mcp::search::sources::embed_source(
            &pool,
            source,
            embedder.as_ref(),
            batch,
            args.rebuild,
            progress_of(&rows),
        )
        .await
        .with_context(|| format!("embedding source {}", source.spec.name))?;
        rows.finish_and_clear();
        eprintln!(
            "source {}: embedded {} of {} rows ({} dimensions; {} unchanged, {} removed) in {:.1}s",
            report.source,
            report.embedded,
            report.rows,
            report.dimensions,
            report.unchanged,
            report.removed,
            report.elapsed.as_secs_f64()
        );
    }
    if !demo && sources.is_empty() {
        eprintln!("nothing to embed: no retail demo and no PG_MCP_EMBEDDING_SOURCES");
    }
    Ok(())
}

/// `progress(done, total)` for an embedding run, drawn on `bar`.
fn progress_of(bar: &indicatif::ProgressBar) -> impl Fn(usize, usize) + '_ {
    |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// Exit 0: clean; 1: findings; 2: the audit could not run (no connection, bad settings).
async fn doctor(args: DoctorArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("pg-mcp doctor: {e}");
        ExitCode::from(2)
    };
    let cfg = match pg_mcp::doctor::DoctorConfig::from_config(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e),
    };
    let registry = match pg_mcp::db::DatabaseRegistry::from_config(&args.config) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut reports = Vec::new();
    for db in registry.all() {
        match pg_mcp::doctor::audit(&db.pool, &cfg.for_database(&db)).await {
            Ok(report) => reports.push(report),
            Err(e) => return fail(&format!("database {}: {e}", db.name)),
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("reports serialize")
        );
    } else {
        for report in &reports {
            print!("{}", report.to_text());
        }
    }
    if reports.iter().all(pg_mcp::doctor::Report::is_clean) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = url::Url::parse(&args.url).context("invalid --url")?;
    let host = url.host_str().context("--url needs a host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let path = url.path().to_string();
    // A tiny HTTP/1.1 GET, so container images need no curl.
    let fut = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .context("health check timed out")??;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    anyhow::ensure!(status == "200", "health check answered {status}");
    Ok(())
}
