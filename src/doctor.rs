//! `pg-mcp doctor`: is this database ready for tenants? An audit of a live database from the
//! application role's side: what it may read, and whether row-level security really binds it
//! to the verified context.
//!
//! Each finding has a stable id, the object and the fix. The same report is served to
//! operators at `GET /doctor` (admin token). It reads only the catalog, as the role it audits
//! (the server's connection), and changes nothing.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sqlx::PgPool;

use crate::error::Result;
use crate::exposure::Exposure;

/// How much a finding matters. Any finding makes `pg-mcp doctor` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Tenants can see each other's rows, or the role escapes row-level security.
    Critical,
    /// Isolation depends on something weaker than the database (the SQL guard, a view owner).
    High,
    /// The role may do or see more than the configuration means.
    Warning,
}

/// One problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `rls_disabled` (see the README's table of findings).
    pub id: &'static str,
    pub severity: Severity,
    /// The object concerned, e.g. `saas.tasks` or `role pgmcp_app`.
    pub object: String,
    pub message: String,
    /// A statement or step that removes the finding.
    pub fix: String,
}

/// What the audit needs from the configuration.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    pub exposure: Exposure,
    /// The database is not in write mode (`PG_MCP_WRITE_DATABASES`): a write grant is then
    /// one setting away from use. Set per database with [`DoctorConfig::for_database`].
    pub read_only: bool,
    /// Settings set in compatibility mode (`PG_MCP_COMPAT_SETTINGS`).
    pub compat_settings: Vec<String>,
    /// Tables every tenant may read in full (`PG_MCP_SHARED_TABLES`: `schema.table` or
    /// `schema.*`): not reported for lacking row-level security.
    pub shared_tables: Vec<String>,
}

impl DoctorConfig {
    /// What the server itself would run with.
    pub fn from_config(config: &crate::config::Config) -> Result<Self> {
        Ok(Self {
            exposure: config.exposure(),
            read_only: true,
            compat_settings: crate::auth::compat_settings(config)?
                .into_iter()
                .map(|(_, setting)| setting)
                .collect(),
            shared_tables: config.shared_tables.clone(),
        })
    }
}

impl DoctorConfig {
    /// The configuration for auditing `db` (its write mode).
    pub fn for_database(&self, db: &crate::db::Database) -> Self {
        Self {
            read_only: !db.writable,
            ..self.clone()
        }
    }
}

/// The audit's result for one database.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: String,
    /// The role audited: the connection's own (the server's application role).
    pub role: String,
    /// Tables and views the role can read in exposed schemas.
    pub tables_checked: usize,
    pub policies_checked: usize,
    /// Most severe first.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The report for people: a line per finding with its fix, or a line saying it is clean.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "database {} as role {}: {} tables and views, {} policies checked\n",
            self.database, self.role, self.tables_checked, self.policies_checked
        );
        if self.findings.is_empty() {
            out.push_str(
                "no findings: row-level security binds this role to the verified context\n",
            );
        }
        for f in &self.findings {
            let severity = match f.severity {
                Severity::Critical => "CRITICAL",
                Severity::High => "HIGH",
                Severity::Warning => "WARNING",
            };
            out.push_str(&format!(
                "{severity:<8} {:<32} {}\n         {}\n         fix: {}\n",
                f.id, f.object, f.message, f.fix
            ));
        }
        out
    }
}

fn finding(
    id: &'static str,
    severity: Severity,
    object: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        id,
        severity,
        object: object.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// The functions of pg-mcp's verified context; a policy must reach one of them.
const VERIFIED_FUNCTIONS: &[&str] = &[
    "pgmcp.tenant_id(",
    "pgmcp.user_id(",
    "pgmcp.claim(",
    "pgmcp.context(",
];

/// How deep the audit follows functions called by a policy to find the verified context.
const MAX_CALL_DEPTH: usize = 4;

/// One relation the role can read: `(oid, schema, name, kind, owner, rls, forced, security
/// invoker, role may become the owner)`.
type RelationRow = (i64, String, String, String, String, bool, bool, bool, bool);

/// One policy that applies to the role: `(table oid, table, name, USING, WITH CHECK)`.
type PolicyRow = (i64, String, String, Option<String>, Option<String>);

/// Runs every check on the connection's database, for the connection's role.
pub async fn audit(pool: &PgPool, cfg: &DoctorConfig) -> Result<Report> {
    let (database, role, superuser, bypass): (String, String, bool, bool) = sqlx::query_as(
        "SELECT current_database()::text, current_user::text, r.rolsuper, r.rolbypassrls \
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let mut findings = Vec::new();
    let role_object = format!("role {role}");

    let core: bool = sqlx::query_scalar("SELECT to_regproc('pgmcp.tenant_id') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !core {
        findings.push(finding(
            "core_missing",
            Severity::Critical,
            "schema pgmcp",
            "pg-mcp's own objects are not installed: there is no verified context to write policies against",
            "run `pg-mcp migrate` with an admin URL",
        ));
    }
    if superuser {
        findings.push(finding(
            "role_is_superuser",
            Severity::Critical,
            &role_object,
            "the role is a superuser: row-level security never applies to it",
            format!(
                "connect as pgmcp_app (pg-mcp migrate creates it), or ALTER ROLE {role} NOSUPERUSER"
            ),
        ));
    }
    if bypass {
        findings.push(finding(
            "role_bypasses_rls",
            Severity::Critical,
            &role_object,
            "the role has BYPASSRLS: row-level security never applies to it",
            format!("ALTER ROLE {role} NOBYPASSRLS"),
        ));
    }

    let relations: Vec<RelationRow> = sqlx::query_as(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, \
                pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity, \
                coalesce(c.reloptions::text[] && ARRAY['security_invoker=true','security_invoker=on','security_invoker=1'], false), \
                pg_has_role(current_user, c.relowner, 'MEMBER') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r','p','v','m','f') \
            AND NOT c.relispartition \
            AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast','pgmcp','pgmcp_private','pgmcp_embeddings') \
            AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%' \
            AND has_schema_privilege(n.oid, 'USAGE') \
            AND has_table_privilege(c.oid, 'SELECT') \
          ORDER BY 2, 3",
    )
    .fetch_all(pool)
    .await?;

    let policies: Vec<PolicyRow> = sqlx::query_as(
        "SELECT p.polrelid::int8, n.nspname::text || '.' || c.relname::text, p.polname::text, \
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
           FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE has_table_privilege(c.oid, 'SELECT') \
            AND n.nspname NOT IN ('pgmcp','pgmcp_private','pgmcp_embeddings') \
            AND (p.polroles = '{0}' OR EXISTS ( \
                  SELECT 1 FROM unnest(p.polroles) r WHERE pg_has_role(current_user, r, 'MEMBER'))) \
          ORDER BY 2, 3",
    )
    .fetch_all(pool)
    .await?;
    let mut policies_by_table: HashMap<i64, usize> = HashMap::new();
    for p in &policies {
        *policies_by_table.entry(p.0).or_default() += 1;
    }

    let mut tables_checked = 0;
    for (oid, schema, name, kind, owner, rls, forced, invoker, can_become_owner) in &relations {
        let qualified = format!("{schema}.{name}");
        let exposed = cfg.exposure.lists(schema);
        if exposed {
            tables_checked += 1;
        } else {
            findings.push(finding(
                "exposed_beyond_schemas",
                Severity::Warning,
                &qualified,
                format!("the role can read {qualified}, but schema {schema} is not exposed (PG_MCP_SCHEMAS)"),
                format!("REVOKE SELECT ON {qualified} FROM {role} (or REVOKE USAGE ON SCHEMA {schema}), or expose the schema"),
            ));
            continue;
        }
        let is_table = matches!(kind.as_str(), "r" | "p" | "f");
        if is_table && owner == &role {
            findings.push(finding(
                "role_owns_table",
                Severity::Critical,
                &qualified,
                format!("the role owns {qualified}: an owner may disable its row-level security and is exempt unless it is forced"),
                format!("ALTER TABLE {qualified} OWNER TO <another role>"),
            ));
        }
        if is_table && !rls && !is_shared(&cfg.shared_tables, schema, name) {
            findings.push(finding(
                "rls_disabled",
                Severity::Critical,
                &qualified,
                format!("row-level security is off on {qualified}: every tenant reads every row"),
                format!("ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; then CREATE POLICY ... USING (tenant_col = (SELECT pgmcp.tenant_id())::<type>); if every tenant may read it, list it in PG_MCP_SHARED_TABLES"),
            ));
        }
        if is_table && *rls && !policies_by_table.contains_key(oid) {
            findings.push(finding(
                "rls_without_policy",
                Severity::Warning,
                &qualified,
                format!("{qualified} has row-level security but no policy for this role: it reads as empty"),
                format!("CREATE POLICY ... ON {qualified} USING (tenant_col = (SELECT pgmcp.tenant_id())::<type>)"),
            ));
        }
        if is_table && *rls && !forced && *can_become_owner && owner != &role {
            findings.push(finding(
                "rls_not_forced",
                Severity::High,
                &qualified,
                format!("the role may act as {owner}, the owner of {qualified}, who is exempt from its row-level security"),
                format!("ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY (and REVOKE {owner} FROM {role})"),
            ));
        }
        if kind == "v" && !invoker && owner != &role {
            let over_rls = reads_rls_table(pool, *oid).await?;
            if let Some(table) = over_rls {
                findings.push(finding(
                    "view_without_security_invoker",
                    Severity::Critical,
                    &qualified,
                    format!("view {qualified} reads {table}, which has row-level security, with its owner's rights ({owner}), not the caller's"),
                    format!("ALTER VIEW {qualified} SET (security_invoker = true)"),
                ));
            }
        }
        if kind == "m"
            && let Some(table) = reads_rls_table(pool, *oid).await?
        {
            findings.push(finding(
                "materialized_view_over_rls",
                Severity::Critical,
                &qualified,
                format!("materialized view {qualified} holds rows of {table} as its owner saw them: row-level security does not filter it"),
                format!("REVOKE SELECT ON {qualified} FROM {role}, or give it a tenant column and query a view with a policy instead"),
            ));
        }
    }

    // Policies must reach the verified context (directly or through functions they call).
    let sources = function_sources(pool).await?;
    for (_, table, policy, using, check) in &policies {
        let text = [using.as_deref(), check.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let object = format!("{table} policy {policy}");
        if reaches_verified_context(&text, &sources) {
            continue;
        }
        let plain: Vec<&String> = cfg
            .compat_settings
            .iter()
            .filter(|s| text.contains(&format!("'{s}'")))
            .collect();
        if let Some(setting) = plain.first() {
            findings.push(finding(
                "policy_reads_plain_setting",
                Severity::High,
                &object,
                format!("the policy reads the plain setting {setting} (compatibility mode): SQL that calls set_config() switches its tenant, so it relies on the SQL guard alone"),
                format!("compare with (SELECT pgmcp.tenant_id()) instead of current_setting('{setting}')"),
            ));
        } else {
            findings.push(finding(
                "policy_unverified",
                Severity::Critical,
                &object,
                format!("the policy does not use the verified context (pgmcp.tenant_id(), pgmcp.claim()): {}", truncate(&text, 160)),
                "write it against the verified context, e.g. USING (tenant_col = (SELECT pgmcp.tenant_id())::<type>)",
            ));
        }
    }

    // SECURITY DEFINER functions the role may run, outside pg-mcp's own, that name RLS tables.
    let rls_tables: Vec<(String, String)> = relations
        .iter()
        .filter(|r| r.5)
        .map(|r| (r.1.clone(), r.2.clone()))
        .collect();
    let definers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text || '.' || p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                pg_get_userbyid(p.proowner)::text, p.prosrc \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE p.prosecdef \
            AND n.nspname NOT IN ('pg_catalog','information_schema','pgmcp','pgmcp_private','pgmcp_embeddings') \
            AND has_function_privilege(p.oid, 'EXECUTE') \
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for (function, owner, source) in &definers {
        let source = source.to_lowercase();
        if let Some((schema, table)) = rls_tables
            .iter()
            .find(|(_, table)| mentions_word(&source, &table.to_lowercase()))
        {
            findings.push(finding(
                "definer_function_reads_rls",
                Severity::High,
                function,
                format!("SECURITY DEFINER function {function} reads {schema}.{table} as its owner ({owner}), so that table's row-level security filters by the owner, not the caller"),
                format!("ALTER FUNCTION {function} SECURITY INVOKER, or REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC, {role}"),
            ));
        }
    }

    if cfg.read_only {
        let writable: Vec<String> = sqlx::query_scalar(
            "SELECT n.nspname::text || '.' || c.relname::text \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r','p','v','f') \
                AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast','pgmcp','pgmcp_private','pgmcp_embeddings') \
                AND has_schema_privilege(n.oid, 'USAGE') \
                AND has_table_privilege(c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') \
              ORDER BY 1",
        )
        .fetch_all(pool)
        .await?;
        for table in writable {
            findings.push(finding(
                "write_grant_in_read_only_mode",
                Severity::Warning,
                &table,
                format!("the role may write {table} although the server is read-only (the read-only transaction still refuses; the grant is one setting away from use)"),
                format!("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {table} FROM {role}"),
            ));
        }
    }

    let sequences: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind = 'S' \
            AND n.nspname NOT IN ('pg_catalog','information_schema','pgmcp','pgmcp_private','pgmcp_embeddings') \
            AND has_schema_privilege(n.oid, 'USAGE') \
            AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT,USAGE,UPDATE') END \
          ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    for (schema, name) in sequences.iter().filter(|(s, _)| !cfg.exposure.lists(s)) {
        findings.push(finding(
            "exposed_beyond_schemas",
            Severity::Warning,
            format!("{schema}.{name}"),
            format!("the role can use sequence {schema}.{name}, but schema {schema} is not exposed (PG_MCP_SCHEMAS)"),
            format!("REVOKE ALL ON SEQUENCE {schema}.{name} FROM {role}"),
        ));
    }
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT n.nspname::text, c.relname::text, a.attname::text \
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped \
            AND n.nspname NOT IN ('pg_catalog','information_schema','pgmcp','pgmcp_private','pgmcp_embeddings') \
            AND has_schema_privilege(n.oid, 'USAGE') \
            AND NOT has_table_privilege(c.oid, 'SELECT') \
            AND has_column_privilege(c.oid, a.attnum, 'SELECT') \
          ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    for (schema, table, column) in columns.iter().filter(|(s, _, _)| !cfg.exposure.lists(s)) {
        findings.push(finding(
            "exposed_beyond_schemas",
            Severity::Warning,
            format!("{schema}.{table}.{column}"),
            format!("the role can read column {column} of {schema}.{table}, but schema {schema} is not exposed (PG_MCP_SCHEMAS)"),
            format!("REVOKE SELECT ({column}) ON {schema}.{table} FROM {role}"),
        ));
    }

    let open = crate::db::isolation::exposed(&mut *pool.begin().await?).await?;
    if !open.is_empty() {
        findings.push(finding(
            "sessions_observable",
            Severity::Critical,
            &role_object,
            format!(
                "the role can watch other sessions, which carry other tenants' SQL: {}",
                open.join(", ")
            ),
            "run `pg-mcp migrate` as a superuser (it revokes these from PUBLIC)",
        ));
    }

    findings.sort_by(|a, b| (a.severity, a.id, &a.object).cmp(&(b.severity, b.id, &b.object)));
    Ok(Report {
        database,
        role,
        tables_checked,
        policies_checked: policies.len(),
        findings,
    })
}

/// `schema.table` or `schema.*` in `PG_MCP_SHARED_TABLES`.
fn is_shared(shared: &[String], schema: &str, table: &str) -> bool {
    shared.iter().any(|entry| {
        let entry = entry.trim().to_lowercase();
        entry == format!("{schema}.{table}") || entry == format!("{schema}.*")
    })
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Whether `word` stands in `text` as a whole identifier.
fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The first row-level-security table a view or materialized view reads directly.
async fn reads_rls_table(pool: &PgPool, view: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT n.nspname::text || '.' || t.relname::text \
           FROM pg_rewrite r \
           JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                           AND d.refclassid = 'pg_class'::regclass \
           JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> r.ev_class \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
          WHERE r.ev_class = $1::int8::oid AND t.relrowsecurity \
          ORDER BY 1 LIMIT 1",
    )
    .bind(view)
    .fetch_optional(pool)
    .await
}

/// Bodies of the functions policies may call, by lower-case `schema.name` and bare `name`.
async fn function_sources(pool: &PgPool) -> sqlx::Result<HashMap<String, Vec<String>>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, p.proname::text, p.prosrc \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND p.prolang <> 13",
    )
    .fetch_all(pool)
    .await?;
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for (schema, name, source) in rows {
        let source = source.to_lowercase();
        by_name
            .entry(format!("{}.{}", schema.to_lowercase(), name.to_lowercase()))
            .or_default()
            .push(source.clone());
        by_name.entry(name.to_lowercase()).or_default().push(source);
    }
    Ok(by_name)
}

/// Whether an expression calls a verified-context function, itself or through the functions it
/// calls (followed `MAX_CALL_DEPTH` deep).
fn reaches_verified_context(expression: &str, sources: &HashMap<String, Vec<String>>) -> bool {
    let mut seen = BTreeSet::new();
    let mut frontier = vec![expression.to_lowercase()];
    for _ in 0..=MAX_CALL_DEPTH {
        let mut next = Vec::new();
        for text in &frontier {
            if VERIFIED_FUNCTIONS.iter().any(|f| text.contains(f)) {
                return true;
            }
            for called in called_functions(text) {
                if seen.insert(called.clone())
                    && let Some(bodies) = sources.get(&called)
                {
                    next.extend(bodies.iter().cloned());
                }
            }
        }
        if next.is_empty() {
            return false;
        }
        frontier = next;
    }
    false
}

/// Names followed by `(` in SQL text: `schema.name` or `name`, lower-case.
fn called_functions(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (at, _) in text.match_indices('(') {
        let mut start = at;
        while start > 0 {
            let c = bytes[start - 1];
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'"' {
                start -= 1;
            } else {
                break;
            }
        }
        let name = text[start..at].replace('"', "");
        if !name.is_empty() && !name.starts_with('.') {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reaches_the_verified_context_through_functions() {
        let mut sources = HashMap::new();
        sources.insert(
            "retail.tenant_store_ids".to_string(),
            vec!["with v as (select retail.current_tenant() as uid) select ...".to_string()],
        );
        sources.insert(
            "retail.current_tenant".to_string(),
            vec!["select t::uuid from (select pgmcp.tenant_id() as t) v".to_string()],
        );
        assert!(reaches_verified_context(
            "(store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))",
            &sources
        ));
        assert!(reaches_verified_context(
            "(org_id = (( SELECT pgmcp.tenant_id() AS tenant_id))::bigint)",
            &sources
        ));
        assert!(!reaches_verified_context(
            "(org_id = (current_setting('app.org'::text))::bigint)",
            &sources
        ));
        assert!(!reaches_verified_context("true", &sources));
    }

    #[test]
    fn called_functions_are_read_from_sql_text() {
        assert_eq!(
            called_functions("a = any((select retail.tenant_store_ids())) and \"x\".\"f\"(1)"),
            vec!["any", "retail.tenant_store_ids", "x.f"]
        );
    }

    #[test]
    fn words_match_whole_identifiers_only() {
        assert!(mentions_word("select * from saas.tasks where", "tasks"));
        assert!(!mentions_word("select * from saas.tasks_archive", "tasks"));
    }

    #[test]
    fn shared_tables_match_by_name_or_schema() {
        let shared = vec!["retail.products".to_string(), "ref.*".to_string()];
        assert!(is_shared(&shared, "retail", "products"));
        assert!(is_shared(&shared, "ref", "countries"));
        assert!(!is_shared(&shared, "retail", "orders"));
    }
}
