//! Throwaway databases of the test cluster, and the real `pg-mcp` binary run against them
//! (migrate, seed, embed), for tests that need a schema of their own.

use std::ffi::OsStr;
use std::process::Output;

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use super::process::pg_mcp_command;
use super::{env, migration_lock};

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("a database URL");
    url.set_path(database);
    url.to_string()
}

/// A fresh, empty database (dropped first if a previous run left it); a superuser pool on it.
pub async fn fresh_database(name: &str) -> PgPool {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&env().admin_url)
        .await
        .expect("admin connection");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&with_database(&env().admin_url, name))
        .await
        .expect("connection to the fresh database")
}

/// Runs the real `pg-mcp <args>` binary against database `name` (its admin and app URLs,
/// the signing key), with `extra` settings, under the [`migration_lock`].
pub async fn pg_mcp_on<V: AsRef<OsStr>>(name: &str, args: &[&str], extra: &[(&str, V)]) -> Output {
    let lock = migration_lock().await;
    let mut cmd = pg_mcp_command(args[0]);
    cmd.args(&args[1..])
        .env(
            "PG_MCP_ADMIN_DATABASE_URL",
            with_database(&env().admin_url, name),
        )
        .env("PG_MCP_DATABASE_URL", with_database(&env().app_url, name))
        .env("PG_MCP_TENANT_SIGNING_KEY", env().signing_key)
        .env(
            "PG_MCP_APP_TEMP_FILE_LIMIT",
            std::env::var("PG_MCP_TEST_TEMP_FILE_LIMIT").unwrap_or_else(|_| "1GB".into()),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("pg-mcp runs"))
        .await
        .unwrap();
    lock.close().await;
    out
}

/// A run's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No extra settings for [`pg_mcp_on`].
pub const NO_SETTINGS: &[(&str, &str)] = &[];

/// A fresh database `name` prepared by `pg-mcp migrate`, with one tenant table:
/// `shop.notes (tenant, note)`, one row of Seattle's (`seattle's`) and one of another tenant,
/// under a policy on `pgmcp.tenant_id()`; the app role may read it.
pub async fn tenant_notes_database(name: &str) {
    let admin = fresh_database(name).await;
    sqlx::raw_sql("CREATE SCHEMA shop")
        .execute(&admin)
        .await
        .unwrap();
    let out = pg_mcp_on(name, &["migrate"], &[("PG_MCP_SCHEMAS", "shop")]).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    // The policy names pgmcp.tenant_id(), which migrate created.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE shop.notes (tenant text NOT NULL, note text);
         INSERT INTO shop.notes VALUES ('{}', 'seattle''s'), ('someone-else', 'not yours');
         ALTER TABLE shop.notes ENABLE ROW LEVEL SECURITY;
         CREATE POLICY own_notes ON shop.notes USING (tenant = pgmcp.tenant_id());
         GRANT SELECT ON shop.notes TO pgmcp_app;",
        super::SEATTLE
    )))
    .execute(&admin)
    .await
    .expect("planting the tenant table");
    admin.close().await;
}
