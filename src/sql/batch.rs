//! Multi-row execution of a batched `INSERT ... VALUES (...)`: the statement's one row of
//! values repeated once per parameter set, placeholders renumbered, so a batch runs as a few
//! statements instead of one round trip (and one row-level-security set-up) per row.
//!
//! Only the plain form qualifies: one `VALUES` row, no `ON CONFLICT` (rows of one statement
//! could then conflict with each other, which separate statements would not), no
//! placeholders outside the row, and each of `$1..$n` used. Anything else runs row by row.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, SetExpr, Statement, Value, visit_expressions_mut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// PostgreSQL's limit on parameters in one statement.
const MAX_PARAMETERS: usize = 65_535;
/// Longer statements are not rewritten (and their trees never deep).
const MAX_SQL_LENGTH: usize = 10_000;

/// An `INSERT ... VALUES` that can take many rows at once.
#[derive(Debug, Clone)]
pub struct MultiRowInsert {
    statement: Statement,
    /// Placeholders per row (`$1..$n`).
    pub params_per_row: usize,
}

/// The placeholder number of `$n`.
fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Every placeholder number in `statement`, in order of appearance.
fn placeholders(statement: &mut Statement) -> Vec<usize> {
    let mut found = Vec::new();
    let _ = visit_expressions_mut(statement, |e| {
        if let Some(n) = placeholder(e) {
            found.push(n);
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

impl MultiRowInsert {
    /// `Some` when `sql` is a plain one-row `INSERT ... VALUES` with placeholders `$1..$n`.
    pub fn new(sql: &str) -> Option<Self> {
        if sql.len() > MAX_SQL_LENGTH {
            return None;
        }
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
        if statements.len() != 1 {
            return None;
        }
        let mut statement = statements.pop()?;
        let all = placeholders(&mut statement);
        let Statement::Insert(insert) = &mut statement else {
            return None;
        };
        if insert.on.is_some() {
            return None;
        }
        let query = insert.source.as_mut()?;
        if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
            return None;
        }
        let SetExpr::Values(values) = query.body.as_mut() else {
            return None;
        };
        if values.rows.len() != 1 {
            return None;
        }
        let mut in_row = Vec::new();
        for expr in values.rows[0].content.iter_mut() {
            let _ = visit_expressions_mut(expr, |e| {
                if let Some(n) = placeholder(e) {
                    in_row.push(n);
                }
                ControlFlow::<()>::Continue(())
            });
        }
        let n = in_row.iter().copied().max()?;
        let every_one_used = (1..=n).all(|i| in_row.contains(&i));
        if in_row.len() != all.len() || !every_one_used {
            return None;
        }
        Some(Self {
            statement,
            params_per_row: n,
        })
    }

    /// Most rows one statement may take (PostgreSQL's parameter limit).
    pub fn max_rows(&self) -> usize {
        (MAX_PARAMETERS / self.params_per_row.max(1)).max(1)
    }

    /// The statement with `rows` copies of its row; copy `j` uses `$(i + j * n)` for `$i`.
    pub fn sql(&self, rows: usize) -> String {
        let mut statement = self.statement.clone();
        let n = self.params_per_row;
        if let Statement::Insert(insert) = &mut statement
            && let Some(query) = insert.source.as_mut()
            && let SetExpr::Values(values) = query.body.as_mut()
        {
            let row = values.rows[0].clone();
            values.rows = (0..rows)
                .map(|j| {
                    let mut copy = row.clone();
                    for expr in copy.content.iter_mut() {
                        let _ = visit_expressions_mut(expr, |e| {
                            if let Some(i) = placeholder(e)
                                && let Expr::Value(v) = e
                            {
                                v.value = Value::Placeholder(format!("${}", i + j * n));
                            }
                            ControlFlow::<()>::Continue(())
                        });
                    }
                    copy
                })
                .collect();
        }
        statement.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_insert_takes_many_rows_with_renumbered_placeholders() {
        let m = MultiRowInsert::new(
            "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES ($1, $2, $3::date) RETURNING order_id",
        )
        .expect("qualifies");
        assert_eq!(m.params_per_row, 3);
        assert_eq!(m.max_rows(), 21_845);
        assert_eq!(
            m.sql(2),
            "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES ($1, $2, $3::DATE), ($4, $5, $6::DATE) RETURNING order_id"
        );
        let reordered = MultiRowInsert::new("INSERT INTO t (a, b) VALUES (lower($2), $1)").unwrap();
        assert_eq!(
            reordered.sql(2),
            "INSERT INTO t (a, b) VALUES (lower($2), $1), (lower($4), $3)"
        );
    }

    #[test]
    fn other_statements_run_row_by_row() {
        for sql in [
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO NOTHING",
            "INSERT INTO t (a) VALUES ($1), ($2)",
            "INSERT INTO t (a) SELECT $1",
            "INSERT INTO t (a) VALUES ($1) RETURNING a + $2",
            "INSERT INTO t (a, b) VALUES ($1, $3)",
            "INSERT INTO t (a) VALUES (1)",
            "UPDATE t SET a = $1 WHERE b = $2",
            "WITH x AS (SELECT 1) INSERT INTO t (a) VALUES ($1)",
        ] {
            assert!(MultiRowInsert::new(sql).is_none(), "{sql}");
        }
    }
}
