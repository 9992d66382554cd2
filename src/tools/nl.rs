//! `query`: a natural-language question answered with SQL the caller's tenant runs.
//!
//! The model sees the relevant part of the cached schema (`nl::context`). Each SQL it writes
//! must pass the SQL guard and an `EXPLAIN` in the caller's read-only tenant transaction,
//! then runs like `execute_query`. A refusal or a PostgreSQL error goes back to the model,
//! up to `PG_MCP_LLM_MAX_RETRIES` times; the answer lists every attempt. Nothing the model
//! writes gets more than `execute_query` would: the same guard, role, policies and limits.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::rows::ColumnInfo;
use crate::error::{AppError, ErrorCode, Result};
use crate::nl::{self, ChatModel, Message, Usage, context};
use crate::tools::explain::{ExplainArgs, PlanFormat, explain_query};
use crate::tools::query::{ExecuteQueryArgs, QueryOutput, execute_query};
use crate::tools::{Call, to_json};

/// Longest question accepted (seed 002: 2,000 characters).
const MAX_QUESTION_CHARS: usize = 2000;
/// Rows shown to the model by the result check.
const VALIDATION_SAMPLE_ROWS: usize = 5;

/// What `query` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReturnType {
    /// The SQL only (checked by the guard and EXPLAIN, not run).
    Sql,
    /// The rows (and the SQL that produced them).
    #[default]
    Result,
    /// Both.
    Both,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueryArgs {
    /// The question, e.g. "top 5 products by revenue this year" (at most 2,000 characters).
    pub question: String,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
    /// `sql`, `result` (default) or `both`.
    #[serde(default)]
    pub return_type: ReturnType,
    /// Most rows to return, 1-10000 (default and cap: the server's row cap).
    pub limit: Option<usize>,
}

/// One SQL the model wrote and what became of it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Attempt {
    pub sql: Option<String>,
    /// `OK`, or the error code that sent it back (UNSAFE_SQL, QUERY_FAILED, ...).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer of `query`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueryAnswer {
    pub question: String,
    /// The statement that was accepted (and, unless return_type is sql, run).
    pub sql: String,
    /// The model's one-sentence account of the SQL.
    pub explanation: Option<String>,
    /// Result columns (return_type result or both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnInfo>>,
    /// Rows as arrays in column order (return_type result or both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Value>>,
    pub row_count: usize,
    pub truncated: bool,
    /// Every SQL the model wrote, in order; the last one is `sql`.
    pub attempts: Vec<Attempt>,
    pub tokens: Usage,
    pub model: String,
    /// The tables described to the model, and how they were chosen (all, lexical, embedding).
    pub context_tables: Vec<String>,
    pub context_ranking: String,
    /// Time spent waiting for the model.
    pub model_ms: f64,
    /// Everything else: schema context, guard, EXPLAIN, the query itself.
    pub overhead_ms: f64,
    pub duration_ms: f64,
}

/// Whether an attempt's failure is the SQL's fault, so the model may correct it. Others
/// (busy, rate limited, connection lost) end the call as they are.
fn correctable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UnsafeSql
            | ErrorCode::SyntaxError
            | ErrorCode::QueryFailed
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
            | ErrorCode::ValidationError
            | ErrorCode::ResultTooLarge
            | ErrorCode::QueryTooExpensive
            | ErrorCode::ExecutionTimeout
    )
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A failed attempt, remembered for the answer and sent back to the model.
struct Failure {
    code: ErrorCode,
    error: AppError,
}

pub async fn query(call: &Call<'_>, args: QueryArgs) -> Result<Value> {
    let started = Instant::now();
    let state = call.state;
    let model: &ChatModel = state.llm.as_deref().ok_or_else(|| {
        AppError::new(
            ErrorCode::LlmNotConfigured,
            "no chat model is configured: set PG_MCP_LLM_PROVIDER (openai, compatible, azure) and its PG_MCP_LLM_* settings",
        )
    })?;
    let question = args.question.trim();
    if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
        return Err(AppError::validation(format!(
            "question must have between 1 and {MAX_QUESTION_CHARS} characters"
        )));
    }
    if args.limit.is_some_and(|n| n == 0 || n > 10_000) {
        return Err(AppError::validation("limit must be between 1 and 10000"));
    }
    let settings = &call.config.llm;
    let snapshot = call.schema(args.database.as_deref()).await?;
    // Embeddings re-rank large schemas when an embedder is configured; without one (or when
    // it fails to load) the words alone rank them.
    let embedder = match snapshot.listed().count() > settings.llm_context_tables {
        true => state.embedder().await.ok(),
        false => None,
    };
    let schema = context::build(
        &snapshot,
        question,
        settings.llm_context_tables,
        call.config.schema_output_budget_bytes,
        embedder.as_deref(),
    )
    .await;

    let mut messages = vec![
        Message::system(nl::SYSTEM_PROMPT),
        Message::user(nl::question_prompt(&schema.text, question)),
    ];
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut tokens = Usage::default();
    let mut model_ms = 0.0;
    let mut last: Option<Failure> = None;
    let tries = 1 + settings.llm_max_retries as usize;
    for _ in 0..tries {
        let completion = model.complete(&messages).await?;
        model_ms += completion.elapsed_ms;
        tokens.add(completion.usage);
        messages.push(Message::assistant(completion.content.clone()));
        let Some((sql, explanation)) = nl::extract_sql(&completion.content) else {
            let error = AppError::new(ErrorCode::LlmError, "the model's answer held no SQL");
            attempts.push(Attempt {
                sql: None,
                outcome: error.code.as_str().into(),
                message: Some(error.message.clone()),
            });
            messages.push(Message::user(nl::retry_prompt(
                error.code.as_str(),
                &error.message,
            )));
            last = Some(Failure {
                code: ErrorCode::LlmError,
                error,
            });
            continue;
        };
        let outcome = try_sql(
            call,
            &args,
            &sql,
            question,
            model,
            &mut tokens,
            &mut model_ms,
        )
        .await;
        match outcome {
            Ok(result) => {
                attempts.push(Attempt {
                    sql: Some(sql.clone()),
                    outcome: "OK".into(),
                    message: None,
                });
                let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                let (columns, rows, row_count, truncated) = match result {
                    Some(r) => (Some(r.columns), Some(r.rows), r.row_count, r.truncated),
                    None => (None, None, 0, false),
                };
                return to_json(QueryAnswer {
                    question: question.to_string(),
                    sql,
                    explanation,
                    columns,
                    rows,
                    row_count,
                    truncated,
                    attempts,
                    tokens,
                    model: model.model.clone(),
                    context_tables: schema.tables,
                    context_ranking: schema.ranking.to_string(),
                    model_ms: round(model_ms),
                    overhead_ms: round(duration_ms - model_ms),
                    duration_ms: round(duration_ms),
                });
            }
            Err(error) if correctable(error.code) => {
                attempts.push(Attempt {
                    sql: Some(sql),
                    outcome: error.code.as_str().into(),
                    message: Some(error.message.clone()),
                });
                messages.push(Message::user(nl::retry_prompt(
                    error.code.as_str(),
                    &error.message,
                )));
                last = Some(Failure {
                    code: error.code,
                    error,
                });
            }
            Err(error) => return Err(error),
        }
    }
    // Every attempt failed: the last reason, with all attempts for the caller to see.
    let failure = last.expect("at least one attempt ran");
    let details = serde_json::json!({ "attempts": attempts, "tokens": tokens });
    Err(AppError::new(
        failure.code,
        format!(
            "no acceptable SQL after {} attempts; the last was refused: {}",
            attempts.len(),
            failure.error.message
        ),
    )
    .with_details(details))
}

/// One SQL: the guard and EXPLAIN (in the tenant's transaction), then the query unless only
/// the SQL was asked for, then the optional result check. `Ok(None)`: accepted, not run.
async fn try_sql(
    call: &Call<'_>,
    args: &QueryArgs,
    sql: &str,
    question: &str,
    model: &ChatModel,
    tokens: &mut Usage,
    model_ms: &mut f64,
) -> Result<Option<QueryOutput>> {
    // The model only ever reads: on a database in write mode its SQL must still pass the
    // read-only guard (a refusal goes back to the model like any other).
    if call.database(args.database.as_deref())?.writable {
        crate::sql::guard::check(sql, &call.state.guard()).map_err(AppError::from)?;
    }
    explain_query(
        call,
        ExplainArgs {
            sql: sql.to_string(),
            analyze: false,
            format: PlanFormat::Json,
            params: Vec::new(),
            database: args.database.clone(),
        },
    )
    .await?;
    if args.return_type == ReturnType::Sql {
        return Ok(None);
    }
    let value = execute_query(
        call,
        ExecuteQueryArgs {
            sql: sql.to_string(),
            params: Vec::new(),
            max_rows: args.limit,
            allow_full_table: false,
            database: args.database.clone(),
        },
    )
    .await?;
    let output: QueryOutput = serde_json::from_value(value)
        .map_err(|e| AppError::internal(format!("query output: {e}")))?;
    if call.config.llm.llm_validate_result {
        let sample: Vec<&Value> = output.rows.iter().take(VALIDATION_SAMPLE_ROWS).collect();
        let sample = serde_json::json!({ "columns": output.columns, "rows": sample }).to_string();
        let check = model
            .complete(&[Message::user(nl::validation_prompt(question, sql, &sample))])
            .await?;
        *model_ms += check.elapsed_ms;
        tokens.add(check.usage);
        let (valid, reason) = nl::parse_verdict(&check.content);
        if !valid {
            return Err(AppError::new(
                ErrorCode::ValidationError,
                format!("the result check found the result does not answer the question: {reason}"),
            ));
        }
    }
    Ok(Some(output))
}
