//! pg-mcp's own objects in a database (`migrations/`): its roles, its two schemas, the key
//! store and the verified-context functions. Nothing else: `pg-mcp migrate` never creates,
//! alters or drops an application object (the retail demo installs itself, with `pg-mcp seed`).

use sqlx::PgPool;

/// Where pg-mcp's migration history lives: its private schema, not the database's `public`.
pub const MIGRATIONS_TABLE: &str = "pgmcp_private._migrations";

/// Applies pg-mcp's migrations, creating `pgmcp_private` for the history table first.
pub async fn apply(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.create_schema("pgmcp_private");
    migrator.run(pool).await
}

/// What an older pg-mcp recorded in `public._sqlx_migrations`, when `migrate` still created
/// the retail demo. Those objects are now pg-mcp's core (migrated in place, idempotently) and
/// the demo (`pg-mcp seed`).
const OLD_HISTORY: &[&str] = &[
    "roles and extensions",
    "retail schema",
    "tenant context",
    "app grants",
    "transaction bound context",
];

/// Drops `public._sqlx_migrations` when it holds only an older pg-mcp's history, so pg-mcp
/// leaves nothing of its own in the database's `public` schema. A table holding anything
/// else belongs to another application and is left alone. Returns whether it was dropped.
pub async fn retire_old_history(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(false);
    }
    let foreign: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public._sqlx_migrations WHERE NOT (description = ANY($1))",
    )
    .bind(OLD_HISTORY)
    .fetch_one(pool)
    .await?;
    if foreign > 0 {
        return Ok(false);
    }
    sqlx::raw_sql("DROP TABLE public._sqlx_migrations")
        .execute(pool)
        .await?;
    Ok(true)
}

/// Grants the application role read access to the operator's schemas (`PG_MCP_SCHEMAS`):
/// USAGE on each, SELECT on its tables and views, and SELECT on the tables its owner creates
/// later. Nothing else in the schema changes. Names are quoted by PostgreSQL (`format('%I')`).
/// Returns the schemas that do not exist (not an error: they may come later).
pub async fn grant_schemas(pool: &PgPool, schemas: &[String]) -> Result<Vec<String>, sqlx::Error> {
    per_schema(
        pool,
        schemas,
        "GRANT USAGE ON SCHEMA %1$I TO pgmcp_app; \
         GRANT SELECT ON ALL TABLES IN SCHEMA %1$I TO pgmcp_app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE %2$I IN SCHEMA %1$I GRANT SELECT ON TABLES TO pgmcp_app",
    )
    .await
}

/// Runs `template` for each existing schema of `schemas`, formatted by PostgreSQL (`%1$I` the
/// schema, `%2$I` its owner, both quoted as identifiers). Returns the schemas that do not exist.
async fn per_schema(
    pool: &PgPool,
    schemas: &[String],
    template: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut missing = Vec::new();
    for schema in schemas {
        let statements: Option<String> = sqlx::query_scalar(
            "SELECT format($2, n.nspname, pg_get_userbyid(n.nspowner)) FROM pg_namespace n WHERE n.nspname = $1",
        )
        .bind(schema)
        .bind(template)
        .fetch_optional(pool)
        .await?;
        match statements {
            Some(sql) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
            None => missing.push(schema.clone()),
        }
    }
    Ok(missing)
}

/// The table privileges write mode needs for `operations` (PG_MCP_ALLOWED_OPERATIONS; empty:
/// INSERT, UPDATE, DELETE). MERGE needs all three; DDL is never granted.
pub fn write_privileges(operations: &[String]) -> Vec<&'static str> {
    let wanted = |op: &str| {
        operations.is_empty()
            || operations.iter().any(|o| {
                o.trim().eq_ignore_ascii_case(op) || o.trim().eq_ignore_ascii_case("MERGE")
            })
    };
    ["INSERT", "UPDATE", "DELETE"]
        .into_iter()
        .filter(|p| wanted(p))
        .collect()
}

/// Write mode: `privileges` on every table of each schema (and on the tables their owners
/// create later), USAGE on their sequences (serial defaults). Row-level security still
/// decides which rows. Returns the schemas that do not exist.
pub async fn grant_writes(
    pool: &PgPool,
    schemas: &[String],
    privileges: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    change_writes(pool, schemas, &privileges.join(", "), true).await
}

/// Read-only: takes back every write privilege `grant_writes` gives. Returns the schemas
/// that do not exist.
pub async fn revoke_writes(pool: &PgPool, schemas: &[String]) -> Result<Vec<String>, sqlx::Error> {
    change_writes(pool, schemas, "INSERT, UPDATE, DELETE, TRUNCATE", false).await
}

async fn change_writes(
    pool: &PgPool,
    schemas: &[String],
    privileges: &str,
    grant: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let template = if grant {
        "GRANT {p} ON ALL TABLES IN SCHEMA %1$I TO pgmcp_app; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA %1$I TO pgmcp_app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE %2$I IN SCHEMA %1$I GRANT {p} ON TABLES TO pgmcp_app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE %2$I IN SCHEMA %1$I GRANT USAGE ON SEQUENCES TO pgmcp_app"
    } else {
        "REVOKE {p} ON ALL TABLES IN SCHEMA %1$I FROM pgmcp_app; \
         REVOKE USAGE ON ALL SEQUENCES IN SCHEMA %1$I FROM pgmcp_app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE %2$I IN SCHEMA %1$I REVOKE {p} ON TABLES FROM pgmcp_app; \
         ALTER DEFAULT PRIVILEGES FOR ROLE %2$I IN SCHEMA %1$I REVOKE USAGE ON SEQUENCES FROM pgmcp_app"
    };
    per_schema(pool, schemas, &template.replace("{p}", privileges)).await
}

/// The DBA tools' monitoring role `user`: LOGIN with `password`, a member of `pg_monitor` and
/// nothing else (no superuser, no BYPASSRLS), CONNECT on this database.
pub async fn ensure_monitor_role(
    pool: &PgPool,
    user: &str,
    password: &str,
) -> Result<(), sqlx::Error> {
    // Role statements take no bind parameters: quote with format() server-side. A
    // concurrent migrate may create the role first (duplicate_object).
    let stmt: String = sqlx::query_scalar(
        "SELECT format($f$DO $do$ BEGIN CREATE ROLE %1$I; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $do$; \
         ALTER ROLE %1$I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT PASSWORD %2$L; \
         GRANT pg_monitor TO %1$I; GRANT CONNECT ON DATABASE %3$I TO %1$I$f$, $1::text, $2::text, current_database())",
    )
    .bind(user)
    .bind(password)
    .fetch_one(pool)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
        .execute(pool)
        .await?;
    Ok(())
}

/// Takes back from the monitoring role any access to the tables of `schemas` (an earlier
/// release granted SELECT for index_advice, which now plans as the operator's tenant): it
/// reads the statistics views only. Returns the schemas that do not exist.
pub async fn revoke_monitor_reads(
    pool: &PgPool,
    user: &str,
    schemas: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut missing = Vec::new();
    for schema in schemas {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(pool)
                .await?;
        if !exists {
            missing.push(schema.clone());
            continue;
        }
        let stmt: String = sqlx::query_scalar(
            "SELECT format('REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM %2$I; REVOKE ALL ON SCHEMA %1$I FROM %2$I', $1::text, $2::text)",
        )
        .bind(schema)
        .bind(user)
        .fetch_one(pool)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
            .execute(pool)
            .await?;
    }
    Ok(missing)
}
