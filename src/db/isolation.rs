//! What the application role may see of other backends, and the role's resource caps.
//!
//! Every object of `sql::cross_session` is closed to `PUBLIC` (the application role is in it) and granted back
//! to the monitoring roles that need it: `pg_read_all_stats` (and through it `pg_monitor`)
//! and `pg_signal_backend`. `pg-mcp migrate` closes them; the server refuses to start while
//! one is still open to its role (`check_role_is_safe`), so an incomplete migration cannot go
//! unnoticed. The list is also what the isolation tests loop over.

use sqlx::{AssertSqlSafe, PgPool};

use crate::error::{AppError, Result};
pub use crate::sql::cross_session::{CROSS_SESSION_OBJECTS, CrossSessionObject, ObjectKind};

/// Objects of pg_catalog, or of the pg_stat_statements extension wherever it is installed.
const IN_SCOPE: &str = "(n.nspname = 'pg_catalog' OR EXISTS (
      SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
       WHERE d.objid = o.oid AND d.deptype = 'e' AND e.extname = 'pg_stat_statements'))";

/// The existing objects of one entry, as SQL names (`regprocedure` / `regclass` text), and
/// whether the current role may use each.
async fn resolve(pool: &PgPool, object: &CrossSessionObject) -> Result<Vec<(String, bool)>> {
    let sql = match object.kind {
        ObjectKind::Function => format!(
            "SELECT o.oid::regprocedure::text, has_function_privilege(o.oid, 'EXECUTE')
               FROM pg_proc o JOIN pg_namespace n ON n.oid = o.pronamespace
              WHERE o.proname LIKE $1 AND {IN_SCOPE} ORDER BY 1"
        ),
        ObjectKind::View => format!(
            "SELECT o.oid::regclass::text, has_table_privilege(o.oid, 'SELECT')
               FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
              WHERE o.relname LIKE $1 AND o.relkind = 'v' AND {IN_SCOPE} ORDER BY 1"
        ),
    };
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(object.like_pattern())
        .fetch_all(pool)
        .await
        .map_err(AppError::from)
}

/// The objects the current role can still use (empty: nothing of another session shows).
/// One query per kind: this runs at start-up and on every database a reload or
/// `add_connection` brings, under load.
pub async fn exposed(conn: &mut sqlx::PgConnection) -> Result<Vec<String>> {
    let patterns = |kind: ObjectKind| -> Vec<String> {
        CROSS_SESSION_OBJECTS
            .iter()
            .filter(|o| o.kind == kind)
            .map(CrossSessionObject::like_pattern)
            .collect()
    };
    let functions: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT o.oid::regprocedure::text FROM pg_proc o JOIN pg_namespace n ON n.oid = o.pronamespace
          WHERE o.proname LIKE ANY($1) AND {IN_SCOPE} AND has_function_privilege(o.oid, 'EXECUTE') ORDER BY 1"
    )))
    .bind(patterns(ObjectKind::Function))
    .fetch_all(&mut *conn)
    .await
    .map_err(AppError::from)?;
    let views: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT o.oid::regclass::text FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
          WHERE o.relname LIKE ANY($1) AND o.relkind = 'v' AND {IN_SCOPE} AND has_table_privilege(o.oid, 'SELECT') ORDER BY 1"
    )))
    .bind(patterns(ObjectKind::View))
    .fetch_all(&mut *conn)
    .await
    .map_err(AppError::from)?;
    Ok(functions.into_iter().chain(views).collect())
}

/// What closing did: objects closed, and those the admin role could not close (it must own
/// them: only a superuser owns `pg_catalog`).
#[derive(Debug, Default)]
pub struct CloseReport {
    pub closed: usize,
    pub failed: Vec<(String, String)>,
}

/// Closes every cross-session object to `PUBLIC` and grants it back to its monitoring role.
/// Idempotent; run by `pg-mcp migrate` (again after installing pg_stat_statements).
pub async fn close_cross_session_objects(admin: &PgPool) -> Result<CloseReport> {
    let mut report = CloseReport::default();
    for object in CROSS_SESSION_OBJECTS {
        let what = match object.kind {
            ObjectKind::Function => "FUNCTION",
            ObjectKind::View => "TABLE",
        };
        let privilege = match object.kind {
            ObjectKind::Function => "EXECUTE",
            ObjectKind::View => "SELECT",
        };
        for (name, _) in resolve(admin, object).await? {
            // Names come from the catalog's own regprocedure/regclass output, already quoted.
            let sql = format!(
                "REVOKE ALL ON {what} {name} FROM PUBLIC; GRANT {privilege} ON {what} {name} TO {}",
                object.grantee.role()
            );
            match sqlx::raw_sql(AssertSqlSafe(sql)).execute(admin).await {
                Ok(_) => report.closed += 1,
                Err(e) => report.failed.push((name, AppError::from(e).message)),
            }
        }
    }
    Ok(report)
}

/// Database-side caps of the application role, set with `ALTER ROLE` so every session starts
/// with them. `temp_file_limit` is a superuser setting: the role cannot lift it.
/// `work_mem` is a user setting in PostgreSQL; the server resets it to this default at the
/// start of every tenant transaction and the SQL guard refuses changing settings.
pub async fn set_role_caps(admin: &PgPool, temp_file_limit: &str, work_mem: &str) -> Result<()> {
    for (setting, value) in [("temp_file_limit", temp_file_limit), ("work_mem", work_mem)] {
        // ALTER ROLE takes no bind parameters: quote the value with format(%L) server-side;
        // PostgreSQL validates it (units, range) and refuses a bad one.
        let stmt: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT format('ALTER ROLE pgmcp_app SET {setting} = %L', $1::text)"
        )))
        .bind(value)
        .fetch_one(admin)
        .await
        .map_err(AppError::from)?;
        sqlx::raw_sql(AssertSqlSafe(stmt))
            .execute(admin)
            .await
            .map_err(|e| {
                let mut err = AppError::from(e);
                err.message = format!(
                    "setting {setting} = {value:?} for pgmcp_app: {}",
                    err.message
                );
                err
            })?;
    }
    Ok(())
}
