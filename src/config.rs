//! Server configuration: every setting is a CLI flag and a `PG_MCP_*` environment variable.
//!
//! Defaults are the safe ones (design §5): bind 127.0.0.1:8000, read-only, tenant required,
//! row cap 1000, statement timeout 30 s. Secrets are redacted from `Debug`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{AppError, Result};
use crate::sql::guard::Operation;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Trust the `x-rls-user-id` header (loopback development).
    Header,
    /// Verify a bearer JWT; the tenant is one of its claims.
    Jwt,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// One named database the server can reach. The URL carries the password: it is a secret
/// (`Debug` shows `[REDACTED]`); `redact_url` gives a printable form.
#[derive(Clone, Debug)]
pub struct DatabaseTarget {
    pub name: String,
    pub url: SecretString,
    /// Its read replicas (PG_MCP_DATABASE_READ_URLS, for the default database).
    pub read_urls: Vec<SecretString>,
}

/// Parses a setting that must never be printed (clap value parser).
pub fn secret(value: &str) -> std::result::Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Replaces the password of a connection URL with `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// Settings of the running server (`serve` and `stdio`).
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Connection URL of the default database, as the application role (never a superuser).
    #[arg(long, env = "PG_MCP_DATABASE_URL", hide_env_values = true, value_parser = secret)]
    pub database_url: Option<SecretString>,

    /// Read replicas of the default database (streaming standbys), comma separated
    /// connection URLs as the same role: read-only tool calls go to a healthy one.
    #[arg(long, env = "PG_MCP_DATABASE_READ_URLS", hide_env_values = true, value_parser = secret, value_delimiter = ',')]
    pub database_read_urls: Vec<SecretString>,

    /// How often each read replica is checked (reachable, replaying, its lag), in seconds.
    #[arg(long, env = "PG_MCP_REPLICA_CHECK_SECS", default_value_t = 2)]
    pub replica_check_secs: u64,

    /// A replica whose replay lags more than this many seconds gets no reads until it
    /// catches up.
    #[arg(long, env = "PG_MCP_REPLICA_MAX_LAG_SECS", default_value_t = 10)]
    pub replica_max_lag_secs: u64,

    /// Name under which PG_MCP_DATABASE_URL is registered (tools take it as `database`).
    #[arg(long, env = "PG_MCP_DATABASE_NAME", default_value = "default")]
    pub database_name: String,

    /// More databases: `name=url` pairs separated by `;`.
    #[arg(long, env = "PG_MCP_DATABASES", hide_env_values = true, value_parser = secret)]
    pub databases: Option<SecretString>,

    /// A configuration file (`pg-mcp.toml`): the same settings, which the environment and the
    /// flags override; `serve` reloads it on SIGHUP and when it changes.
    #[arg(long = "config", env = "PG_MCP_CONFIG")]
    pub config_file: Option<std::path::PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "PG_MCP_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Host header values accepted on /mcp (DNS-rebinding protection), comma separated.
    #[arg(
        long,
        env = "PG_MCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,

    /// Browser Origins accepted, comma separated, e.g. `https://app.example.com`. A request
    /// with any other Origin gets 403. Empty (the default): loopback origins only
    /// (`http(s)://localhost`, `127.0.0.1`, `[::1]`, any port). Requests without Origin
    /// (non-browser clients) always pass.
    #[arg(long, env = "PG_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Serve MCP without sessions (the default): every POST is answered on its own with plain
    /// JSON. Any replica can answer any call (no sticky sessions behind a load balancer), a
    /// call costs less, and it is where MCP is going (protocol 2026-07-28 has no sessions).
    /// `false` keeps streamable-HTTP sessions (`Mcp-Session-Id`, SSE replies, a GET stream),
    /// for clients that need server-initiated messages or resumable streams.
    #[arg(long, env = "PG_MCP_STATELESS_HTTP", default_value_t = true, action = clap::ArgAction::Set)]
    pub stateless_http: bool,

    /// Answer a plain stateless `tools/call` of `execute_query` in the HTTP task instead of
    /// through rmcp's per-request service (same tool code and reply bytes; less CPU per
    /// call). `false` sends every request through rmcp.
    #[arg(long, env = "PG_MCP_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    pub fast_path: bool,

    /// Connections per database pool.
    #[arg(long, env = "PG_MCP_POOL_SIZE", default_value_t = 10)]
    pub pool_size: u32,

    /// Prepared statements kept per pooled connection. 0 for PgBouncer before 1.21 in
    /// transaction pooling (no protocol-level prepared statements there): each statement is
    /// then prepared in its transaction and PgBouncer's `server_reset_query_always` drops it.
    #[arg(long, env = "PG_MCP_STATEMENT_CACHE_CAPACITY", default_value_t = 100)]
    pub statement_cache_capacity: usize,

    /// How long a tool call waits for a pooled connection before CONNECTION_ERROR.
    #[arg(long, env = "PG_MCP_POOL_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub pool_acquire_timeout_ms: u64,

    /// Per-statement time limit inside tool transactions.
    #[arg(long, env = "PG_MCP_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    pub statement_timeout_ms: u64,

    /// Time limit to wait for a lock inside tool transactions.
    #[arg(long, env = "PG_MCP_LOCK_TIMEOUT_MS", default_value_t = 5_000)]
    pub lock_timeout_ms: u64,

    /// Default and maximum rows returned by execute_query.
    #[arg(long, env = "PG_MCP_MAX_ROWS", default_value_t = 1000)]
    pub max_rows: usize,

    /// Largest result (JSON bytes of the rows) a tool returns.
    #[arg(long, env = "PG_MCP_MAX_RESULT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_result_bytes: usize,

    /// Longest SQL text accepted.
    #[arg(long, env = "PG_MCP_MAX_QUERY_LENGTH", default_value_t = 100_000)]
    pub max_query_length: usize,

    /// Tenant used when a request carries none (of the tenant value's type). Unset (the
    /// default) means such requests are refused with TENANT_REQUIRED.
    #[arg(long, env = "PG_MCP_DEFAULT_RLS_USER_ID")]
    pub default_rls_user_id: Option<String>,

    /// The verified values each call carries, as `name:type` (types uuid, bigint, text),
    /// comma separated; `tenant` is required. Policies read them with `pgmcp.tenant_id()` and
    /// `pgmcp.claim('name')`. Default `tenant:uuid`. Example: `tenant:bigint,user:text`.
    #[arg(long, env = "PG_MCP_CONTEXT", value_delimiter = ',')]
    pub context: Vec<String>,

    /// JWT claims that carry the context values, as `name=claim`, comma separated. Default:
    /// the tenant from PG_MCP_JWT_TENANT_CLAIM, every other value from the claim of its name.
    #[arg(long, env = "PG_MCP_CONTEXT_CLAIMS", value_delimiter = ',')]
    pub context_claims: Vec<String>,

    /// Headers that carry the context values in header mode, as `name=header`, comma
    /// separated. Default: the tenant from x-rls-user-id, every other value from
    /// x-pgmcp-<name> (underscores as hyphens).
    #[arg(long, env = "PG_MCP_CONTEXT_HEADERS", value_delimiter = ',')]
    pub context_headers: Vec<String>,

    /// Compatibility mode for policies that read a plain setting: `name=setting` pairs, comma
    /// separated (e.g. `tenant=app.current_rls_user_id`), each set transaction-locally to the
    /// value. Such policies rely on the SQL guard alone (`pg-mcp doctor` warns); prefer
    /// `pgmcp.tenant_id()`. Default: none.
    #[arg(long, env = "PG_MCP_COMPAT_SETTINGS", value_delimiter = ',')]
    pub compat_settings: Vec<String>,

    /// Secret that signs the tenant id set on each transaction; the same value must be stored
    /// in the database by `pg-mcp migrate`. At least 32 characters.
    #[arg(long, env = "PG_MCP_TENANT_SIGNING_KEY", hide_env_values = true, value_parser = secret)]
    pub tenant_signing_key: Option<SecretString>,

    /// Replaced by PG_MCP_WRITE_DATABASES: `false` is refused at start-up with that advice, so
    /// nobody believes writes are on (or off) when they are not.
    #[arg(long, env = "PG_MCP_READ_ONLY", default_value_t = true, action = clap::ArgAction::Set, hide = true)]
    pub read_only: bool,

    /// Databases in write mode, by configured name (`default` for PG_MCP_DATABASE_URL), or
    /// `*` for all. Everything else is read-only. Write mode accepts PG_MCP_ALLOWED_OPERATIONS
    /// (INSERT, UPDATE, DELETE, MERGE unless set) for callers allowed to write.
    #[arg(long, env = "PG_MCP_WRITE_DATABASES", value_delimiter = ',')]
    pub write_databases: Vec<String>,

    /// The OAuth scope a JWT caller needs for any MCP request (empty: reading needs none).
    /// With PG_MCP_RESOURCE_URL set, a token without it gets HTTP 403 `insufficient_scope`.
    #[arg(long, env = "PG_MCP_READ_SCOPE", default_value = "")]
    pub read_scope: String,

    /// The OAuth scope (in the token's `scope` or `scp` claim) that lets a JWT caller write.
    #[arg(long, env = "PG_MCP_WRITE_SCOPE", default_value = "pgmcp:write")]
    pub write_scope: String,

    /// Also lets a JWT caller write when claim `name` equals `value` (or is an array holding
    /// it), e.g. `role=editor`.
    #[arg(long, env = "PG_MCP_WRITE_CLAIM")]
    pub write_claim: Option<String>,

    /// The OAuth scope (in `scope` or `scp`) that makes a JWT caller an operator: the DBA
    /// tools are listed and callable for it alone.
    #[arg(long, env = "PG_MCP_OPERATOR_SCOPE", default_value = "pgmcp:operator")]
    pub operator_scope: String,

    /// Also makes a JWT caller an operator when claim `name` equals `value`, e.g. `role=dba`.
    #[arg(long, env = "PG_MCP_OPERATOR_CLAIM")]
    pub operator_claim: Option<String>,

    /// The role of the monitoring connection the DBA tools use (`pg_monitor`, never the
    /// application role); `pg-mcp migrate` creates it when PG_MCP_MONITOR_PASSWORD is set.
    #[arg(long, env = "PG_MCP_MONITOR_USER", default_value = "pgmcp_monitor")]
    pub monitor_user: String,

    /// The monitoring role's password. Unset: no monitoring connection, no DBA tools.
    #[arg(long, env = "PG_MCP_MONITOR_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub monitor_password: Option<SecretString>,

    /// Let the monitoring connection be a superuser (refused otherwise).
    #[arg(long, env = "PG_MCP_MONITOR_ALLOW_SUPERUSER", default_value_t = false, action = clap::ArgAction::Set)]
    pub monitor_allow_superuser: bool,

    /// Development only: callers identified by headers (and stdio's PG_MCP_RLS_USER_ID, and
    /// PG_MCP_DEFAULT_RLS_USER_ID) may write to databases in write mode.
    #[arg(long, env = "PG_MCP_HEADER_WRITES", default_value_t = false, action = clap::ArgAction::Set)]
    pub header_writes: bool,

    /// Most statements in one `execute_transaction`.
    #[arg(long, env = "PG_MCP_MAX_TRANSACTION_STATEMENTS", default_value_t = 100)]
    pub max_transaction_statements: usize,

    /// Most parameter sets in one `batch_execute` (a request body is at most 4 MB too).
    #[arg(long, env = "PG_MCP_MAX_BATCH_PARAM_SETS", default_value_t = 50_000)]
    pub max_batch_param_sets: usize,

    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    #[arg(long, env = "PG_MCP_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Seconds of "lame duck" after SIGINT/SIGTERM, before the grace period: the server still
    /// serves, `/health/ready` answers 503 and every response closes its connection, so a
    /// proxy's idle keep-alive connections end after a reply instead of being cut under a
    /// request it is sending. 0 skips it (one process, no proxy).
    #[arg(long, env = "PG_MCP_SHUTDOWN_DRAIN_SECS", default_value_t = 0)]
    pub shutdown_drain_secs: u64,

    /// How callers are identified: `header` (trust x-rls-user-id; loopback development only)
    /// or `jwt` (a verified bearer token carries the tenant claim).
    #[arg(long, env = "PG_MCP_AUTH_MODE", value_enum, default_value_t = AuthMode::Header)]
    pub auth_mode: AuthMode,

    /// Allow header-trust auth on a non-loopback bind address (not recommended).
    #[arg(long, env = "PG_MCP_ALLOW_HEADER_AUTH_ON_NETWORK", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_header_auth_on_network: bool,

    /// HMAC secret for HS256/384/512 tokens.
    #[arg(long, env = "PG_MCP_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<SecretString>,

    /// PEM public key (RSA or EC) for RS*/PS*/ES* tokens.
    #[arg(long, env = "PG_MCP_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,

    /// Accepted algorithms, comma separated (default: HS256 with a secret, RS256 with an RSA
    /// key, ES256 with an EC key). Never `none`.
    #[arg(long, env = "PG_MCP_JWT_ALGORITHMS", value_delimiter = ',')]
    pub jwt_algorithms: Vec<String>,

    /// Required `iss` claim. Without a secret or key file, the issuer's signing keys are
    /// discovered from its metadata (OpenID Connect Discovery, else RFC 8414) and its JWKS.
    #[arg(long, env = "PG_MCP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The issuer's JWKS URL, when discovery should not find it (needs PG_MCP_JWT_ISSUER).
    #[arg(long, env = "PG_MCP_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// The issuer's keys are fetched again at most this often, even when a token names an
    /// unknown key id (so forged ids cannot flood the identity provider), in seconds.
    #[arg(long, env = "PG_MCP_JWKS_MIN_REFRESH_SECS", default_value_t = 30)]
    pub jwks_min_refresh_secs: u64,

    /// The issuer's keys are fetched again after this long, or sooner when its JWKS response
    /// says so (`Cache-Control: max-age`), in seconds.
    #[arg(long, env = "PG_MCP_JWKS_MAX_AGE_SECS", default_value_t = 3600)]
    pub jwks_max_age_secs: u64,

    /// Required `aud` claim.
    #[arg(long, env = "PG_MCP_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// This server's canonical resource URL (the `/mcp` endpoint as clients reach it, e.g.
    /// `https://mcp.example.com/mcp`): published as OAuth protected resource metadata
    /// (RFC 9728), named in 401 challenges, and in jwt mode the audience a token must carry
    /// (RFC 8707) unless PG_MCP_JWT_AUDIENCE says the same.
    #[arg(long, env = "PG_MCP_RESOURCE_URL")]
    pub resource_url: Option<String>,

    /// The authorization servers (issuer URLs) that issue tokens for this resource, comma
    /// separated: listed in the protected resource metadata.
    #[arg(long, env = "PG_MCP_AUTHORIZATION_SERVERS", value_delimiter = ',')]
    pub authorization_servers: Vec<String>,

    /// The issuer's token introspection endpoint (RFC 7662): bearer tokens that are not JWTs
    /// (opaque tokens) are checked there. Needs PG_MCP_JWT_ISSUER, PG_MCP_RESOURCE_URL and
    /// this server's client credentials.
    #[arg(long, env = "PG_MCP_INTROSPECTION_URL")]
    pub introspection_url: Option<String>,

    /// This server's client id at the identity provider, for introspection (HTTP Basic).
    #[arg(long, env = "PG_MCP_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,

    /// That client's secret.
    #[arg(long, env = "PG_MCP_INTROSPECTION_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    pub introspection_client_secret: Option<SecretString>,

    /// An active introspection reply is reused this long (never past the token's expiry), in
    /// seconds: a token revoked at the provider is refused at the latest this much later.
    #[arg(long, env = "PG_MCP_INTROSPECTION_CACHE_SECS", default_value_t = 30)]
    pub introspection_cache_secs: u64,

    /// Claim holding the tenant id (of the tenant value's type; see PG_MCP_CONTEXT).
    #[arg(long, env = "PG_MCP_JWT_TENANT_CLAIM", default_value = "rls_user_id")]
    pub jwt_tenant_claim: String,

    /// Clock skew tolerated for `exp`/`nbf`, in seconds.
    #[arg(long, env = "PG_MCP_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// Bearer token for /connections and /query_history (required unless bound to loopback).
    #[arg(long, env = "PG_MCP_ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_token: Option<SecretString>,

    /// Tool calls per minute per tenant (0 disables the limit).
    #[arg(long, env = "PG_MCP_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,

    /// Burst of tool calls a tenant may make at once.
    #[arg(long, env = "PG_MCP_RATE_LIMIT_BURST", default_value_t = 60)]
    pub rate_limit_burst: u32,

    /// Schemas shown to the model, comma separated (the schema tools list only these and the
    /// SQL guard refuses relations qualified with another). `pg-mcp migrate` grants the
    /// application role read access to them. Default: every schema the role may use.
    #[arg(long, env = "PG_MCP_SCHEMAS", value_delimiter = ',')]
    pub schemas: Vec<String>,

    /// Schemas never shown, comma separated; wins over PG_MCP_SCHEMAS. PostgreSQL's own
    /// schemas are never listed either. Default: pgmcp,pgmcp_private,pgmcp_embeddings
    /// (pg-mcp's own).
    #[arg(
        long,
        env = "PG_MCP_HIDDEN_SCHEMAS",
        value_delimiter = ',',
        default_value = "pgmcp,pgmcp_private,pgmcp_embeddings"
    )]
    pub hidden_schemas: Vec<String>,

    /// Tables every tenant may read in full, comma separated (`schema.table` or `schema.*`):
    /// `pg-mcp doctor` does not report them for lacking row-level security. Default: none.
    #[arg(long, env = "PG_MCP_SHARED_TABLES", value_delimiter = ',')]
    pub shared_tables: Vec<String>,

    /// Extra functions the SQL guard refuses, comma separated (`name` or `prefix*`).
    #[arg(long, env = "PG_MCP_BLOCKED_FUNCTIONS", value_delimiter = ',')]
    pub blocked_functions: Vec<String>,

    /// Statement kinds refused (seed setting BLOCKED_KEYWORDS, e.g. DROP,TRUNCATE,ALTER).
    #[arg(
        long,
        env = "PG_MCP_BLOCKED_KEYWORDS",
        value_delimiter = ',',
        value_enum,
        ignore_case = true
    )]
    pub blocked_keywords: Vec<Operation>,

    /// Statement kinds allowed in read-write mode (seed setting ALLOWED_OPERATIONS).
    #[arg(
        long,
        env = "PG_MCP_ALLOWED_OPERATIONS",
        value_delimiter = ',',
        value_enum,
        ignore_case = true
    )]
    pub allowed_operations: Vec<Operation>,

    /// Largest planner cost estimate `execute_query` runs (0: no ceiling). When set, each query
    /// is first planned with `EXPLAIN` in the same transaction (one more round trip) and
    /// refused with QUERY_TOO_EXPENSIVE above the ceiling, before it runs.
    #[arg(long, env = "PG_MCP_MAX_QUERY_COST", default_value_t = 0.0)]
    pub max_query_cost: f64,

    /// Calls one tenant may have running at once per database (0: a quarter of the pool,
    /// rounded up). One tenant's long queries then leave the rest of the pool to the others.
    #[arg(long, env = "PG_MCP_TENANT_MAX_CONCURRENT_CALLS", default_value_t = 0)]
    pub tenant_max_concurrent_calls: u32,

    /// How long a call waits for one of its tenant's slots before TENANT_BUSY.
    #[arg(long, env = "PG_MCP_TENANT_QUEUE_TIMEOUT_MS", default_value_t = 5_000)]
    pub tenant_queue_timeout_ms: u64,

    /// Serve even though the application role can still read other sessions' activity,
    /// locks or prepared statements (a migration run without superuser rights). Not
    /// recommended: tenants could then read each other's SQL text.
    #[arg(long, env = "PG_MCP_ALLOW_OBSERVABLE_SESSIONS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_observable_sessions: bool,

    /// Test-only: skip the SQL guard to prove the database enforces on its own. Not settable
    /// from the environment or the command line.
    #[arg(skip)]
    pub unsafe_disable_sql_guard: bool,

    /// Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma separated); the
    /// client address in logs is taken from it only when the peer is one of these.
    #[arg(long, env = "PG_MCP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Tool calls kept in the in-memory query history.
    #[arg(long, env = "PG_MCP_QUERY_HISTORY_SIZE", default_value_t = 1000)]
    pub query_history_size: usize,

    /// Keep parameter values in the query history (off: only their count).
    #[arg(long, env = "PG_MCP_HISTORY_STORE_PARAMS", default_value_t = false, action = clap::ArgAction::Set)]
    pub history_store_params: bool,

    /// Tool calls slower than this are logged at WARN as slow queries.
    #[arg(long, env = "PG_MCP_SLOW_QUERY_MS", default_value_t = 1000)]
    pub slow_query_ms: u64,

    /// Seconds between the schema cache's checks for catalogue changes (a cheap fingerprint
    /// query; a change reloads the cache and notifies sessions).
    #[arg(long, env = "PG_MCP_SCHEMA_CACHE_CHECK_SECS", default_value_t = 2)]
    pub schema_cache_check_secs: u64,

    /// Seconds after which the schema cache reloads even without a detected change (row
    /// estimates drift without DDL).
    #[arg(long, env = "PG_MCP_SCHEMA_CACHE_TTL_SECS", default_value_t = 300)]
    pub schema_cache_ttl_secs: u64,

    /// Largest answer, in bytes of JSON (or text), of the schema tools and resources:
    /// `list_tables` pages, `get_multiple_table_schemas`, `schema://`.
    #[arg(
        long,
        env = "PG_MCP_SCHEMA_OUTPUT_BUDGET_BYTES",
        default_value_t = 65_536
    )]
    pub schema_output_budget_bytes: usize,

    #[command(flatten)]
    pub audit: AuditSettings,

    #[command(flatten)]
    pub embeddings: crate::search::EmbeddingSettings,

    #[command(flatten)]
    pub llm: crate::nl::LlmSettings,

    /// Log format: `pretty` or `json`.
    #[arg(long, env = "PG_MCP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "PG_MCP_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The configured databases, default first. Fails on malformed entries or duplicates.
    pub fn database_targets(&self) -> Result<Vec<DatabaseTarget>> {
        let mut targets = Vec::new();
        if let Some(url) = &self.database_url {
            targets.push(DatabaseTarget {
                name: self.database_name.clone(),
                url: url.clone(),
                read_urls: self.database_read_urls.clone(),
            });
        }
        if let Some(list) = &self.databases {
            for item in list
                .expose_secret()
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (name, url) = item.split_once('=').ok_or_else(|| {
                    AppError::validation(
                        "PG_MCP_DATABASES entries must look like name=postgres://...",
                    )
                })?;
                targets.push(DatabaseTarget {
                    name: name.trim().to_string(),
                    url: SecretString::from(url.trim()),
                    read_urls: Vec::new(),
                });
            }
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.name == t.name) {
                return Err(AppError::validation(format!(
                    "database name {:?} is configured twice",
                    t.name
                )));
            }
        }
        Ok(targets)
    }

    /// Checks everything that can be checked without a database.
    /// The exposed schemas (`PG_MCP_SCHEMAS` less `PG_MCP_HIDDEN_SCHEMAS`).
    /// When the schema cache checks for changes and reloads.
    pub fn schema_cache_timing(&self) -> crate::schema::CacheTiming {
        crate::schema::CacheTiming {
            check_every: std::time::Duration::from_secs(self.schema_cache_check_secs.max(1)),
            ttl: std::time::Duration::from_secs(self.schema_cache_ttl_secs.max(1)),
        }
    }

    pub fn exposure(&self) -> crate::exposure::Exposure {
        crate::exposure::Exposure::new(&self.schemas, &self.hidden_schemas)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(resource) = &self.resource_url {
            let parsed = url::Url::parse(resource).map_err(|e| {
                AppError::validation(format!("PG_MCP_RESOURCE_URL is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.fragment().is_some() {
                return Err(AppError::validation(
                    "PG_MCP_RESOURCE_URL must be an absolute http(s) URL without a fragment (RFC 8707)",
                ));
            }
            if let Some(audience) = &self.jwt_audience
                && audience != resource
            {
                return Err(AppError::validation(format!(
                    "PG_MCP_JWT_AUDIENCE ({audience}) must equal PG_MCP_RESOURCE_URL ({resource}): a token's audience is this resource (RFC 8707)"
                )));
            }
        }
        if self.database_targets()?.is_empty() {
            return Err(AppError::validation(
                "no database configured: set PG_MCP_DATABASE_URL (or PG_MCP_DATABASES)",
            ));
        }
        match &self.tenant_signing_key {
            None => {
                return Err(AppError::validation(
                    "PG_MCP_TENANT_SIGNING_KEY is not set: row-level security needs the signing key that `pg-mcp migrate` stored in the database",
                ));
            }
            Some(k) if k.expose_secret().len() < 32 => {
                return Err(AppError::validation(
                    "PG_MCP_TENANT_SIGNING_KEY must be at least 32 characters",
                ));
            }
            _ => {}
        }
        match self.auth_mode {
            AuthMode::Header if !self.is_loopback() && !self.allow_header_auth_on_network => {
                return Err(AppError::validation(format!(
                    "PG_MCP_AUTH_MODE=header trusts the x-rls-user-id header, which is only safe on loopback; {} is not. Use PG_MCP_AUTH_MODE=jwt (or set PG_MCP_ALLOW_HEADER_AUTH_ON_NETWORK=true behind an authenticating proxy)",
                    self.bind
                )));
            }
            AuthMode::Jwt
                if self.jwt_secret.is_none()
                    && self.jwt_public_key_file.is_none()
                    && self.jwt_issuer.is_none() =>
            {
                return Err(AppError::validation(
                    "PG_MCP_AUTH_MODE=jwt needs keys: PG_MCP_JWT_ISSUER (its keys are discovered), PG_MCP_JWKS_URL, PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE",
                ));
            }
            _ => {}
        }
        if !self.is_loopback()
            && self
                .admin_token
                .as_ref()
                .is_none_or(|t| t.expose_secret().len() < 16)
        {
            tracing::warn!(
                "PG_MCP_ADMIN_TOKEN is unset or short: /connections and /query_history are refused on a non-loopback bind"
            );
        }
        self.trusted_proxy_nets()?;
        if !self.read_only {
            return Err(AppError::validation(
                "PG_MCP_READ_ONLY=false is replaced by PG_MCP_WRITE_DATABASES: name the databases in write mode (or *), and unset PG_MCP_READ_ONLY",
            ));
        }
        let names: Vec<String> = self
            .database_targets()?
            .into_iter()
            .map(|t| t.name)
            .collect();
        for name in self.write_database_names() {
            if name != "*" && !names.contains(&name) {
                return Err(AppError::validation(format!(
                    "PG_MCP_WRITE_DATABASES names {name:?}, which is not a configured database ({})",
                    names.join(", ")
                )));
            }
        }
        if let Some(claim) = &self.operator_claim
            && claim
                .split_once('=')
                .is_none_or(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
        {
            return Err(AppError::validation(
                "PG_MCP_OPERATOR_CLAIM must look like claim=value (e.g. role=dba)",
            ));
        }
        if let Some(claim) = &self.write_claim
            && claim
                .split_once('=')
                .is_none_or(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
        {
            return Err(AppError::validation(
                "PG_MCP_WRITE_CLAIM must look like claim=value (e.g. role=editor)",
            ));
        }
        if self.header_writes && self.auth_mode == AuthMode::Header && !self.is_loopback() {
            return Err(AppError::validation(
                "PG_MCP_HEADER_WRITES lets anyone who can send a header write: it is for loopback development only",
            ));
        }
        if !self.audit.enabled && !self.write_database_names().is_empty() {
            return Err(AppError::validation(
                "PG_MCP_AUDIT_LOG=false with PG_MCP_WRITE_DATABASES set: writes are always audited, so write mode needs the audit log",
            ));
        }
        if self.max_rows == 0 || self.pool_size == 0 {
            return Err(AppError::validation(
                "PG_MCP_MAX_ROWS and PG_MCP_POOL_SIZE must be positive",
            ));
        }
        Ok(())
    }

    /// The trusted proxy networks, parsed.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        AppError::validation(format!(
                            "PG_MCP_TRUSTED_PROXIES: {s:?} is not an IP or CIDR"
                        ))
                    })
            })
            .collect()
    }

    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }

    /// Calls one tenant may run at once per database: the setting, or a quarter of the pool.
    pub fn tenant_concurrency(&self) -> u32 {
        match self.tenant_max_concurrent_calls {
            0 => self.pool_size.div_ceil(4).max(1),
            n => n,
        }
    }

    /// PG_MCP_WRITE_DATABASES, trimmed.
    fn write_database_names(&self) -> Vec<String> {
        self.write_databases
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether database `name` is in write mode (PG_MCP_WRITE_DATABASES).
    pub fn is_writable(&self, name: &str) -> bool {
        self.write_database_names()
            .iter()
            .any(|n| n == "*" || n == name)
    }

    /// True when the server only listens on a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.bind.ip().is_loopback()
    }
}

/// Settings of the audit log (all `PG_MCP_AUDIT_*`).
#[derive(clap::Args, Clone, Debug)]
pub struct AuditSettings {
    /// Write every tool call to pgmcp_private.audit_log (off: the in-memory history only).
    #[arg(long = "audit-log", env = "PG_MCP_AUDIT_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// The configured database (by name) that holds the audit log; default: the default one.
    #[arg(long = "audit-database", env = "PG_MCP_AUDIT_DATABASE")]
    pub database: Option<String>,

    /// Entries waiting to be written, at most; beyond it calls are not audited (counted in
    /// pgmcp_audit_dropped_total).
    #[arg(
        long = "audit-queue-size",
        env = "PG_MCP_AUDIT_QUEUE_SIZE",
        default_value_t = 10_000
    )]
    pub queue_size: usize,

    /// Entries per write, at most.
    #[arg(
        long = "audit-batch-size",
        env = "PG_MCP_AUDIT_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: usize,

    /// The longest an entry waits before its batch is written, in milliseconds.
    #[arg(
        long = "audit-flush-ms",
        env = "PG_MCP_AUDIT_FLUSH_MS",
        default_value_t = 200
    )]
    pub flush_ms: u64,

    /// Days an entry is kept (0: forever). Every server prunes at start and hourly.
    #[arg(
        long = "audit-retention-days",
        env = "PG_MCP_AUDIT_RETENTION_DAYS",
        default_value_t = 30
    )]
    pub retention_days: u64,

    /// This server's name in the audit log (default: host name and a random suffix, new at
    /// every start).
    #[arg(long = "instance-id", env = "PG_MCP_INSTANCE_ID")]
    pub instance_id: Option<String>,
}
