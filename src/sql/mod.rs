//! SQL checks before anything reaches the database: the guard (sqlparser AST) and limits.

pub mod batch;
pub mod cache;
pub mod cross_session;
pub mod guard;
pub mod limits;

pub use guard::{CheckedSql, DENIED_FUNCTIONS, GuardConfig, GuardError, StatementKind, check};
