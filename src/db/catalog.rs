//! Catalogue queries behind the schema cache: the whole visible schema of one database in a
//! handful of set-based queries, and a cheap fingerprint that changes with any DDL.
//!
//! They read only pg_catalog as the application role (no tenant data, no user text
//! interpolated) and return plain serialisable structs. What the role may not SELECT, and
//! schemas that are not exposed, are left out here, so nothing downstream can show them.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Serialize;
use sqlx::PgConnection;

use crate::error::{AppError, Result};
use crate::exposure::Exposure;

/// One column of a table or view.
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
    /// `stored: <expression>` or `virtual: <expression>` for a generated column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IndexSchema {
    pub name: String,
    /// Access method: btree, hash, gin, gist, hnsw, ...
    pub method: String,
    pub columns: Vec<String>,
    pub is_unique: bool,
    pub is_primary: bool,
    pub predicate: Option<String>,
    pub definition: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ForeignKeySchema {
    pub name: String,
    /// The table holding the key (`schema.table` unless on the search path).
    pub table: String,
    pub columns: Vec<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UniqueConstraint {
    pub name: String,
    pub columns: Vec<String>,
}

/// Everything the schema tools say about one table or view.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableSchema {
    pub schema: String,
    pub table_name: String,
    /// table, view, materialized_view, foreign_table, partitioned_table
    pub kind: String,
    pub comment: Option<String>,
    /// From planner statistics (`reltuples`); -1 when the table was never analysed.
    pub estimated_rows: i64,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub columns: Vec<ColumnSchema>,
    pub primary_key: Vec<String>,
    pub unique_constraints: Vec<UniqueConstraint>,
    pub indexes: Vec<IndexSchema>,
    /// Foreign keys of this table pointing elsewhere.
    pub foreign_keys: Vec<ForeignKeySchema>,
    /// Foreign keys of other (visible) tables pointing at this one.
    pub referenced_by: Vec<ForeignKeySchema>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_definition: Option<String>,
    /// A partition of a partitioned table: described, but not listed.
    #[serde(skip)]
    pub is_partition: bool,
}

/// An enum type in an exposed schema.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnumType {
    pub schema: String,
    pub name: String,
    pub values: Vec<String>,
}

/// The visible schema of one database, as one consistent read.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Sorted by schema, then name.
    pub tables: Vec<TableSchema>,
    pub enums: Vec<EnumType>,
    /// `current_schemas(false)` of the application role: how unqualified names resolve.
    pub search_path: Vec<String>,
}

const KIND_CASE: &str = "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' \
    WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table' \
    WHEN 'p' THEN 'partitioned_table' END";

/// Schemas PostgreSQL keeps for itself, as a SQL condition on `n.nspname`.
const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
    AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'";

/// A value that changes whenever a committed DDL statement changes what [`load`] reads:
/// each such statement writes new row versions (new `xmin`) to these catalogs or removes
/// some. Statistics updates (ANALYZE's row estimates) are in place and do not count; the
/// cache's time-to-live refreshes those.
pub async fn fingerprint(conn: &mut PgConnection) -> Result<String> {
    let part = |catalog: &str| {
        format!(
            "(SELECT count(*)::text || ':' || coalesce(sum(xmin::text::int8), 0)::text FROM pg_catalog.{catalog})"
        )
    };
    let parts: Vec<String> = [
        "pg_class",
        "pg_attribute",
        "pg_attrdef",
        "pg_constraint",
        "pg_index",
        "pg_namespace",
        "pg_description",
        "pg_enum",
    ]
    .iter()
    .map(|c| part(c))
    .collect();
    let sql = format!("SELECT concat_ws('/', {})", parts.join(", "));
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .map_err(AppError::from)
}

// Row shapes of the catalogue queries below.
type RelationRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    bool,
    bool,
    Option<String>,
    bool,
);
type ColumnRow = (
    i64,
    String,
    String,
    bool,
    Option<String>,
    i16,
    Option<String>,
    i64,
    String,
);
type ConstraintRow = (
    i64,
    String,
    String,
    Vec<String>,
    Option<i64>,
    Option<String>,
    Option<Vec<String>>,
    String,
    String,
);
type IndexRow = (
    i64,
    String,
    String,
    Vec<String>,
    bool,
    bool,
    Option<String>,
    String,
);

fn fk_action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "",
    }
    .to_string()
}

/// Reads every table and view the role may SELECT in an exposed schema, with columns, keys,
/// indexes, foreign keys, enums and comments: five queries whatever the number of tables.
pub async fn load(conn: &mut PgConnection, exposure: &Exposure) -> Result<Catalog> {
    let db = AppError::from;
    let search_path: Vec<String> = sqlx::query_scalar("SELECT current_schemas(false)::text[]")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;

    let relations: Vec<RelationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, {KIND_CASE}, c.reltuples::int8, \
                obj_description(c.oid, 'pg_class'), c.relrowsecurity, c.relforcerowsecurity, \
                CASE WHEN c.relkind IN ('v','m') THEN pg_get_viewdef(c.oid, true) END, \
                c.relispartition \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r','v','m','f','p') AND {USER_SCHEMAS} \
            AND has_schema_privilege(n.oid, 'USAGE') \
            AND has_table_privilege(c.oid, 'SELECT') \
          ORDER BY 2, 3"
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let relations: Vec<RelationRow> = relations
        .into_iter()
        .filter(|row| exposure.lists(&row.1))
        .collect();
    let oids: Vec<i64> = relations.iter().map(|r| r.0).collect();
    let mut position: HashMap<i64, usize> = HashMap::with_capacity(oids.len());
    let mut tables: Vec<TableSchema> = Vec::with_capacity(relations.len());
    for (oid, schema, name, kind, est, comment, rls, forced, view, partition) in relations {
        position.insert(oid, tables.len());
        tables.push(TableSchema {
            schema,
            table_name: name,
            kind,
            comment,
            estimated_rows: est,
            rls_enabled: rls,
            rls_forced: forced,
            columns: Vec::new(),
            primary_key: Vec::new(),
            unique_constraints: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
            view_definition: view,
            is_partition: partition,
        });
    }

    // Every enum (a column may use one from a schema that is not exposed); only exposed ones
    // are listed as types.
    let enum_rows: Vec<(i64, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT t.oid::int8, n.nspname::text, t.typname::text, \
                array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
           JOIN pg_enum e ON e.enumtypid = t.oid \
          GROUP BY 1, 2, 3 ORDER BY 2, 3",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let labels: HashMap<i64, Vec<String>> = enum_rows
        .iter()
        .map(|(oid, _, _, values)| (*oid, values.clone()))
        .collect();
    let enums = enum_rows
        .into_iter()
        .filter(|(_, schema, _, _)| exposure.lists(schema))
        .map(|(_, schema, name, values)| EnumType {
            schema,
            name,
            values,
        })
        .collect();

    let columns: Vec<ColumnRow> = sqlx::query_as(
        "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attnum, \
                col_description(a.attrelid, a.attnum), \
                (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::int8, \
                a.attgenerated::text \
           FROM pg_attribute a \
           JOIN pg_type t ON t.oid = a.atttypid \
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
          WHERE a.attrelid = ANY($1::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped \
          ORDER BY a.attrelid, a.attnum",
    )
    .bind(&oids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for (rel, name, data_type, nullable, default, pos, comment, type_oid, generated) in columns {
        let Some(&i) = position.get(&rel) else {
            continue;
        };
        let generated = match generated.as_str() {
            "s" => Some(format!("stored: {}", default.clone().unwrap_or_default())),
            "v" => Some(format!("virtual: {}", default.clone().unwrap_or_default())),
            _ => None,
        };
        tables[i].columns.push(ColumnSchema {
            name,
            data_type,
            is_nullable: nullable,
            default_value: if generated.is_some() { None } else { default },
            ordinal_position: pos,
            comment,
            enum_values: labels.get(&type_oid).cloned(),
            generated,
        });
    }

    // Primary keys, unique constraints and foreign keys of the visible tables; a foreign key
    // into a visible table is also listed on that table (`referenced_by`).
    let constraints: Vec<ConstraintRow> = sqlx::query_as(
        "SELECT con.conrelid::int8, con.conname::text, con.contype::text, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
                CASE WHEN con.contype = 'f' THEN con.confrelid::int8 END, \
                CASE WHEN con.contype = 'f' THEN con.confrelid::regclass::text END, \
                CASE WHEN con.contype = 'f' THEN ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) END, \
                con.confupdtype::text, con.confdeltype::text \
           FROM pg_constraint con \
          WHERE con.conrelid = ANY($1::int8[]::oid[]) AND con.contype IN ('p','u','f') \
          ORDER BY con.conrelid, con.conname",
    )
    .bind(&oids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for (rel, name, kind, cols, ref_oid, ref_table, ref_cols, upd, del) in constraints {
        let Some(&i) = position.get(&rel) else {
            continue;
        };
        match kind.as_str() {
            "p" => tables[i].primary_key = cols,
            "u" => tables[i].unique_constraints.push(UniqueConstraint {
                name,
                columns: cols,
            }),
            "f" => {
                let fk = ForeignKeySchema {
                    name,
                    table: format!("{}.{}", tables[i].schema, tables[i].table_name),
                    columns: cols,
                    referenced_table: ref_table.unwrap_or_default(),
                    referenced_columns: ref_cols.unwrap_or_default(),
                    on_update: fk_action(&upd),
                    on_delete: fk_action(&del),
                };
                if let Some(&target) = ref_oid.and_then(|o| position.get(&o)) {
                    tables[target].referenced_by.push(fk.clone());
                }
                tables[i].foreign_keys.push(fk);
            }
            _ => {}
        }
    }

    let indexes: Vec<IndexRow> = sqlx::query_as(
        "SELECT i.indrelid::int8, ic.relname::text, am.amname::text, \
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k.o::int, true) \
                        FROM generate_series(1, i.indnkeyatts) k(o) ORDER BY k.o), \
                i.indisunique, i.indisprimary, pg_get_expr(i.indpred, i.indrelid, true), \
                pg_get_indexdef(i.indexrelid) \
           FROM pg_index i \
           JOIN pg_class ic ON ic.oid = i.indexrelid \
           JOIN pg_am am ON am.oid = ic.relam \
          WHERE i.indrelid = ANY($1::int8[]::oid[]) \
          ORDER BY i.indrelid, ic.relname",
    )
    .bind(&oids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for (rel, name, method, columns, is_unique, is_primary, predicate, definition) in indexes {
        if let Some(&i) = position.get(&rel) {
            tables[i].indexes.push(IndexSchema {
                name,
                method,
                columns,
                is_unique,
                is_primary,
                predicate,
                definition,
            });
        }
    }
    for table in &mut tables {
        table.referenced_by.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Catalog {
        tables,
        enums,
        search_path,
    })
}
