//! SQL checks before anything reaches the database: the guard (sqlparser AST) and limits.

pub mod guard;
pub mod limits;
