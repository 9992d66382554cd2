//! Write mode (seed 000): the write side of `execute_query`, `execute_transaction` (a list
//! of statements, all or nothing) and `batch_execute` (one statement, many parameter sets, in
//! batches). Every statement passes the guard of its database's mode; writes need a database
//! in write mode (`PG_MCP_WRITE_DATABASES`) and a caller allowed to write; they run in a
//! read-write tenant transaction, so row-level security (`WITH CHECK` included) decides which
//! rows a tenant may insert, change or delete.

use std::time::Instant;

use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Either, Executor, PgConnection, SqlSafeStr, Statement};

use crate::db::Database;
use crate::db::params::bind_params;
use crate::db::rows::ColumnInfo;
use crate::error::{AppError, ErrorCode, Result};
use crate::sql::batch::MultiRowInsert;
use crate::sql::cache::AcceptedSql;
use crate::sql::guard::StatementKind;
use crate::tools::Call;
use crate::tools::query::{check_sql, row_to_json, statement_params};

/// What one statement did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatementOutcome {
    /// Position in the request (0-based).
    pub index: usize,
    /// INSERT, UPDATE, DELETE, MERGE, SELECT, ...
    pub statement: String,
    /// Rows inserted, updated or deleted (rows returned, for a query).
    pub affected_rows: u64,
    /// Result columns (a query, or `RETURNING`); empty otherwise.
    pub columns: Vec<ColumnInfo>,
    /// Returned rows as arrays in column order, at most the row cap.
    pub rows: Vec<Value>,
    pub row_count: usize,
    /// More rows were returned than the row cap keeps.
    pub truncated: bool,
}

/// Runs one accepted statement with `params` on `tx` (a tenant transaction) and reads all
/// its rows, keeping at most `max_rows`; `affected_rows` is PostgreSQL's own count.
pub async fn run_statement(
    tx: &mut PgConnection,
    index: usize,
    accepted: &AcceptedSql,
    params: &[Value],
    max_rows: usize,
    timeout_ms: u64,
) -> Result<StatementOutcome> {
    let db_err = |e| AppError::from_sqlx(e, timeout_ms);
    let stmt = (&mut *tx)
        .prepare(AssertSqlSafe(accepted.body.to_string()).into_sql_str())
        .await
        .map_err(db_err)?;
    let columns: Vec<ColumnInfo> = stmt.columns().iter().map(ColumnInfo::from_pg).collect();
    let arguments = bind_params(&statement_params(&stmt), params)?;
    let mut rows = Vec::new();
    let mut returned = 0u64;
    let mut affected = 0u64;
    let mut stream = (&mut *tx).fetch_many(stmt.query_with(arguments));
    while let Some(item) = stream.try_next().await.map_err(db_err)? {
        match item {
            Either::Left(done) => affected += done.rows_affected(),
            Either::Right(row) => {
                returned += 1;
                if rows.len() < max_rows {
                    rows.push(row_to_json(&row).0);
                }
            }
        }
    }
    drop(stream);
    let kind = accepted.kind;
    Ok(StatementOutcome {
        index,
        statement: kind.operation().to_string(),
        affected_rows: if kind.is_read_only() {
            returned
        } else {
            affected
        },
        columns,
        row_count: rows.len(),
        truncated: returned > rows.len() as u64,
        rows,
    })
}

/// Checks that `accepted` may run for this caller on `db`: a write needs write permission;
/// an `UPDATE` or `DELETE` of a whole table needs `allow_full_table`.
pub fn permit(
    call: &Call<'_>,
    db: &Database,
    accepted: &AcceptedSql,
    allow_full_table: bool,
) -> Result<()> {
    if accepted.kind.is_read_only() {
        return Ok(());
    }
    if !db.writable {
        return Err(AppError::new(
            ErrorCode::UnsafeSql,
            format!(
                "{} is not allowed: database {:?} is read-only (PG_MCP_WRITE_DATABASES)",
                accepted.kind, db.name
            ),
        ));
    }
    if !call.tenant.may_write {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            format!(
                "{} needs write permission, which this caller lacks ({})",
                accepted.kind,
                call.state.auth.write_hint()
            ),
        ));
    }
    if accepted.whole_table && !allow_full_table {
        return Err(AppError::new(
            ErrorCode::UnsafeSql,
            format!(
                "{} without a WHERE clause changes every row the tenant may see; add a WHERE clause, or set allow_full_table: true if that is intended",
                accepted.kind
            ),
        )
        .with_details(json!({ "construct": format!("{} without WHERE", accepted.kind) })));
    }
    Ok(())
}

/// One statement of `execute_transaction`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TransactionStatement {
    /// One SQL statement (INSERT, UPDATE, DELETE, MERGE or a query), with $1, $2 ... placeholders.
    pub sql: String,
    /// Values for its placeholders, in order.
    #[serde(default)]
    #[schemars(schema_with = "crate::db::params::params_schema")]
    pub params: Vec<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExecuteTransactionArgs {
    /// The statements, run in order in one transaction: all commit, or none.
    pub statements: Vec<TransactionStatement>,
    /// Run every statement, report what it did, then roll everything back.
    #[serde(default)]
    pub dry_run: bool,
    /// Allow UPDATE or DELETE without a WHERE clause.
    #[serde(default)]
    pub allow_full_table: bool,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// The answer of `execute_transaction`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TransactionOutput {
    /// True when the changes were committed (false for a dry run).
    pub committed: bool,
    pub dry_run: bool,
    /// Sum of the statements' affected rows.
    pub affected_rows: u64,
    pub statements: Vec<StatementOutcome>,
    pub duration_ms: f64,
}

/// Names the failing statement in an error and says that nothing was kept.
fn at_statement(index: usize, err: AppError) -> AppError {
    let message = format!(
        "statement {index} failed, nothing was committed: {}",
        err.message
    );
    AppError { message, ..err }
        .with_detail("statement_index", json!(index))
        .with_detail("rolled_back", json!(true))
}

pub async fn execute_transaction(call: &Call<'_>, args: ExecuteTransactionArgs) -> Result<Value> {
    let limit = call.config.max_transaction_statements;
    if args.statements.is_empty() || args.statements.len() > limit {
        return Err(AppError::validation(format!(
            "statements must hold 1 to {limit} statements (PG_MCP_MAX_TRANSACTION_STATEMENTS); got {}",
            args.statements.len()
        )));
    }
    let db = call.database(args.database.as_deref())?;
    // Every statement is checked before any runs: a refusal leaves the database untouched.
    let mut accepted = Vec::with_capacity(args.statements.len());
    for (i, s) in args.statements.iter().enumerate() {
        let checked = check_sql(call, &db, &s.sql)
            .await
            .map_err(|e| at_statement(i, e))?;
        permit(call, &db, &checked, args.allow_full_table).map_err(|e| at_statement(i, e))?;
        accepted.push(checked);
    }
    let writes = accepted.iter().any(|a| !a.kind.is_read_only());
    let timeout_ms = call.tx_options().statement_timeout_ms();
    let max_rows = call.config.max_rows;
    let started = Instant::now();
    let commit = writes && !args.dry_run;
    let outcomes = call
        .tx_mode(&db, writes, commit, async |tx| {
            let mut outcomes = Vec::with_capacity(accepted.len());
            for (i, (checked, s)) in accepted.iter().zip(&args.statements).enumerate() {
                let outcome = run_statement(tx, i, checked, &s.params, max_rows, timeout_ms)
                    .await
                    .map_err(|e| at_statement(i, e))?;
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await?;
    crate::tools::to_json(TransactionOutput {
        committed: commit,
        dry_run: args.dry_run,
        affected_rows: outcomes
            .iter()
            .filter(|o| o.statement != "SELECT")
            .map(|o| o.affected_rows)
            .sum(),
        statements: outcomes,
        duration_ms: crate::tools::millis(started),
    })
}

fn default_batch_size() -> usize {
    500
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BatchExecuteArgs {
    /// One INSERT, UPDATE, DELETE or MERGE statement with $1, $2 ... placeholders.
    pub sql: String,
    /// One array of placeholder values per execution, e.g. [[1, "a"], [2, "b"]].
    pub param_sets: Vec<Vec<Value>>,
    /// Parameter sets per transaction, 1-10000 (default 500).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Everything in one transaction: all or nothing (batches still bound progress logs).
    #[serde(default)]
    pub atomic: bool,
    /// Allow UPDATE or DELETE without a WHERE clause.
    #[serde(default)]
    pub allow_full_table: bool,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// The answer of `batch_execute`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BatchOutput {
    pub statement: String,
    pub param_sets: usize,
    pub batch_size: usize,
    pub batches: usize,
    pub atomic: bool,
    /// Rows inserted, updated or deleted, all committed.
    pub affected_rows: u64,
    pub duration_ms: f64,
    pub rows_per_second: f64,
}

const MAX_BATCH_SIZE: usize = 10_000;

pub async fn batch_execute(call: &Call<'_>, args: BatchExecuteArgs) -> Result<Value> {
    let limit = call.config.max_batch_param_sets;
    if args.param_sets.is_empty() || args.param_sets.len() > limit {
        return Err(AppError::validation(format!(
            "param_sets must hold 1 to {limit} parameter sets (PG_MCP_MAX_BATCH_PARAM_SETS); got {}: split the work into several calls",
            args.param_sets.len()
        )));
    }
    if args.batch_size == 0 || args.batch_size > MAX_BATCH_SIZE {
        return Err(AppError::validation(format!(
            "batch_size must be between 1 and {MAX_BATCH_SIZE}"
        )));
    }
    let db = call.database(args.database.as_deref())?;
    let accepted = check_sql(call, &db, &args.sql).await?;
    if accepted.kind.is_read_only() {
        return Err(AppError::validation(
            "batch_execute runs INSERT, UPDATE, DELETE or MERGE; use execute_query for queries",
        ));
    }
    permit(call, &db, &accepted, args.allow_full_table)?;
    let timeout_ms = call.tx_options().statement_timeout_ms();
    let started = Instant::now();
    let batches: Vec<&[Vec<Value>]> = args.param_sets.chunks(args.batch_size).collect();
    let total = batches.len();

    // A plain INSERT ... VALUES runs as one statement per chunk of rows; anything else, and a
    // batch whose multi-row run failed (to name the failing parameter set), row by row.
    let multi = (accepted.kind == StatementKind::Insert)
        .then(|| MultiRowInsert::new(&accepted.body))
        .flatten()
        .filter(|m| args.param_sets.iter().all(|p| p.len() == m.params_per_row));
    let run_batches =
        async |tx: &mut PgConnection, range: std::ops::Range<usize>, rows_at_once: bool| {
            let mut affected = 0u64;
            if let (true, Some(multi)) = (rows_at_once, &multi) {
                for b in range {
                    for chunk in batches[b].chunks(multi.max_rows()) {
                        let sql = multi.sql(chunk.len());
                        let stmt = (&mut *tx)
                            .prepare(AssertSqlSafe(sql).into_sql_str())
                            .await
                            .map_err(|e| AppError::from_sqlx(e, timeout_ms))?;
                        let flat: Vec<Value> = chunk.iter().flatten().cloned().collect();
                        let arguments = bind_params(&statement_params(&stmt), &flat)
                            .map_err(|e| at_param_set(b, b * args.batch_size, e))?;
                        let done = stmt
                            .query_with(arguments)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| AppError::from_sqlx(e, timeout_ms))?;
                        affected += done.rows_affected();
                    }
                }
                return Ok(affected);
            }
            let stmt = (&mut *tx)
                .prepare(AssertSqlSafe(accepted.body.to_string()).into_sql_str())
                .await
                .map_err(|e| AppError::from_sqlx(e, timeout_ms))?;
            let types = statement_params(&stmt);
            for b in range {
                for (j, params) in batches[b].iter().enumerate() {
                    let index = b * args.batch_size + j;
                    let arguments =
                        bind_params(&types, params).map_err(|e| at_param_set(b, index, e))?;
                    let done = stmt
                        .query_with(arguments)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| at_param_set(b, index, AppError::from_sqlx(e, timeout_ms)))?;
                    affected += done.rows_affected();
                }
            }
            Ok(affected)
        };
    // Runs `range` in one transaction; a multi-row run that the data made fail is run again
    // row by row, which names the parameter set (and is the reference semantics).
    let run = async |range: std::ops::Range<usize>| -> Result<u64> {
        let fast = call
            .tx_mode(&db, true, true, async |tx| {
                run_batches(tx, range.clone(), true).await
            })
            .await;
        match fast {
            Err(e) if multi.is_some() && retry_row_by_row(&e) => {
                call.tx_mode(&db, true, true, async |tx| {
                    run_batches(tx, range.clone(), false).await
                })
                .await
            }
            other => other,
        }
    };

    let mut affected = 0u64;
    if args.atomic {
        affected = run(0..total).await.map_err(|e| with_progress(e, 0, 0, 0))?;
    } else {
        for b in 0..total {
            let done = run(b..b + 1)
                .await
                .map_err(|e| with_progress(e, b, b * args.batch_size, affected))?;
            affected += done;
            if total > 1 && ((b + 1) % 20 == 0 || b + 1 == total) {
                tracing::info!(
                    batch = b + 1,
                    batches = total,
                    affected_rows = affected,
                    "batch_execute progress"
                );
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    crate::tools::to_json(BatchOutput {
        statement: accepted.kind.operation().to_string(),
        param_sets: args.param_sets.len(),
        batch_size: args.batch_size,
        batches: total,
        atomic: args.atomic,
        affected_rows: affected,
        duration_ms: crate::tools::millis(started),
        rows_per_second: (args.param_sets.len() as f64 / seconds.max(1e-9)).round(),
    })
}

/// Whether a failed multi-row run is worth repeating row by row: the data's fault (a
/// constraint, row-level security, a value that does not bind), not a lost connection or a
/// timeout.
fn retry_row_by_row(err: &AppError) -> bool {
    (err.sqlstate.is_some() || err.code == ErrorCode::ValidationError)
        && !matches!(
            err.code,
            ErrorCode::ConnectionError | ErrorCode::ExecutionTimeout
        )
}

/// Names the failing parameter set (and its batch) in an error.
fn at_param_set(batch: usize, index: usize, err: AppError) -> AppError {
    let message = format!(
        "parameter set {index} (batch {batch}) failed: {}",
        err.message
    );
    AppError { message, ..err }
        .with_detail("failed_batch", json!(batch))
        .with_detail("failed_param_set", json!(index))
}

/// Adds what was committed before the failing batch (which was rolled back).
fn with_progress(err: AppError, batch: usize, param_sets: usize, affected: u64) -> AppError {
    let named = err
        .details
        .as_ref()
        .is_some_and(|d| d.get("failed_batch").is_some());
    let message = format!(
        "{} ({batch} batches, {param_sets} parameter sets committed before it; the failing batch was rolled back)",
        err.message
    );
    let err = AppError { message, ..err };
    let err = if named {
        err
    } else {
        err.with_detail("failed_batch", json!(batch))
    };
    err.with_detail("committed_batches", json!(batch))
        .with_detail("committed_param_sets", json!(param_sets))
        .with_detail("committed_affected_rows", json!(affected))
}
