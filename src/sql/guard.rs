//! Placeholder SQL guard (replaced by the full AST guard): one statement, queries only in
//! read-only mode.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

#[derive(Debug, Clone)]
pub struct GuardConfig {
    pub read_only: bool,
    pub max_query_length: usize,
    pub blocked_functions: Vec<String>,
    pub blocked_keywords: Vec<String>,
    pub allowed_operations: Option<Vec<String>>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            read_only: true,
            max_query_length: 100_000,
            blocked_functions: vec![],
            blocked_keywords: vec![],
            allowed_operations: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the SQL text is empty")]
    Empty,
    #[error("the SQL text is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    #[error("{reason}")]
    Unsafe { reason: String, construct: String },
}

impl GuardError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong { .. } => "VALIDATION_ERROR",
            Self::Syntax(_) => "SYNTAX_ERROR",
            Self::Unsafe { .. } => "UNSAFE_SQL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Query,
    Other,
}

#[derive(Debug, Clone)]
pub struct CheckedSql {
    pub kind: StatementKind,
}

pub fn check(sql: &str, cfg: &GuardConfig) -> Result<CheckedSql, GuardError> {
    if sql.chars().count() > cfg.max_query_length {
        return Err(GuardError::TooLong {
            len: sql.chars().count(),
            max: cfg.max_query_length,
        });
    }
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| GuardError::Syntax(e.to_string()))?;
    match statements.as_slice() {
        [] => Err(GuardError::Empty),
        [Statement::Query(_)] => Ok(CheckedSql {
            kind: StatementKind::Query,
        }),
        [_] if !cfg.read_only => Ok(CheckedSql {
            kind: StatementKind::Other,
        }),
        [_] => Err(GuardError::Unsafe {
            reason: "only queries are allowed in read-only mode".into(),
            construct: "statement".into(),
        }),
        _ => Err(GuardError::Unsafe {
            reason: "exactly one statement is allowed".into(),
            construct: "multiple statements".into(),
        }),
    }
}
