//! The connection tools (operators, seed 000): `list_connections`, `test_connection`,
//! `add_connection` and `remove_connection`. A database added here gets the start-up
//! checks of a configured one (`AppState::check_database`: no role that skips row-level
//! security or reads other sessions, a fit monitoring role) and must answer before it is
//! added. It is read-only (never in write mode) and lives in memory only: a restart forgets
//! it. A connection URL is never echoed, logged or recorded: answers show host, port,
//! database and user, errors have the password redacted, and the history records only the
//! name.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::DatabaseTarget;
use crate::db::Database;
use crate::db::registry::redact_url;
use crate::error::{AppError, ErrorCode, Result};
use crate::state::AppState;

/// A connection URL (`postgres://user:password@host:port/database`): never printed.
#[derive(Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Dsn(String);

impl std::fmt::Debug for Dsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dsn(********)")
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListConnectionsArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TestConnectionArgs {
    /// A database pg-mcp knows (as in list_connections).
    pub name: Option<String>,
    /// Or a connection URL to try without adding it: postgres://user:password@host:port/db.
    pub dsn: Option<Dsn>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddConnectionArgs {
    /// The name tools will take as `database` (letters, digits, `_` and `-`; at most 63).
    pub name: String,
    /// postgres://user:password@host:port/database, as a role without superuser or BYPASSRLS
    /// (the application role, pgmcp_app, on a database `pg-mcp migrate` prepared).
    pub dsn: Dsn,
    /// Connections in its pool (default: PG_MCP_POOL_SIZE; 1 to 100).
    pub pool_size: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RemoveConnectionArgs {
    /// The database to remove (not the default one).
    pub name: String,
}

/// What the connection tools answer: a short human summary and the tool's own fields.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ConnectionsAnswer {
    pub summary: String,
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

fn answer(summary: String, details: Value) -> Result<Value> {
    let Value::Object(details) = details else {
        return Err(AppError::internal("connection answer is not an object"));
    };
    super::to_json(ConnectionsAnswer { summary, details })
}

/// `list_connections`: what `/connections` shows.
pub async fn list_connections(state: &AppState) -> Result<Value> {
    let mut list = Vec::new();
    for db in state.databases.all() {
        list.push(db.status().await);
    }
    let healthy = list.iter().filter(|s| s.healthy).count();
    let runtime = list.iter().filter(|s| s.runtime).count();
    answer(
        format!(
            "{} databases ({healthy} healthy; {runtime} added at runtime, in memory only); default: {}",
            list.len(),
            state.databases.default_name()
        ),
        json!({"count": list.len(), "default": state.databases.default_name(), "connections": list}),
    )
}

fn valid_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(format!(
            "invalid connection name {name:?}: letters, digits, '_' and '-', starting with a letter, at most 63"
        )))
    }
}

/// A lazy, read-only, runtime database for `dsn` (not yet checked nor registered).
fn runtime_database(
    state: &AppState,
    name: &str,
    dsn: &Dsn,
    pool_size: Option<u32>,
) -> Result<Database> {
    valid_name(name)?;
    if !dsn.0.starts_with("postgres://") && !dsn.0.starts_with("postgresql://") {
        return Err(AppError::validation(
            "dsn must be a URL: postgres://user:password@host:port/database",
        ));
    }
    let pool_size = pool_size.unwrap_or(state.config().pool_size);
    if !(1..=100).contains(&pool_size) {
        return Err(AppError::validation("pool_size must be between 1 and 100"));
    }
    let mut config = (*state.config()).clone();
    config.pool_size = pool_size;
    let target = DatabaseTarget {
        read_urls: Vec::new(),
        name: name.to_string(),
        url: dsn.0.clone().into(),
    };
    let mut db = Database::connect_lazy(&target, &config)?;
    db.writable = false;
    db.runtime = true;
    Ok(db)
}

/// The start-up checks on `db`, then its role's attributes; errors name no password.
async fn checked(state: &AppState, db: &Database, dsn: &Dsn) -> Result<Value> {
    let redact = |mut e: AppError| {
        e.message = redact_url(&e.message, &dsn.0);
        e
    };
    state.check_database(db).await.map_err(redact)?;
    let status = db.status().await;
    if !status.healthy {
        return Err(AppError::new(
            ErrorCode::ConnectionError,
            format!(
                "database {:?} did not answer: {}",
                db.name,
                redact_url(
                    status.last_error.as_deref().unwrap_or("unknown error"),
                    &dsn.0
                )
            ),
        ));
    }
    role_of(db).await.map_err(redact)
}

/// The connecting role's attributes, and where the database stands.
async fn role_of(db: &Database) -> Result<Value> {
    let mut tx = db.pool.begin().await.map_err(AppError::from)?;
    let (user, superuser, bypassrls, monitor, version): (String, bool, bool, bool, String) =
        sqlx::query_as(
            "SELECT current_user::text, rolsuper, rolbypassrls, pg_has_role(current_user, 'pg_monitor', 'USAGE'), version() \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(AppError::from)?;
    Ok(json!({
        "role": {"name": user, "superuser": superuser, "bypassrls": bypassrls, "pg_monitor": monitor},
        "version": version,
    }))
}

/// `test_connection`: reachability, version and role attributes of a known database or of
/// a URL (which is then forgotten); FORBIDDEN for a role that would bypass row-level security.
pub async fn test_connection(state: &AppState, args: TestConnectionArgs) -> Result<Value> {
    let (db, dsn) = match (&args.name, &args.dsn) {
        (Some(name), None) => (state.databases.get(Some(name))?, None),
        (None, Some(dsn)) => (
            Arc::new(runtime_database(state, "tested", dsn, Some(1))?),
            Some(dsn),
        ),
        _ => {
            return Err(AppError::validation(
                "give either name (a known database) or dsn (a connection URL)",
            ));
        }
    };
    let outcome = match dsn {
        Some(dsn) => checked(state, &db, dsn).await,
        None => {
            let status = db.status().await;
            if status.healthy {
                db.check_role_is_safe(state.config().allow_observable_sessions)
                    .await?;
                role_of(&db).await
            } else {
                Err(AppError::new(
                    ErrorCode::ConnectionError,
                    format!(
                        "database {:?} did not answer: {}",
                        db.name,
                        status.last_error.unwrap_or_default()
                    ),
                ))
            }
        }
    };
    if dsn.is_some() {
        Database::close_later(db.clone());
    }
    let mut details = outcome?;
    details["host"] = json!(db.host);
    details["port"] = json!(db.port);
    details["database"] = json!(db.database);
    details["reachable"] = json!(true);
    answer(
        format!(
            "{}:{}/{} answers as {} (no superuser, no BYPASSRLS): usable by pg-mcp",
            db.host, db.port, db.database, details["role"]["name"]
        ),
        details,
    )
}

/// `add_connection`: checks the database as at start-up, then adds it (in memory).
pub async fn add_connection(state: &AppState, args: AddConnectionArgs) -> Result<Value> {
    if state.databases.get(Some(&args.name)).is_ok() {
        return Err(AppError::validation(format!(
            "database {:?} already exists; remove_connection it first",
            args.name
        )));
    }
    let db = Arc::new(runtime_database(
        state,
        &args.name,
        &args.dsn,
        args.pool_size,
    )?);
    if let Err(e) = checked(state, &db, &args.dsn).await {
        Database::close_later(db);
        return Err(e);
    }
    if let Err(e) = state.databases.insert(db.clone()) {
        Database::close_later(db);
        return Err(e);
    }
    state.schemas.insert(db.clone());
    tracing::info!(database = %db.name, host = %db.host, port = db.port, "database added at runtime");
    let status = db.status().await;
    answer(
        format!(
            "added {:?} ({}:{}/{} as {}), read-only; in memory only: a restart forgets it",
            db.name, db.host, db.port, db.database, db.user
        ),
        json!({"connection": status, "persisted": false}),
    )
}

/// `remove_connection`: no new call reaches it; calls in flight finish, then its pools close.
pub async fn remove_connection(state: &AppState, args: RemoveConnectionArgs) -> Result<Value> {
    let db = state.databases.remove(&args.name)?;
    state.schemas.remove(&db.name);
    tracing::info!(database = %db.name, "database removed at runtime");
    let configured = if db.runtime {
        ""
    } else {
        " (it is configured, so it comes back at restart)"
    };
    let name = db.name.clone();
    Database::close_later(db);
    answer(
        format!("removed {name:?}{configured}"),
        json!({"removed": name, "remaining": state.databases.names()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("shop-2").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name("2shop").is_err());
        assert!(valid_name("a b").is_err());
        assert!(valid_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn a_dsn_is_never_printed() {
        let dsn: Dsn = serde_json::from_value(json!("postgres://u:hunter2@h/d")).unwrap();
        assert!(!format!("{dsn:?}").contains("hunter2"));
    }
}
