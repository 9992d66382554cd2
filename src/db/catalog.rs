//! Catalogue queries behind `list_tables` and `get_table_schema`.
//!
//! They run in the caller's tenant transaction like every other tool, read only pg_catalog
//! (no user text is ever interpolated: names are bound parameters) and return plain
//! serialisable structs.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use crate::error::{AppError, ErrorCode, Result};
use crate::exposure::Exposure;

#[derive(Debug, Serialize)]
pub struct TableSummary {
    pub schema: String,
    pub name: String,
    /// table, view, materialized_view, foreign_table, partitioned_table
    pub kind: String,
    /// From planner statistics (`reltuples`); -1 when the table was never analysed.
    pub estimated_rows: i64,
    pub comment: Option<String>,
    pub rls_enabled: bool,
}

const KIND_CASE: &str = "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' \
    WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table' \
    WHEN 'p' THEN 'partitioned_table' END";

/// Tables and views the caller's role can see, in one schema or in all exposed schemas.
pub async fn list_tables(
    conn: &mut PgConnection,
    schema: Option<&str>,
    exposure: &Exposure,
) -> Result<Vec<TableSummary>> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, {KIND_CASE}, c.reltuples::int8, \
                obj_description(c.oid, 'pg_class'), c.relrowsecurity \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r','v','m','f','p') \
            AND NOT c.relispartition \
            AND ($1::text IS NULL AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
                 AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%' \
                 OR n.nspname = $1) \
            AND has_schema_privilege(n.oid, 'USAGE') \
            AND has_table_privilege(c.oid, 'SELECT') \
          ORDER BY 1, 2"
    );
    let rows: Vec<(String, String, String, i64, Option<String>, bool)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(schema)
            .fetch_all(&mut *conn)
            .await
            .map_err(AppError::from)?;
    Ok(rows
        .into_iter()
        .filter(|row| exposure.lists(&row.0))
        .map(|(schema, name, kind, est, comment, rls)| TableSummary {
            schema,
            name,
            kind,
            estimated_rows: est,
            comment,
            rls_enabled: rls,
        })
        .collect())
}

#[derive(Debug, Serialize)]
pub struct ColumnSchema {
    pub name: String,
    pub data_type: String,
    pub is_nullable: bool,
    pub default_value: Option<String>,
    pub ordinal_position: i16,
    pub comment: Option<String>,
    /// Labels when the column's type (or its domain's base type) is an enum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IndexSchema {
    pub name: String,
    pub method: String,
    pub columns: Vec<String>,
    pub is_unique: bool,
    pub is_primary: bool,
    pub predicate: Option<String>,
    pub definition: String,
}

#[derive(Debug, Serialize)]
pub struct ForeignKeySchema {
    pub name: String,
    /// `table.columns` -> `referenced_table.referenced_columns`
    pub table: String,
    pub columns: Vec<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
}

#[derive(Debug, Serialize)]
pub struct UniqueConstraint {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TableSchema {
    pub schema: String,
    pub table_name: String,
    pub kind: String,
    pub comment: Option<String>,
    pub estimated_rows: i64,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub columns: Vec<ColumnSchema>,
    pub primary_key: Vec<String>,
    pub unique_constraints: Vec<UniqueConstraint>,
    pub indexes: Vec<IndexSchema>,
    /// Foreign keys of this table pointing elsewhere.
    pub foreign_keys: Vec<ForeignKeySchema>,
    /// Foreign keys of other tables pointing at this one.
    pub referenced_by: Vec<ForeignKeySchema>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_definition: Option<String>,
}

// Row shapes of the catalogue queries below.
type RelationRow = (i64, String, String, String, i64, Option<String>, bool, bool);
type ColumnRow = (
    String,
    String,
    bool,
    Option<String>,
    i16,
    Option<String>,
    Option<Vec<String>>,
    String,
);
type ConstraintRow = (
    String,
    String,
    Vec<String>,
    Option<String>,
    Option<Vec<String>>,
    String,
    String,
    i64,
);
type IndexRow = (
    String,
    String,
    Vec<String>,
    bool,
    bool,
    Option<String>,
    String,
);

/// Splits `schema.table` when no schema is given separately.
pub fn split_name<'a>(table: &'a str, schema: Option<&'a str>) -> (Option<&'a str>, &'a str) {
    match (schema, table.split_once('.')) {
        (Some(s), _) => (Some(s), table),
        (None, Some((s, t))) => (Some(s), t),
        (None, None) => (None, table),
    }
}

/// Full description of one table or view; NOT_FOUND (with close names) when it does not exist.
pub async fn table_schema(
    conn: &mut PgConnection,
    table: &str,
    schema: Option<&str>,
    exposure: &Exposure,
) -> Result<TableSchema> {
    let (schema, table) = split_name(table.trim(), schema.map(str::trim));
    let db = AppError::from;
    // Resolve the relation: an explicit schema, or the search path, or any schema (unique).
    let found: Vec<RelationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, {KIND_CASE}, c.reltuples::int8, \
                    obj_description(c.oid, 'pg_class'), c.relrowsecurity, c.relforcerowsecurity \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r','v','m','f','p') AND c.relname = $1 \
                AND ($2::text IS NULL OR n.nspname = $2) \
                AND n.nspname NOT IN ('pg_toast') \
              ORDER BY (n.nspname = ANY (current_schemas(false))) DESC, n.nspname"
    )))
    .bind(table)
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let found = found.into_iter().find(|row| exposure.lists(&row.1));
    let Some((oid, schema, name, kind, est, comment, rls, forced)) = found else {
        // Suggest the closest visible names (edit distance), so a typo is one step from right.
        let visible: Vec<(String, String)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r','v','m','f','p') \
                AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
                AND has_table_privilege(c.oid, 'SELECT') LIMIT 5000",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
        let mut scored: Vec<(usize, String)> = visible
            .into_iter()
            .filter(|(s, _)| exposure.lists(s))
            .map(|(s, t)| (strsim::levenshtein(&t, table), format!("{s}.{t}")))
            .filter(|(d, _)| *d <= 3.max(table.len() / 3))
            .collect();
        scored.sort();
        let similar: Vec<String> = scored.into_iter().take(5).map(|(_, n)| n).collect();
        let qualified = match schema {
            Some(s) => format!("{s}.{table}"),
            None => table.to_string(),
        };
        let mut err = AppError::new(
            ErrorCode::NotFound,
            format!("table or view {qualified:?} does not exist (or is not visible to this role)"),
        );
        if !similar.is_empty() {
            err = err.with_details(serde_json::json!({ "did_you_mean": similar }));
        }
        return Err(err);
    };

    let columns: Vec<ColumnRow> =
        sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                    pg_get_expr(d.adbin, d.adrelid), a.attnum, col_description(a.attrelid, a.attnum), \
                    (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e \
                      WHERE e.enumtypid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END), \
                    a.attgenerated::text \
               FROM pg_attribute a \
               JOIN pg_type t ON t.oid = a.atttypid \
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
              WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
              ORDER BY a.attnum",
        )
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let columns = columns
        .into_iter()
        .map(
            |(name, data_type, nullable, default, pos, comment, enums, generated)| {
                let generated_kind = match generated.as_str() {
                    "s" => Some("stored".to_string()),
                    "v" => Some("virtual".to_string()),
                    _ => None,
                };
                ColumnSchema {
                    name,
                    data_type,
                    is_nullable: nullable,
                    default_value: if generated_kind.is_some() {
                        None
                    } else {
                        default.clone()
                    },
                    ordinal_position: pos,
                    comment,
                    enum_values: enums,
                    generated: generated_kind
                        .map(|k| format!("{k}: {}", default.unwrap_or_default())),
                }
            },
        )
        .collect();

    // Constraints: primary key, unique, foreign keys (both directions).
    let constraints: Vec<ConstraintRow> =
        sqlx::query_as(
            "SELECT con.conname::text, con.contype::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
                    CASE WHEN con.contype = 'f' THEN con.confrelid::regclass::text END, \
                    CASE WHEN con.contype = 'f' THEN ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) END, \
                    con.confupdtype::text, con.confdeltype::text, con.conrelid::int8 \
               FROM pg_constraint con \
              WHERE (con.conrelid = $1::int8::oid AND con.contype IN ('p','u','f')) \
                 OR (con.confrelid = $1::int8::oid AND con.contype = 'f') \
              ORDER BY con.conname",
        )
        .bind(oid)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let action = |c: &str| {
        match c {
            "a" => "NO ACTION",
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "",
        }
        .to_string()
    };
    let qualified_self = format!("{schema}.{name}");
    let mut primary_key = Vec::new();
    let mut unique_constraints = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut referenced_by = Vec::new();
    for (cname, ctype, cols, ref_table, ref_cols, upd, del, conrel) in constraints {
        match ctype.as_str() {
            "p" if conrel == oid => primary_key = cols,
            "u" if conrel == oid => unique_constraints.push(UniqueConstraint {
                name: cname,
                columns: cols,
            }),
            "f" => {
                let owner_table: String = if conrel == oid {
                    qualified_self.clone()
                } else {
                    sqlx::query_scalar("SELECT $1::int8::oid::regclass::text")
                        .bind(conrel)
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(db)?
                };
                let fk = ForeignKeySchema {
                    name: cname,
                    table: owner_table,
                    columns: cols,
                    referenced_table: ref_table.unwrap_or_default(),
                    referenced_columns: ref_cols.unwrap_or_default(),
                    on_update: action(&upd),
                    on_delete: action(&del),
                };
                if conrel == oid {
                    foreign_keys.push(fk);
                } else {
                    referenced_by.push(fk);
                }
            }
            _ => {}
        }
    }

    let indexes: Vec<IndexRow> = sqlx::query_as(
        "SELECT ic.relname::text, am.amname::text, \
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k.o::int, true) \
                        FROM generate_series(1, i.indnkeyatts) k(o) ORDER BY k.o), \
                i.indisunique, i.indisprimary, pg_get_expr(i.indpred, i.indrelid, true), \
                pg_get_indexdef(i.indexrelid) \
           FROM pg_index i \
           JOIN pg_class ic ON ic.oid = i.indexrelid \
           JOIN pg_am am ON am.oid = ic.relam \
          WHERE i.indrelid = $1::int8::oid \
          ORDER BY ic.relname",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let indexes = indexes
        .into_iter()
        .map(
            |(name, method, columns, is_unique, is_primary, predicate, definition)| IndexSchema {
                name,
                method,
                columns,
                is_unique,
                is_primary,
                predicate,
                definition,
            },
        )
        .collect();

    let view_definition = if kind == "view" || kind == "materialized_view" {
        sqlx::query_scalar("SELECT pg_get_viewdef($1::int8::oid, true)")
            .bind(oid)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?
    } else {
        None
    };

    Ok(TableSchema {
        schema,
        table_name: name,
        kind,
        comment,
        estimated_rows: est,
        rls_enabled: rls,
        rls_forced: forced,
        columns,
        primary_key,
        unique_constraints,
        indexes,
        foreign_keys,
        referenced_by,
        view_definition,
    })
}

/// Convenience for tools returning several schemas: errors become per-table entries.
pub fn error_entry(table: &str, err: &AppError) -> Value {
    serde_json::json!({ "table_name": table, "error": err.to_json() })
}
