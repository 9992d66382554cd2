//! The tenant and the tenant transaction every data tool runs in.
//!
//! A call's work runs in one transaction on a pooled connection that starts with
//! `BEGIN READ ONLY` and transaction-local settings: statement and lock timeouts, the
//! caller's verified context. All of it is `SET LOCAL`-scoped, so nothing survives the
//! transaction on the pooled connection. The context is set by `pgmcp.enter`
//! (migrations/0002), which binds it to this backend and this transaction: a tenant set by
//! SQL text, or a context copied from another transaction, verifies nowhere.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

use crate::db::context::TenantContext;
use crate::error::{AppError, Result};

/// How the caller's tenant was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// Headers (`x-rls-user-id` and the configured value headers), trusted as they are
    /// (loopback development).
    Header,
    /// Claims of a verified JWT.
    Jwt,
    /// `PG_MCP_DEFAULT_RLS_USER_ID` (or `PG_MCP_RLS_USER_ID` for stdio).
    Default,
}

/// The caller a tool runs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The verified values: the tenant id and any further declared values.
    pub context: TenantContext,
    pub subject: Option<String>,
    pub auth: AuthMethod,
    /// May write to databases in write mode (the write scope or claim; header callers with
    /// PG_MCP_HEADER_WRITES). Without it every call is read-only.
    pub may_write: bool,
}

impl Tenant {
    /// The tenant id (canonical for its type): what limits, history and logs key on.
    pub fn id(&self) -> &str {
        &self.context.tenant
    }
}

/// Writes the caller's context into a transaction: proves to the database, with the key it
/// shares, that the server chose it, and sets the operator's plain compatibility settings.
#[derive(Clone, Debug)]
pub struct TenantSigner {
    key: SecretString,
    /// (value name, setting name): plain `set_config` copies for policies that read a setting
    /// directly (`PG_MCP_COMPAT_SETTINGS`). Those rely on the SQL guard alone.
    compat: Vec<(String, String)>,
}

impl TenantSigner {
    pub fn new(key: impl Into<SecretString>) -> Self {
        Self {
            key: key.into(),
            compat: Vec::new(),
        }
    }

    /// Also sets each `(value name, setting)` as a plain transaction-local setting.
    pub fn with_compat_settings(mut self, compat: Vec<(String, String)>) -> Self {
        self.compat = compat;
        self
    }

    /// hex(sha256(key ':proof:' context ':' issued_at_ms ':' key)), what `pgmcp.enter` checks
    /// (migrations/0002). It is only accepted in the message that begins a transaction and
    /// only for two minutes, so a proof that leaked is worth nothing to tenant SQL.
    pub fn proof(&self, context: &str, issued_at_ms: i64) -> String {
        self.sign("proof", context, issued_at_ms)
    }

    /// hex(sha256(key ':' purpose ':' payload ':' issued_at_ms ':' key)): the proof of
    /// `pgmcp.enter` (purpose `proof`) and of the audit-log functions (migrations/0003),
    /// bound to its exact payload.
    pub fn sign(&self, purpose: &str, payload: &str, issued_at_ms: i64) -> String {
        let key = self.key.expose_secret().as_bytes();
        let mut hasher = Sha256::new();
        hasher.update(key);
        hasher.update(b":");
        hasher.update(purpose.as_bytes());
        hasher.update(b":");
        hasher.update(payload.as_bytes());
        hasher.update(b":");
        hasher.update(issued_at_ms.to_string().as_bytes());
        hasher.update(b":");
        hasher.update(key);
        hex::encode(hasher.finalize())
    }
}

/// Limits and mode of one tenant transaction.
#[derive(Debug, Clone, Copy)]
pub struct TxOptions {
    pub read_only: bool,
    /// End a read-write transaction with COMMIT (else ROLLBACK: a dry run). Read-only
    /// transactions always roll back: there is nothing to keep.
    pub commit: bool,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl TxOptions {
    /// A read-only call's transaction under `config`'s limits.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            read_only: true,
            commit: false,
            statement_timeout: config.statement_timeout(),
            lock_timeout: Duration::from_millis(config.lock_timeout_ms),
        }
    }

    /// The statement timeout in milliseconds, for error messages that name the limit.
    pub fn statement_timeout_ms(&self) -> u64 {
        self.statement_timeout.as_millis() as u64
    }
}

/// Milliseconds since the Unix epoch on the server's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The statement that opens a tenant transaction.
///
/// It is sent as one simple-protocol message (one round trip), and must be: `pgmcp.enter`
/// accepts only in the message that began the transaction, which binds the tenant context
/// to this backend and this transaction (migrations/0002). Sending it this way is safe because
/// every value in it is generated or validated by the server with a fixed alphabet: context
/// values checked by their type (`db::context`), setting names checked at startup, a hex
/// digest and integers. No other caller text is ever part of it.
///
/// `work_mem` is reset to the role's default so a session-level change left behind on the
/// pooled connection cannot follow into another tenant's call.
pub fn begin_statement(tenant: &Tenant, signer: &TenantSigner, opts: &TxOptions) -> String {
    let context = tenant.context.canonical();
    let issued = now_ms();
    let proof = signer.proof(&context, issued);
    let compat: String = signer
        .compat
        .iter()
        .filter_map(|(name, setting)| {
            let value = tenant.context.get(name)?;
            Some(format!("set_config('{setting}', '{value}', true), "))
        })
        .collect();
    let mode = if opts.read_only {
        "READ ONLY"
    } else {
        "READ WRITE"
    };
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED {mode}; \
         SET LOCAL work_mem TO DEFAULT; \
         SELECT set_config('statement_timeout', '{st}', true), \
                set_config('lock_timeout', '{lt}', true), \
                set_config('idle_in_transaction_session_timeout', '{it}', true), {compat}\
                pgmcp.enter('{context}', {issued}, '{proof}')",
        st = opts.statement_timeout.as_millis(),
        lt = opts.lock_timeout.as_millis(),
        it = opts.statement_timeout.as_millis() + 5_000,
    )
}

/// Attempts past the first when BEGIN fails on a dead pooled connection.
const MAX_BEGIN_RETRIES: usize = 3;

/// Runs `work` in one tenant transaction on a pooled connection, then ends it: read-only work
/// is rolled back (there is nothing to keep), read-write work is committed when `work`
/// succeeds and `opts.commit` is set (a dry run rolls back). On an error, or when the call is dropped, sqlx rolls the transaction back.
///
/// A connection that died while idle in the pool (database restart) fails at BEGIN; the
/// transaction is then opened again on another connection so the server recovers by itself.
pub async fn with_tenant_tx<T>(
    pool: &PgPool,
    tenant: &Tenant,
    signer: &TenantSigner,
    opts: &TxOptions,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    let tx = begin_tenant_tx(pool, tenant, signer, opts).await?;
    run_in_tenant_tx(tx, opts, work).await
}

/// Opens the tenant transaction on `pool` (the first half of [`with_tenant_tx`]).
pub async fn begin_tenant_tx(
    pool: &PgPool,
    tenant: &Tenant,
    signer: &TenantSigner,
    opts: &TxOptions,
) -> Result<Transaction<'static, Postgres>> {
    let limit_ms = opts.statement_timeout_ms();
    let begin = || AssertSqlSafe(begin_statement(tenant, signer, opts));
    // Every idle connection may have died with the server: sqlx drops each one that fails,
    // so a few attempts reach a fresh connection (or report the database as unreachable).
    let mut attempts = 0;
    loop {
        match pool.begin_with(begin()).await {
            Ok(tx) => return Ok(tx),
            Err(e) if is_connection_failure(&e) && attempts < MAX_BEGIN_RETRIES => attempts += 1,
            Err(e) => return Err(AppError::from_sqlx(e, limit_ms)),
        }
    }
}

/// Runs `work` in the open tenant transaction `tx`, then ends it (the second half of
/// [`with_tenant_tx`]).
pub async fn run_in_tenant_tx<T>(
    mut tx: Transaction<'static, Postgres>,
    opts: &TxOptions,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    let limit_ms = opts.statement_timeout_ms();
    // A statement of `work` that ran past the timeout names the limit in its error.
    let value = work(&mut *tx)
        .await
        .map_err(|e| e.with_statement_limit(limit_ms))?;
    let ended = if opts.read_only || !opts.commit {
        tx.rollback().await
    } else {
        tx.commit().await
    };
    ended.map_err(|e| AppError::from_sqlx(e, limit_ms))?;
    Ok(value)
}

fn is_connection_failure(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEATTLE: &str = "tenant=f47ac10b-58cc-4372-a567-0e02b2c3d479";

    #[test]
    fn proof_matches_the_sql_expression_shape() {
        let signer = TenantSigner::new("k".repeat(32));
        let expected = {
            let mut h = Sha256::new();
            h.update(format!("{0}:proof:{SEATTLE}:1700000000000:{0}", "k".repeat(32)).as_bytes());
            hex::encode(h.finalize())
        };
        assert_eq!(signer.proof(SEATTLE, 1_700_000_000_000), expected);
        assert_ne!(signer.proof(SEATTLE, 1), signer.proof("tenant=42", 1));
        assert_ne!(
            signer.proof(SEATTLE, 1),
            signer.proof(SEATTLE, 2),
            "a proof is per issue time"
        );
    }

    fn tenant() -> Tenant {
        Tenant {
            context: TenantContext {
                tenant: "42".into(),
                values: vec![("user".into(), "alice@example.com".into())],
            },
            subject: None,
            auth: AuthMethod::Header,
            may_write: false,
        }
    }

    const OPTS: TxOptions = TxOptions {
        read_only: true,
        commit: false,
        statement_timeout: Duration::from_secs(30),
        lock_timeout: Duration::from_secs(5),
    };

    #[test]
    fn begin_statement_has_only_generated_values() {
        let signer = TenantSigner::new("x".repeat(40));
        let s = begin_statement(&tenant(), &signer, &OPTS);
        assert!(s.starts_with("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY;"));
        assert!(s.contains("'30000'"));
        assert!(s.contains("pgmcp.enter('tenant=42;user=alice@example.com', "));
        assert!(!s.contains(&"x".repeat(40)), "the key itself is never sent");
        assert!(!s.contains("app."), "no plain settings unless configured");
        assert!(
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || " ;,'()_.-=@".contains(c)),
            "only generated characters: {s}"
        );
    }

    #[test]
    fn compatibility_settings_copy_the_named_values() {
        let signer = TenantSigner::new("x".repeat(40)).with_compat_settings(vec![
            ("tenant".into(), "app.current_org".into()),
            ("role".into(), "app.current_role".into()),
        ]);
        let s = begin_statement(&tenant(), &signer, &OPTS);
        assert!(
            s.contains("set_config('app.current_org', '42', true), "),
            "{s}"
        );
        assert!(
            !s.contains("app.current_role"),
            "a value the caller lacks is not set: {s}"
        );
    }
}
