//! `execute_query`: one guarded, read-only statement under the caller's tenant.

use std::time::Instant;

use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::{PgRow, PgStatement};
use sqlx::{AssertSqlSafe, Column, Either, Executor, Row, SqlSafeStr, Statement};
use tracing::Instrument;

use crate::db::Database;
use crate::db::params::bind_params;
use crate::db::rows::{ColumnInfo, decode};
use crate::error::{AppError, ErrorCode, Result};
use crate::sql::cache::AcceptedSql;
use crate::sql::guard::{self, StatementKind};
use crate::tools::Call;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecuteQueryArgs {
    /// One read-only PostgreSQL statement, e.g. `SELECT store_name FROM retail.stores WHERE store_id = $1`.
    pub sql: String,
    /// Values for the $1, $2 ... placeholders, in order (JSON strings, numbers, booleans, null, objects for json).
    #[serde(default)]
    #[schemars(schema_with = "crate::db::params::params_schema")]
    pub params: Vec<Value>,
    /// Maximum rows to return (default and upper bound: the server's row cap, 1000 unless configured).
    pub max_rows: Option<usize>,
    /// Write mode only: allow an UPDATE or DELETE without a WHERE clause.
    #[serde(default)]
    pub allow_full_table: bool,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// The answer of `execute_query`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct QueryOutput {
    /// Name and PostgreSQL type of each result column, in order.
    pub columns: Vec<ColumnInfo>,
    /// Each row as an array in column order (JSON numbers, strings, objects for json).
    pub rows: Vec<Value>,
    pub row_count: usize,
    /// More rows exist than max_rows allowed.
    pub truncated: bool,
    /// Write mode: rows inserted, updated or deleted (`rows` holds what RETURNING gave).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_rows: Option<u64>,
    pub duration_ms: f64,
}

/// Runs the SQL guard of `db`'s mode (the write guard for a database in write mode). When
/// sqlparser cannot parse the text, PostgreSQL is asked to parse it (a Parse message only:
/// nothing executes) so the caller gets PostgreSQL's own message, SQLSTATE 42601 and
/// position. The text is refused either way: fail closed.
pub async fn check_sql(call: &Call<'_>, db: &Database, sql: &str) -> Result<AcceptedSql> {
    let state = call.state;
    let (guard_config, cache) = if db.writable {
        (state.write_guard(), &state.write_guard_cache)
    } else {
        (state.guard(), &state.guard_cache)
    };
    if call.config.unsafe_disable_sql_guard {
        // Test-only: let everything through unwrapped, so the database alone must refuse.
        let (kind, whole_table) = match guard::check(sql, &state.write_guard()) {
            Ok(checked) => (checked.kind, checked.whole_table),
            Err(_) => (StatementKind::Insert, false),
        };
        return Ok(AcceptedSql::new(sql, kind, whole_table));
    }
    if let Some(accepted) = cache.get(sql) {
        return Ok(accepted);
    }
    match guard::check(sql, &guard_config) {
        Ok(checked) => {
            let accepted = AcceptedSql::new(sql, checked.kind, checked.whole_table);
            cache.insert(sql, accepted.clone());
            Ok(accepted)
        }
        Err(guard::GuardError::Syntax(parser_message)) => {
            let parsed = call
                .tx(db, async |tx| {
                    Ok(tx
                        .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
                        .await
                        .err())
                })
                .await?;
            let postgres_says = parsed
                .map(|e| AppError::from_sqlx(e, call.tx_options().statement_timeout_ms()))
                .filter(|e| e.code == ErrorCode::SyntaxError);
            Err(postgres_says.unwrap_or_else(|| guard::GuardError::Syntax(parser_message).into()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn statement_params(stmt: &PgStatement) -> Vec<sqlx::postgres::PgTypeInfo> {
    match stmt.parameters() {
        Some(Either::Left(types)) => types.to_vec(),
        _ => Vec::new(),
    }
}

pub async fn execute_query(call: &Call<'_>, args: ExecuteQueryArgs) -> Result<Value> {
    let cap = call.config.max_rows;
    let max_rows = match args.max_rows {
        Some(0) => return Err(AppError::validation("max_rows must be at least 1")),
        Some(n) => n.min(cap),
        None => cap,
    };
    let db = call.database(args.database.as_deref())?;
    let checked = check_sql(call, &db, &args.sql).await?;
    if !checked.kind.is_read_only() {
        if !call.config.unsafe_disable_sql_guard {
            crate::tools::write::permit(call, &db, &checked, args.allow_full_table)?;
        }
        // With the guard off (tests), a write nobody permitted goes on in the read-only
        // transaction below, for the database itself to refuse.
        if db.writable && call.tenant.may_write {
            return execute_write(call, &db, &checked, &args.params, max_rows).await;
        }
    }
    let timeout_ms = call.tx_options().statement_timeout_ms();
    let db_err = |e| AppError::from_sqlx(e, timeout_ms);

    // Queries are wrapped in LIMIT cap+1: PostgreSQL stops producing rows there.
    let sql = if checked.kind == StatementKind::Query {
        checked.limited(max_rows + 1)
    } else {
        args.sql.clone()
    };

    let started = Instant::now();
    let db_span = statement_span(&db, &checked);
    let (columns, rows, truncated) = call
        .tx(&db, async |tx| {
        let stmt = (&mut *tx)
            .prepare(AssertSqlSafe(sql.clone()).into_sql_str())
            .await
            .map_err(db_err)?;
        let columns: Vec<ColumnInfo> = stmt.columns().iter().map(ColumnInfo::from_pg).collect();
        let arguments = bind_params(&statement_params(&stmt), &args.params)?;
        let ceiling = call.config.max_query_cost;
        if ceiling > 0.0 && checked.kind == StatementKind::Query {
            refuse_above_cost(tx, &sql, &args.params, ceiling, timeout_ms)
                .await?;
        }

        let max_bytes = call.config.max_result_bytes;
        let mut rows: Vec<Value> = Vec::with_capacity(max_rows.min(1024));
        let mut truncated = false;
        let mut approx_bytes = 0usize;
        {
            let mut stream = stmt.query_with(arguments).fetch(&mut *tx);
            while let Some(row) = stream.try_next().await.map_err(db_err)? {
                if rows.len() == max_rows {
                    truncated = true;
                    break;
                }
                let (value, size) = row_to_json(&row);
                approx_bytes += size;
                if approx_bytes > max_bytes {
                    return Err(AppError::new(
                        ErrorCode::ResultTooLarge,
                        format!(
                            "the result exceeds the {max_bytes}-byte limit after {} rows; select fewer columns or rows (max_rows, LIMIT)",
                            rows.len()
                        ),
                    )
                    .with_details(json!({ "max_result_bytes": max_bytes, "rows_before_limit": rows.len() })));
                }
                rows.push(value);
            }
        }
        Ok((columns, rows, truncated))
    })
    .instrument(db_span)
    .await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::tools::to_json(QueryOutput {
        columns,
        row_count: rows.len(),
        rows,
        truncated,
        affected_rows: None,
        duration_ms: (duration_ms * 1000.0).round() / 1000.0,
    })
}

/// The span of one statement on `db` (its SQL with literals masked).
fn statement_span(db: &Database, checked: &AcceptedSql) -> tracing::Span {
    tracing::info_span!(
        "db.statement",
        db.system = "postgresql",
        db.name = %db.name,
        db.statement = %checked.shape,
    )
}

/// A permitted write: one statement in a read-write tenant transaction, committed.
async fn execute_write(
    call: &Call<'_>,
    db: &Database,
    checked: &AcceptedSql,
    params: &[Value],
    max_rows: usize,
) -> Result<Value> {
    let timeout_ms = call.tx_options().statement_timeout_ms();
    let started = Instant::now();
    let db_span = statement_span(db, checked);
    let outcome = call
        .tx_mode(db, true, true, async |tx| {
            crate::tools::write::run_statement(tx, 0, checked, params, max_rows, timeout_ms).await
        })
        .instrument(db_span)
        .await?;
    crate::tools::to_json(QueryOutput {
        columns: outcome.columns,
        row_count: outcome.row_count,
        rows: outcome.rows,
        truncated: outcome.truncated,
        affected_rows: Some(outcome.affected_rows),
        duration_ms: crate::tools::millis(started),
    })
}

/// Plans the statement with `EXPLAIN (FORMAT JSON)` in the caller's transaction and refuses it
/// when the planner's total cost estimate is above `ceiling` (seed 002's EXPLAIN pre-check).
async fn refuse_above_cost(
    tx: &mut sqlx::PgConnection,
    sql: &str,
    params: &[Value],
    ceiling: f64,
    timeout_ms: u64,
) -> Result<()> {
    let db_err = |e| AppError::from_sqlx(e, timeout_ms);
    let explain = format!("EXPLAIN (FORMAT JSON)\n{sql}\n");
    let stmt = (&mut *tx)
        .prepare(AssertSqlSafe(explain).into_sql_str())
        .await
        .map_err(db_err)?;
    let arguments = bind_params(&statement_params(&stmt), params)?;
    let row = stmt
        .query_with(arguments)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let plan: sqlx::types::Json<Value> = row.try_get(0).map_err(db_err)?;
    let cost = plan.0[0]["Plan"]["Total Cost"]
        .as_f64()
        .ok_or_else(|| AppError::internal("EXPLAIN gave no total cost"))?;
    if cost > ceiling {
        return Err(AppError::new(
            ErrorCode::QueryTooExpensive,
            format!(
                "the planner estimates this query at cost {cost:.0}, above the {ceiling:.0} ceiling (PG_MCP_MAX_QUERY_COST); narrow it with WHERE, LIMIT or an indexed filter"
            ),
        )
        .with_details(json!({ "estimated_cost": cost, "max_query_cost": ceiling })));
    }
    Ok(())
}

/// One row as a JSON array in column order, and its approximate encoded size.
pub fn row_to_json(row: &PgRow) -> (Value, usize) {
    let mut size = 2;
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let bytes = row
                .try_get_raw(i)
                .ok()
                .filter(|v| !sqlx::ValueRef::is_null(v))
                .and_then(|v| v.as_bytes().ok());
            size += bytes.map_or(4, |b| b.len() * 2 + 2) + 1;
            decode(col.type_info(), bytes)
        })
        .collect();
    (Value::Array(values), size)
}
