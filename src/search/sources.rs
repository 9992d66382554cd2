//! Semantic search over the operator's own tables: declared embedding sources
//! (`PG_MCP_EMBEDDING_SOURCES`), kept current by `pg-mcp embed`, searched by the
//! `semantic_search` tool under the caller's tenant.
//!
//! A source names a table, its key column and either the text columns to embed or a `vector`
//! column the table already has. Embeddings of text sources live apart from the user's schema,
//! in pg-mcp's `pgmcp_embeddings` schema, one table per source keyed by (source key, model).
//! That table is under row-level security with one policy: a row is visible exactly when its
//! source row is (a primary-key probe of the source by `source_key`), and the
//! source's own policies decide that for the caller. So the ranking itself runs under the
//! tenant: another tenant's rows are never candidates, and their vectors cannot be read even
//! with the SQL guard off.
//!
//! Every name in the generated SQL is a validated identifier, double-quoted; the key type and
//! vector dimensions come from the catalog.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use super::Embedder;
use super::products::sql_literal;
use super::store::{self, SearchRequest};

/// The schema of the embeddings of text sources.
pub const EMBEDDINGS_SCHEMA: &str = "pgmcp_embeddings";

/// One declared source, as the operator writes it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// What callers name it by (`semantic_search(source=...)`): a lower-case identifier.
    pub name: String,
    /// `schema.table` (or a view) holding the rows.
    pub table: String,
    /// The column that identifies a row (unique).
    pub key: String,
    /// Columns whose text is embedded, joined by ". " (a text source).
    #[serde(default)]
    pub text: Vec<String>,
    /// An existing `vector` column to search directly (a vector source; no `pg-mcp embed`).
    #[serde(default)]
    pub vector_column: Option<String>,
    /// Columns returned with each match (default: the key and the text columns).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Rows to embed, as an SQL condition on the table, its columns qualified as `s.column`
    /// (the operator's, run by `pg-mcp embed`).
    #[serde(default)]
    pub filter: Option<String>,
    /// What the source holds, for the model (shown when a caller names an unknown source).
    #[serde(default)]
    pub description: Option<String>,
}

/// A validated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub spec: SourceSpec,
    pub schema: String,
    pub table: String,
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 63
        && b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `"name"`: a validated identifier, quoted.
fn quoted(ident: &str) -> String {
    format!("\"{ident}\"")
}

/// Parses and validates `PG_MCP_EMBEDDING_SOURCES` (a JSON array of sources).
pub fn parse(json: &str) -> Result<Vec<Source>, String> {
    let specs: Vec<SourceSpec> = serde_json::from_str(json)
        .map_err(|e| format!("PG_MCP_EMBEDDING_SOURCES is not a JSON array of sources: {e}"))?;
    let mut sources: Vec<Source> = Vec::new();
    for spec in specs {
        let name = &spec.name;
        let bad = |what: &str| format!("PG_MCP_EMBEDDING_SOURCES: source {name:?}: {what}");
        if !is_identifier(name) || name.to_lowercase() != *name {
            return Err(bad("the name must be a lower-case identifier"));
        }
        if sources.iter().any(|s| s.spec.name == *name) {
            return Err(bad("declared twice"));
        }
        let (schema, table) = spec
            .table
            .split_once('.')
            .filter(|(s, t)| is_identifier(s) && is_identifier(t))
            .ok_or_else(|| bad("table must be schema.table (plain identifiers)"))?;
        let columns = spec
            .text
            .iter()
            .chain(&spec.columns)
            .chain(spec.vector_column.iter())
            .chain(std::iter::once(&spec.key));
        if let Some(c) = columns.clone().find(|c| !is_identifier(c)) {
            return Err(bad(&format!("{c:?} is not a plain column name")));
        }
        match (spec.text.is_empty(), &spec.vector_column) {
            (true, None) => return Err(bad("give text columns to embed, or a vector_column")),
            (false, Some(_)) => return Err(bad("give text columns or a vector_column, not both")),
            _ => {}
        }
        if spec.vector_column.is_some() && spec.filter.is_some() {
            return Err(bad("a filter applies to embedding text columns only"));
        }
        sources.push(Source {
            schema: schema.to_string(),
            table: table.to_string(),
            spec,
        });
    }
    Ok(sources)
}

impl Source {
    /// The source table, quoted.
    fn source_table(&self) -> String {
        format!("{}.{}", quoted(&self.schema), quoted(&self.table))
    }

    /// Its embeddings table (text sources), quoted.
    fn store_table(&self) -> String {
        format!("{EMBEDDINGS_SCHEMA}.{}", quoted(&self.store_name()))
    }

    fn store_name(&self) -> String {
        format!("src_{}", self.spec.name)
    }

    /// Columns returned with a match.
    fn returned_columns(&self) -> Vec<&str> {
        let mut cols: Vec<&str> = if self.spec.columns.is_empty() {
            std::iter::once(&self.spec.key)
                .chain(&self.spec.text)
                .map(String::as_str)
                .collect()
        } else {
            self.spec.columns.iter().map(String::as_str).collect()
        };
        cols.dedup();
        cols
    }

    /// `jsonb_build_object('col', s."col", ...)` of the returned columns.
    fn row_object(&self) -> String {
        let pairs: Vec<String> = self
            .returned_columns()
            .iter()
            .map(|c| format!("'{c}', s.{}", quoted(c)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    }

    /// The text embedded for a row: the text columns joined by ". ".
    fn text_expression(&self) -> String {
        let parts: Vec<String> = self
            .spec
            .text
            .iter()
            .map(|c| format!("s.{}::text", quoted(c)))
            .collect();
        format!("concat_ws('. ', {})", parts.join(", "))
    }
}

/// What `pg-mcp embed` did for one source.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub source: String,
    pub rows: usize,
    pub embedded: usize,
    pub unchanged: usize,
    pub removed: u64,
    pub dimensions: usize,
    pub elapsed: Duration,
}

/// Creates the source's embeddings table if missing: owned by pg-mcp, readable by the
/// application role, and under the row-level security of its source rows.
///
/// The policy is a scalar subquery with `LIMIT 1`, not `EXISTS`: PostgreSQL may turn an
/// `EXISTS` into a hashed subplan that reads every visible source row on every search (a
/// sequential scan of the whole source); this form is one primary-key probe per candidate the
/// HNSW scan offers (about 400 for 20 results when a tenant holds a tenth of the rows). Installs pgvector
/// (`CREATE EXTENSION vector`, in its default schema) when the database lacks it.
pub async fn ensure_store(admin: &PgPool, source: &Source) -> anyhow::Result<String> {
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(admin)
        .await
        .map_err(|e| {
            anyhow::anyhow!("semantic search needs pgvector (CREATE EXTENSION vector): {e}")
        })?;
    let key_type: Option<String> = sqlx::query_scalar(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
          WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
    )
    .bind(source.source_table())
    .bind(&source.spec.key)
    .fetch_optional(admin)
    .await?;
    let Some(key_type) = key_type else {
        anyhow::bail!(
            "source {}: table {} has no column {:?}",
            source.spec.name,
            source.spec.table,
            source.spec.key
        );
    };
    let store = source.store_table();
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {EMBEDDINGS_SCHEMA} AUTHORIZATION pgmcp_owner;
         REVOKE ALL ON SCHEMA {EMBEDDINGS_SCHEMA} FROM PUBLIC;
         GRANT USAGE ON SCHEMA {EMBEDDINGS_SCHEMA} TO pgmcp_app;
         CREATE TABLE IF NOT EXISTS {store} (
             source_key  {key_type}  NOT NULL,
             model       text        NOT NULL,
             dimensions  integer     NOT NULL CHECK (dimensions > 0),
             embedding   vector      NOT NULL,
             source_hash text        NOT NULL,
             created_at  timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (source_key, model),
             CHECK (vector_dims(embedding) = dimensions));
         ALTER TABLE {store} OWNER TO pgmcp_owner;
         ALTER TABLE {store} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
         DROP POLICY IF EXISTS follows_source_row ON {store};
         CREATE POLICY follows_source_row ON {store}
           USING (coalesce((SELECT true FROM {table} s WHERE s.{key} = source_key LIMIT 1), false));
         REVOKE ALL ON {store} FROM PUBLIC;
         GRANT SELECT ON {store} TO pgmcp_app;
         COMMENT ON TABLE {store} IS {comment}",
        table = source.source_table(),
        key = quoted(&source.spec.key),
        comment = sql_literal(&format!(
            "pg-mcp embeddings of {} (source {}); rows visible exactly when their source row is",
            source.spec.table, source.spec.name
        )),
    );
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(admin).await?;
    Ok(key_type)
}

/// Brings one text source's embeddings up to date for the embedder's model: batched,
/// resumable (each batch commits), idempotent (a hash of model and text skips unchanged rows);
/// embeddings of rows gone from the source are removed. Needs a role that bypasses row-level
/// security (the admin URL), so every tenant's rows are embedded.
pub async fn embed_source(
    admin: &PgPool,
    source: &Source,
    embedder: &dyn Embedder,
    batch_size: usize,
    rebuild: bool,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<SourceReport> {
    let started = Instant::now();
    let model = embedder.model().to_string();
    let key_type = ensure_store(admin, source).await?;
    let store = source.store_table();
    let table = source.source_table();
    let key = quoted(&source.spec.key);
    if rebuild {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {store} WHERE model = $1"
        )))
        .bind(&model)
        .execute(admin)
        .await?;
    }
    let removed = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {store} e WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE s.{key} = e.source_key)"
    )))
    .execute(admin)
    .await?
    .rows_affected();
    let filter = source
        .spec
        .filter
        .as_deref()
        .map(|f| format!("WHERE ({f})"))
        .unwrap_or_default();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT s.{key}::text, {text}, e.source_hash \
           FROM {table} s LEFT JOIN {store} e ON e.source_key = s.{key} AND e.model = $1 \
           {filter} ORDER BY s.{key}",
        text = source.text_expression(),
    )))
    .bind(&model)
    .fetch_all(admin)
    .await?;
    let (total, todo) = store::pending(
        &model,
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))),
    );
    let unchanged = total - todo.len();
    let upsert = format!(
        "INSERT INTO {store} (source_key, model, dimensions, embedding, source_hash) \
         VALUES ($1::{key_type}, $2, $3, $4, $5) \
         ON CONFLICT (source_key, model) DO UPDATE \
           SET dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding, \
               source_hash = EXCLUDED.source_hash, created_at = now()"
    );
    let dimensions = store::embed_pending(
        admin,
        embedder,
        batch_size,
        &upsert,
        &todo,
        (unchanged, total),
        progress,
    )
    .await?;
    ensure_index(admin, source, &model, dimensions).await?;
    Ok(SourceReport {
        source: source.spec.name.clone(),
        rows: total,
        embedded: todo.len(),
        unchanged,
        removed,
        dimensions,
        elapsed: started.elapsed(),
    })
}

/// Creates the model's HNSW cosine index on the source's embeddings if missing, and refreshes
/// the planner's statistics.
pub async fn ensure_index(
    admin: &PgPool,
    source: &Source,
    model: &str,
    dimensions: usize,
) -> anyhow::Result<()> {
    store::ensure_index(
        admin,
        &source.store_table(),
        &store::index_name(&source.store_name(), model, dimensions),
        model,
        dimensions,
    )
    .await
}

/// Why a search could not run, beyond the database's own errors.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    /// The source's vectors and the provider's disagree.
    #[error(
        "source {name}'s vectors have {column} dimensions; the configured embeddings provider gives {query}"
    )]
    Dimensions {
        name: String,
        column: i32,
        query: usize,
    },
}

/// The source rows nearest to the query, on a connection inside the caller's tenant
/// transaction: `{key, similarity_percent, row}` objects, nearest first. Row-level security
/// on the source (and, for text sources, on its embeddings) filters the candidates.
pub async fn search(
    conn: &mut PgConnection,
    source: &Source,
    req: &SearchRequest<'_>,
) -> Result<Vec<Value>, SearchError> {
    store::set_search_settings(conn, req).await?;
    let dims = req.query_vector.len();
    let table = source.source_table();
    let key = quoted(&source.spec.key);
    let row = source.row_object();
    let sql = match &source.spec.vector_column {
        Some(column) => {
            let column_dims: Option<i32> = sqlx::query_scalar(
                "SELECT nullif(a.atttypmod, -1) FROM pg_attribute a \
                  WHERE a.attrelid = to_regclass($1) AND a.attname = $2",
            )
            .bind(&table)
            .bind(column)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
            if let Some(column) = column_dims.filter(|d| *d as usize != dims) {
                return Err(SearchError::Dimensions {
                    name: source.spec.name.clone(),
                    column,
                    query: dims,
                });
            }
            let distance = format!("s.{} <=> $1::vector({dims})", quoted(column));
            format!(
                "SELECT s.{key}::text, round(((1 - ({distance})) * 100)::numeric, 2)::float8, {row} \
                   FROM {table} s \
                  WHERE {distance} <= $3 \
                  ORDER BY {distance} LIMIT $2"
            )
        }
        None => {
            let distance = format!("(e.embedding::vector({dims})) <=> $1::vector({dims})");
            format!(
                "WITH nearest AS MATERIALIZED ( \
                     SELECT e.source_key, {distance} AS distance \
                       FROM {store} e \
                      WHERE e.model = {model} AND {distance} <= $3 \
                      ORDER BY {distance} LIMIT $2) \
                 SELECT n.source_key::text, round(((1 - n.distance) * 100)::numeric, 2)::float8, {row} \
                   FROM nearest n JOIN {table} s ON s.{key} = n.source_key \
                  ORDER BY n.distance",
                store = source.store_table(),
                model = sql_literal(req.model),
            )
        }
    };
    let rows = store::nearest(conn, sql, req).await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "key": r.get::<String, _>(0),
                "similarity_percent": r.get::<f64, _>(1),
                "row": r.get::<Value, _>(2),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_source_parses_with_its_defaults() {
        let s = parse(r#"[{"name":"documents","table":"saas.documents","key":"doc_id","text":["title","body"]}]"#)
            .unwrap();
        assert_eq!(s[0].schema, "saas");
        assert_eq!(s[0].returned_columns(), ["doc_id", "title", "body"]);
        assert_eq!(s[0].store_table(), "pgmcp_embeddings.\"src_documents\"");
        assert_eq!(
            s[0].text_expression(),
            "concat_ws('. ', s.\"title\"::text, s.\"body\"::text)"
        );
    }

    #[test]
    fn bad_sources_are_refused_with_the_reason() {
        for (json, says) in [
            ("{}", "JSON array"),
            (
                r#"[{"name":"Docs","table":"a.b","key":"id","text":["t"]}]"#,
                "lower-case",
            ),
            (
                r#"[{"name":"d","table":"nodot","key":"id","text":["t"]}]"#,
                "schema.table",
            ),
            (
                r#"[{"name":"d","table":"a.b","key":"id; drop","text":["t"]}]"#,
                "plain column",
            ),
            (r#"[{"name":"d","table":"a.b","key":"id"}]"#, "text columns"),
            (
                r#"[{"name":"d","table":"a.b","key":"id","text":["t"],"vector_column":"v"}]"#,
                "not both",
            ),
            (
                r#"[{"name":"d","table":"a.b","key":"id","text":["t"]},{"name":"d","table":"a.c","key":"id","text":["t"]}]"#,
                "twice",
            ),
            (
                r#"[{"name":"d","table":"a.b","key":"id","text":["t"],"extra":1}]"#,
                "unknown field",
            ),
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
