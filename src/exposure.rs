//! Which schemas the model is shown (`PG_MCP_SCHEMAS`, `PG_MCP_HIDDEN_SCHEMAS`).
//!
//! The schema tools list only exposed schemas, and the SQL guard refuses a relation named with
//! a schema that is not exposed, so the model sees only what the operator meant. The database
//! still decides what the role can read (`pg-mcp migrate` grants the application role the
//! schemas in `PG_MCP_SCHEMAS`): an unqualified name resolves through the search path, which
//! only the database knows. PostgreSQL's own schemas are never listed by the schema tools,
//! but queries may read them (the guard governs the system catalogs on its own).

/// PostgreSQL's schemas: never listed, always queryable (subject to the guard's catalog rules).
pub const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "pg_toast"];

/// Hidden unless the operator says otherwise: pg-mcp's own schemas (the verified context, the
/// key, the embeddings of declared sources).
pub const DEFAULT_HIDDEN: &[&str] = &["pgmcp", "pgmcp_private", "pgmcp_embeddings"];

/// The exposed schemas: the allow-list (or every schema), less the deny-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// `None`: every schema the role may use.
    allow: Option<Vec<String>>,
    deny: Vec<String>,
}

impl Default for Exposure {
    fn default() -> Self {
        Self::new(
            &[],
            DEFAULT_HIDDEN
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .as_slice(),
        )
    }
}

fn normalized(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A schema PostgreSQL creates for itself (temporary and toast schemas included).
pub fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&schema)
        || schema.starts_with("pg_temp_")
        || schema.starts_with("pg_toast_temp_")
}

impl Exposure {
    /// `allow` empty: every schema. Names compare case-insensitively (as unquoted SQL does).
    pub fn new(allow: &[String], deny: &[String]) -> Self {
        let allow = normalized(allow);
        Self {
            allow: (!allow.is_empty()).then_some(allow),
            deny: normalized(deny),
        }
    }

    /// Whether the schema tools list `schema`.
    pub fn lists(&self, schema: &str) -> bool {
        let schema = schema.to_lowercase();
        !is_system_schema(&schema)
            && !self.deny.contains(&schema)
            && self
                .allow
                .as_ref()
                .is_none_or(|allow| allow.contains(&schema))
    }

    /// Whether a query may name a relation in `schema` (system schemas always).
    pub fn allows_relation_in(&self, schema: &str) -> bool {
        is_system_schema(&schema.to_lowercase()) || self.lists(schema)
    }

    /// The allow-list, when there is one (for catalogue queries: `= ANY($n)`).
    pub fn allowed(&self) -> Option<&[String]> {
        self.allow.as_deref()
    }

    /// The deny-list.
    pub fn denied(&self) -> &[String] {
        &self.deny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn by_default_every_user_schema_but_pg_mcps_own() {
        let e = Exposure::default();
        assert!(e.lists("retail") && e.lists("public") && e.lists("Saas"));
        assert!(!e.lists("pgmcp") && !e.lists("pgmcp_private"));
        assert!(!e.lists("pg_catalog") && !e.lists("pg_temp_3"));
        assert!(e.allows_relation_in("pg_catalog") && e.allows_relation_in("information_schema"));
        assert!(!e.allows_relation_in("pgmcp_private"));
    }

    #[test]
    fn an_allow_list_exposes_only_its_schemas() {
        let e = Exposure::new(&list(&["saas", " Billing "]), &list(&["pgmcp"]));
        assert!(e.lists("saas") && e.lists("billing"));
        assert!(!e.lists("public") && !e.allows_relation_in("internal"));
        assert!(e.allows_relation_in("pg_catalog"));
    }

    #[test]
    fn the_deny_list_wins_over_the_allow_list() {
        let e = Exposure::new(&list(&["saas", "internal"]), &list(&["internal"]));
        assert!(e.lists("saas") && !e.lists("internal"));
    }
}
