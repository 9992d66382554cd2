//! The one error type of the server and its stable error codes.
//!
//! Clients match on [`ErrorCode`] strings, so they never change. Tool failures become MCP
//! tool results with `isError: true`; HTTP-layer failures become JSON bodies with a status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// Stable, machine-readable error codes (design §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    TenantRequired,
    InvalidTenant,
    Unauthorized,
    Forbidden,
    /// A bearer token lacks the OAuth scope the request needs (HTTP 403 with an
    /// `insufficient_scope` challenge naming it).
    InsufficientScope,
    UnknownDatabase,
    UnsafeSql,
    SyntaxError,
    ExecutionTimeout,
    QueryFailed,
    ResultTooLarge,
    ConnectionError,
    EmbeddingError,
    RateLimitExceeded,
    TenantBusy,
    QueryTooExpensive,
    ValidationError,
    NotFound,
    /// The `query` tool was called but no chat model is configured (PG_MCP_LLM_PROVIDER).
    LlmNotConfigured,
    /// The chat model failed: HTTP error, timeout, or an answer without SQL.
    LlmError,
    /// What the call needs is not set up here: no monitoring connection, or an extension
    /// (pg_stat_statements) not installed. The message says how to enable it.
    NotAvailable,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantRequired => "TENANT_REQUIRED",
            Self::InvalidTenant => "INVALID_TENANT",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::UnknownDatabase => "UNKNOWN_DATABASE",
            Self::UnsafeSql => "UNSAFE_SQL",
            Self::SyntaxError => "SYNTAX_ERROR",
            Self::ExecutionTimeout => "EXECUTION_TIMEOUT",
            Self::QueryFailed => "QUERY_FAILED",
            Self::ResultTooLarge => "RESULT_TOO_LARGE",
            Self::ConnectionError => "CONNECTION_ERROR",
            Self::EmbeddingError => "EMBEDDING_ERROR",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::TenantBusy => "TENANT_BUSY",
            Self::QueryTooExpensive => "QUERY_TOO_EXPENSIVE",
            Self::ValidationError => "VALIDATION_ERROR",
            Self::NotFound => "NOT_FOUND",
            Self::LlmNotConfigured => "LLM_NOT_CONFIGURED",
            Self::LlmError => "LLM_ERROR",
            Self::NotAvailable => "NOT_AVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status used when this error ends a plain HTTP request.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::TenantRequired | Self::InvalidTenant | Self::ValidationError => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::UnknownDatabase | Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimitExceeded | Self::TenantBusy => StatusCode::TOO_MANY_REQUESTS,
            Self::ConnectionError => StatusCode::SERVICE_UNAVAILABLE,
            Self::ExecutionTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UnsafeSql
            | Self::SyntaxError
            | Self::QueryFailed
            | Self::ResultTooLarge
            | Self::QueryTooExpensive => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EmbeddingError | Self::LlmError => StatusCode::BAD_GATEWAY,
            Self::LlmNotConfigured | Self::NotAvailable => StatusCode::NOT_IMPLEMENTED,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code, a human message and, for database errors, the SQLSTATE.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub sqlstate: Option<String>,
    /// Extra structured facts (position in the SQL, offending construct, limits).
    pub details: Option<Value>,
}

/// An error as clients see it: in a tool result (`isError: true`), an entry of a multi-table
/// answer, or an HTTP body.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. NOT_FOUND, UNSAFE_SQL, QUERY_FAILED.
    pub error_code: String,
    pub message: String,
    /// PostgreSQL's SQLSTATE for database errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// Extra facts: position in the SQL, the offending construct, close names, limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            sqlstate: None,
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds one fact to `details`, keeping the facts already there.
    pub fn with_detail(mut self, key: &str, value: Value) -> Self {
        let mut details = match self.details.take() {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        details.insert(key.to_string(), value);
        self.details = Some(Value::Object(details));
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }

    /// The JSON body shared by tool errors and HTTP errors.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body())
            .unwrap_or_else(|_| json!({"error_code": self.code.as_str()}))
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error_code: self.code.as_str().to_string(),
            message: self.message.clone(),
            sqlstate: self.sqlstate.clone(),
            details: self.details.clone(),
        }
    }

    /// A database error from a statement that ran under `statement_timeout_ms`: a timeout
    /// names that limit, so the caller knows it.
    pub fn from_sqlx(err: sqlx::Error, statement_timeout_ms: u64) -> Self {
        Self::from(err).with_statement_limit(statement_timeout_ms)
    }

    /// Names the statement timeout in a cancelled statement's message (SQLSTATE 57014).
    pub fn with_statement_limit(mut self, statement_timeout_ms: u64) -> Self {
        if self.sqlstate.as_deref() == Some("57014") {
            self.message = format!(
                "the statement ran longer than the {statement_timeout_ms} ms limit and was cancelled"
            );
        }
        self
    }
}

/// Maps a database error, keeping the SQLSTATE and PostgreSQL's own message.
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => {
                let sqlstate = db.code().map(|c| c.into_owned());
                let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
                let (code, message) = match sqlstate.as_deref() {
                    // query_canceled: statement_timeout (or a cancel request)
                    Some("57014") => (
                        ErrorCode::ExecutionTimeout,
                        "the statement was cancelled: it ran past the statement timeout, or was cancelled".to_string(),
                    ),
                    Some("55P03") => (
                        ErrorCode::ExecutionTimeout,
                        format!("lock not available: {}", db.message()),
                    ),
                    Some("42601") => (ErrorCode::SyntaxError, db.message().to_string()),
                    // A row that row-level security's WITH CHECK refuses (another tenant's
                    // row): the statement is wrong, not the caller's rights.
                    Some("42501") if db.message().starts_with("new row violates row-level security") => (
                        ErrorCode::QueryFailed,
                        format!(
                            "{} (the row belongs to a tenant this caller may not write)",
                            db.message()
                        ),
                    ),
                    Some("42501") => (ErrorCode::Forbidden, db.message().to_string()),
                    // The server closed the connection (shutdown, restart, admin command) or
                    // could not keep it: the database is unavailable, not the query wrong.
                    Some(c) if c.starts_with("08") || c.starts_with("57P") => (
                        ErrorCode::ConnectionError,
                        format!("the database connection was lost: {}", db.message()),
                    ),
                    _ => (ErrorCode::QueryFailed, db.message().to_string()),
                };
                let mut error = Self::new(code, message);
                error.sqlstate = sqlstate;
                if let Some(pg) = pg {
                    let mut details = serde_json::Map::new();
                    if let Some(detail) = pg.detail() {
                        details.insert("detail".into(), json!(detail));
                    }
                    if let Some(hint) = pg.hint() {
                        details.insert("hint".into(), json!(hint));
                    }
                    if let Some(sqlx::postgres::PgErrorPosition::Original(pos)) = pg.position() {
                        details.insert("position".into(), json!(pos));
                    }
                    if !details.is_empty() {
                        error.details = Some(Value::Object(details));
                    }
                }
                error
            }
            sqlx::Error::PoolTimedOut => Self::new(
                ErrorCode::ConnectionError,
                "no database connection became free within the pool acquire timeout",
            ),
            sqlx::Error::PoolClosed => Self::new(ErrorCode::ConnectionError, "the pool is closed"),
            sqlx::Error::Io(e) => Self::new(
                ErrorCode::ConnectionError,
                format!("database connection failed: {e}"),
            ),
            sqlx::Error::Tls(_) => Self::new(ErrorCode::ConnectionError, "database TLS failed"),
            sqlx::Error::ColumnDecode { index, source } => Self::new(
                ErrorCode::QueryFailed,
                format!("could not decode column {index}: {source}"),
            ),
            other => Self::new(ErrorCode::InternalError, format!("database error: {other}")),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.code.http_status(), axum::Json(self.to_json())).into_response()
    }
}
