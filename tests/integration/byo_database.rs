//! Bring your own database: pg-mcp in front of multi-tenant schemas it has never seen.
//!
//! - A SaaS schema (organizations, projects, tasks, documents, private notes) whose policies
//!   are written against `pgmcp.tenant_id()` and `pgmcp.user_id()`, with a `bigint` org id
//!   from one JWT claim and the user from another. `pg-mcp migrate` must leave it untouched;
//!   every tool must work on it, and only on the caller's organization.
//! - A deliberately broken schema: `pg-mcp doctor` reports each planted fault by its id.
//! - A Zava-style schema whose policies read `current_setting('app.current_rls_user_id')`:
//!   it works unchanged in compatibility mode, and `doctor` warns that it relies on the guard.
//!
//! Each runs in a throwaway database of the test cluster, created here as the superuser.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::databases::{NO_SETTINGS, fresh_database, pg_mcp_on, stderr, with_database};
use crate::common::process::pg_mcp_command;
use crate::common::{McpClient, TOOLS, TestServer, env, table_names};

const SECRET: &str = "byo-database-test-secret-of-32-bytes!";

/// A sorted listing of the database's catalog outside pg-mcp's own schemas: schemas,
/// relations, columns, policies, functions, extensions, database and default privileges, each
/// with its access list (a default one spelled out) less the entries of pg-mcp's roles.
async fn catalog_snapshot(pool: &PgPool) -> Vec<String> {
    let acl = |col: &str| {
        format!(
            "array_to_string(ARRAY(SELECT x::text FROM unnest({col}) x WHERE x::text !~ '^pgmcp_' ORDER BY 1), ',')"
        )
    };
    let user_schema = "n.nspname NOT IN ('pg_catalog','information_schema','pg_toast','pgmcp','pgmcp_private') \
                       AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'";
    let sql = format!(
        "SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || {nsp_acl}
           FROM pg_namespace n WHERE {user_schema}
         UNION ALL
         SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
                || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity || ' options=' || coalesce(c.reloptions::text, '')
                || ' acl=' || {rel_acl}
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_schema}
         UNION ALL
         SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || ' notnull=' || a.attnotnull || ' acl=' || {att_acl}
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE a.attnum > 0 AND NOT a.attisdropped AND {user_schema}
         UNION ALL
         SELECT 'policy ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' roles=' || roles::text
                || ' using=' || coalesce(qual, '') || ' check=' || coalesce(with_check, '')
           FROM pg_policies WHERE schemaname NOT IN ('pgmcp','pgmcp_private')
         UNION ALL
         SELECT 'function ' || p.oid::regprocedure::text || ' definer=' || p.prosecdef || ' body=' || md5(p.prosrc)
                || ' acl=' || {pro_acl}
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_schema}
         UNION ALL
         SELECT 'extension ' || e.extname || ' ' || e.extversion || ' in ' || n.nspname
           FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         UNION ALL
         SELECT 'database acl=' || {db_acl} FROM pg_database WHERE datname = current_database()
         UNION ALL
         SELECT 'default acl ' || pg_get_userbyid(d.defaclrole) || ' ' || coalesce(n.nspname, '*') || ' ' || d.defaclobjtype::text
                || ' acl=' || {def_acl}
           FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
          WHERE {def_acl} <> ''
         ORDER BY 1",
        // A NULL access list means the default one: the same rights as the explicit default
        // that PostgreSQL writes on the first GRANT.
        nsp_acl = acl("coalesce(n.nspacl, acldefault('n', n.nspowner))"),
        rel_acl = acl("coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))"),
        att_acl = acl("a.attacl"),
        pro_acl = acl("coalesce(p.proacl, acldefault('f', p.proowner))"),
        db_acl = acl("coalesce(datacl, acldefault('d', datdba))"),
        def_acl = acl("d.defaclacl"),
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The SaaS schema as it exists before pg-mcp: an owner role apart from pg-mcp's, tables and
/// data (loaded as the superuser).
const SAAS_SCHEMA: &str = r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'saas_owner') THEN
    CREATE ROLE saas_owner NOLOGIN;
  END IF;
END $$;
CREATE SCHEMA saas AUTHORIZATION saas_owner;
SET ROLE saas_owner;
CREATE TABLE saas.organizations (org_id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE saas.projects (
  project_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES saas.organizations, name text NOT NULL);
CREATE TABLE saas.tasks (
  task_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES saas.organizations,
  project_id bigint NOT NULL REFERENCES saas.projects,
  title text NOT NULL, assignee text NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE INDEX ON saas.tasks (org_id);
CREATE TABLE saas.documents (
  doc_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES saas.organizations,
  title text NOT NULL, body text NOT NULL);
COMMENT ON TABLE saas.documents IS 'Knowledge-base articles of an organization';
-- Private to their author within the organization: the second verified value.
CREATE TABLE saas.notes (
  note_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_id bigint NOT NULL REFERENCES saas.organizations,
  author text NOT NULL, body text NOT NULL);
RESET ROLE;
INSERT INTO saas.organizations VALUES (1, 'Acme'), (2, 'Globex'), (3, 'Initech');
INSERT INTO saas.projects (org_id, name) VALUES (1, 'Rockets'), (1, 'Anvils'), (2, 'Domes'), (3, 'TPS');
INSERT INTO saas.tasks (org_id, project_id, title, assignee)
  SELECT p.org_id, p.project_id, p.name || ' task ' || g, 'alice'
    FROM saas.projects p, generate_series(1, p.project_id::int + 1) g;
INSERT INTO saas.documents (org_id, title, body) VALUES
  (1, 'Rocket safety', 'How to launch a rocket without hitting the roadrunner'),
  (1, 'Anvil storage', 'Keep heavy anvils on the ground floor, never on a cliff edge'),
  (1, 'Holiday rota', 'Who covers the office in December'),
  (2, 'Dome upkeep', 'Cleaning the glass of a volcano lair dome'),
  (2, 'Escape pods', 'Rocket launch checklist for the escape pods of the lair'),
  (3, 'TPS reports', 'Cover sheets go on every report');
INSERT INTO saas.notes (org_id, author, body) VALUES
  (1, 'alice', 'alice private note'), (1, 'bob', 'bob private note'), (2, 'alice', 'alice at globex');
"#;

/// The SaaS schema's row-level security, written once pg-mcp's functions exist: every tenant
/// table forced under policies against the verified context.
const SAAS_POLICIES: &str = r#"
SET ROLE saas_owner;
ALTER TABLE saas.organizations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE saas.projects ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE saas.tasks ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE saas.documents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE saas.notes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY by_org ON saas.organizations USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
CREATE POLICY by_org ON saas.projects USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
CREATE POLICY by_org ON saas.tasks USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
CREATE POLICY by_org ON saas.documents USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
CREATE POLICY by_author ON saas.notes
  USING (org_id = (SELECT pgmcp.tenant_id())::bigint AND author = (SELECT pgmcp.user_id()));
RESET ROLE;
"#;

/// A fresh database with the SaaS schema, pg-mcp migrated onto it (schema `saas` granted),
/// then the policies; a superuser pool on it.
async fn saas_database(name: &str) -> PgPool {
    let admin = fresh_database(name).await;
    sqlx::raw_sql(SAAS_SCHEMA).execute(&admin).await.unwrap();
    let out = pg_mcp_on(name, &["migrate"], &[("PG_MCP_SCHEMAS", "saas")]).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    sqlx::raw_sql(SAAS_POLICIES).execute(&admin).await.unwrap();
    admin
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A bearer token for organization `org` (a JSON number, as identity providers send ids)
/// and, optionally, user `sub`.
fn token(org: Value, sub: Option<&str>) -> String {
    let mut claims = json!({ "org_id": org, "exp": now() + 600 });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn client_for(server: &TestServer, org: i64, sub: Option<&str>) -> McpClient {
    McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[(
            "authorization",
            format!("Bearer {}", token(json!(org), sub)),
        )],
    )
    .await
}

/// The SaaS documents as a declared embedding source.
const DOCUMENTS_SOURCE: &str = r#"[{"name": "documents", "table": "saas.documents", "key": "doc_id",
  "text": ["title", "body"], "columns": ["doc_id", "org_id", "title"],
  "description": "knowledge-base articles"}]"#;

/// The local model's directory, absolute, for child processes.
fn model_dir() -> String {
    let root =
        std::env::var("PG_MCP_TEST_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    format!("{root}/.cache/models/all-MiniLM-L6-v2")
}

/// `pg-mcp embed` of the documents source, with the local model.
async fn embed_documents(database: &str) -> Output {
    pg_mcp_on(
        database,
        &["embed"],
        &[
            ("PG_MCP_EMBEDDING_SOURCES", DOCUMENTS_SOURCE.into()),
            ("PG_MCP_LOCAL_MODEL_DIR", model_dir()),
        ],
    )
    .await
}

/// A server on the SaaS database: JWT mode, a bigint tenant from `org_id`, the user from `sub`,
/// only schema `saas` exposed, the documents as an embedding source.
async fn saas_server(database: &str, guard_off: bool) -> TestServer {
    saas_server_with(database, guard_off, DOCUMENTS_SOURCE).await
}

async fn saas_server_with(database: &str, guard_off: bool, sources: &str) -> TestServer {
    let url = with_database(&env().app_url, database);
    TestServer::start_with(|c| {
        c.embeddings.embedding_sources = Some(sources.into());
        c.embeddings.local_model_dir = model_dir().into();
        c.database_url = Some(url.into());
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.into());
        c.context = vec!["tenant:bigint".into(), "user:text".into()];
        c.context_claims = vec!["tenant=org_id".into(), "user=sub".into()];
        c.schemas = vec!["saas".into()];
        c.unsafe_disable_sql_guard = guard_off;
    })
    .await
}

async fn admin_count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_leaves_an_unseen_schema_untouched_and_every_tool_works_per_organization() {
    const DB: &str = "pgmcp_byo_saas";
    let admin = fresh_database(DB).await;
    sqlx::raw_sql(SAAS_SCHEMA).execute(&admin).await.unwrap();
    let before = catalog_snapshot(&admin).await;

    let out = pg_mcp_on(DB, &["migrate"], &[("PG_MCP_SCHEMAS", "saas")]).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    assert!(
        stderr(&out).contains("pgmcp_app may read schemas saas"),
        "{}",
        stderr(&out)
    );
    let after = catalog_snapshot(&admin).await;
    assert_eq!(
        before, after,
        "pg-mcp migrate changed the database outside pg-mcp's own schemas and roles"
    );
    sqlx::raw_sql(SAAS_POLICIES).execute(&admin).await.unwrap();
    // Nothing of pg-mcp's in public, not even its migration history.
    assert_eq!(
        admin_count(&admin, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'").await,
        0
    );

    let server = saas_server(DB, false).await;
    // Ground truth, per organization, as the superuser.
    let mut truth = BTreeMap::new();
    for org in 1..=3_i64 {
        truth.insert(
            org,
            admin_count(
                &admin,
                &format!("SELECT count(*) FROM saas.tasks WHERE org_id = {org}"),
            )
            .await,
        );
    }
    let total = admin_count(&admin, "SELECT count(*) FROM saas.tasks").await;
    let mut seen_sum = 0;
    for (org, expected) in &truth {
        let mut c = client_for(&server, *org, Some("alice")).await;
        let out = c
            .query("SELECT count(*), pgmcp.tenant_id(), pgmcp.user_id(), (SELECT count(*) FROM saas.organizations) FROM saas.tasks")
            .await
            .ok();
        assert_eq!(
            out["rows"][0],
            json!([expected, org.to_string(), "alice", 1]),
            "org {org} sees its own tasks and its own organization only"
        );
        seen_sum += out["rows"][0][0].as_i64().unwrap();
    }
    assert_eq!(seen_sum, total, "per-organization counts sum to the total");
    let mut stranger = client_for(&server, 99, None).await;
    assert_eq!(
        stranger
            .query("SELECT count(*) FROM saas.tasks")
            .await
            .scalar(),
        json!(0),
        "an organization with no rows sees none"
    );

    // The second verified value: notes are private to their author within the organization.
    let mut alice = client_for(&server, 1, Some("alice")).await;
    let mut bob = client_for(&server, 1, Some("bob")).await;
    let mut nobody = client_for(&server, 1, None).await;
    let notes = "SELECT coalesce(string_agg(body, ',' ORDER BY note_id), '') FROM saas.notes";
    assert_eq!(
        alice.query(notes).await.scalar(),
        json!("alice private note")
    );
    assert_eq!(bob.query(notes).await.scalar(), json!("bob private note"));
    assert_eq!(
        nobody.query(notes).await.scalar(),
        json!(""),
        "no user claim, no notes"
    );

    // Every tool, on a schema pg-mcp has never seen: the demo's product search is not listed,
    // semantic_search (a source is declared) is.
    let mut listed: Vec<String> = alice
        .list_tools()
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = TOOLS
        .into_iter()
        .filter(|t| *t != "semantic_search_products")
        .chain(["semantic_search"])
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    let tables = alice.call("list_tables", json!({})).await.ok();
    let names = table_names(&tables);
    assert_eq!(
        names,
        [
            "saas.documents",
            "saas.notes",
            "saas.organizations",
            "saas.projects",
            "saas.tasks"
        ],
        "only the exposed schema is listed"
    );
    let schema = alice
        .call("get_table_schema", json!({"table_name": "saas.tasks"}))
        .await
        .ok();
    assert_eq!(schema["rls_enabled"], json!(true), "{schema}");
    assert_eq!(
        schema["foreign_keys"].as_array().map(Vec::len),
        Some(2),
        "{schema}"
    );
    let several = alice
        .call(
            "get_multiple_table_schemas",
            json!({"table_names": ["saas.projects", "saas.documents"]}),
        )
        .await
        .ok();
    assert_eq!(several["errors"], json!(0), "{several}");
    let plan = alice
        .call(
            "explain_query",
            json!({"sql": "SELECT * FROM saas.tasks WHERE done", "analyze": true}),
        )
        .await
        .ok();
    assert!(plan.to_string().contains("tasks"), "{plan}");
    let params = alice
        .call(
            "execute_query",
            json!({"sql": "SELECT title FROM saas.documents WHERE org_id = $1", "params": [2]}),
        )
        .await
        .ok();
    assert_eq!(
        params["row_count"],
        json!(0),
        "another organization's id as a parameter finds nothing"
    );
    let health = alice.call("health_check", json!({})).await.ok();
    assert_eq!(health["is_healthy"], json!(true), "{health}");
    let metrics = alice.call("get_metrics", json!({})).await.ok();
    assert!(metrics["total_queries"].as_u64().unwrap() > 0, "{metrics}");

    // Semantic search over a declared source ranks only the caller's organization's rows:
    // Globex has a rocket-launch article too, and Acme never sees it.
    let embed = embed_documents(DB).await;
    assert!(embed.status.success(), "embed: {}", stderr(&embed));
    assert!(
        stderr(&embed).contains("source documents: embedded 6 of 6 rows"),
        "{}",
        stderr(&embed)
    );
    let launch =
        json!({"source": "documents", "query": "launching a rocket", "similarity_threshold": 0});
    for (mut client, org, top) in [
        (client_for(&server, 1, None).await, 1, "Rocket safety"),
        (client_for(&server, 2, None).await, 2, "Escape pods"),
    ] {
        let found = client.call("semantic_search", launch.clone()).await.ok();
        let rows = found["rows"].as_array().unwrap();
        assert!(
            rows.len() >= 2,
            "the organization's related articles: {found}"
        );
        assert!(
            rows.iter().all(|r| r["row"]["org_id"] == json!(org)),
            "only the caller's organization's rows: {found}"
        );
        assert_eq!(rows[0]["row"]["title"], json!(top), "{found}");
        assert!(
            rows[0]["similarity_percent"].as_f64().unwrap()
                > rows[rows.len() - 1]["similarity_percent"].as_f64().unwrap()
        );
    }
    let unknown = alice
        .call(
            "semantic_search",
            json!({"source": "tickets", "query": "x"}),
        )
        .await;
    assert_eq!(unknown.error_code(), Some("VALIDATION_ERROR"));
    assert_eq!(
        unknown.structured["details"]["sources"][0]["source"],
        json!("documents")
    );
    // A second run embeds nothing new; with the guard off, the embeddings table itself shows
    // only the caller's organization's vectors.
    let again = embed_documents(DB).await;
    assert!(
        stderr(&again).contains("embedded 0 of 6 rows"),
        "{}",
        stderr(&again)
    );
    let unguarded = saas_server(DB, true).await;
    let mut acme = client_for(&unguarded, 1, None).await;
    assert_eq!(
        acme.query("SELECT count(*) FROM pgmcp_embeddings.src_documents")
            .await
            .scalar(),
        json!(3),
        "Acme's three documents' vectors, no other organization's"
    );
    // A filter embeds only the rows it admits; rows deleted from the source lose their vectors.
    let filtered = pg_mcp_on(
        DB,
        &["embed"],
        &[
            (
                "PG_MCP_EMBEDDING_SOURCES",
                r#"[{"name": "titles", "table": "saas.documents", "key": "doc_id", "text": ["title"], "filter": "s.title LIKE 'R%' OR s.title LIKE 'E%'"}]"#.into(),
            ),
            ("PG_MCP_LOCAL_MODEL_DIR", model_dir()),
        ],
    )
    .await;
    assert!(
        stderr(&filtered).contains("source titles: embedded 2 of 2 rows"),
        "{}",
        stderr(&filtered)
    );
    sqlx::raw_sql("DELETE FROM saas.documents WHERE title = 'Holiday rota'")
        .execute(&admin)
        .await
        .unwrap();
    let pruned = embed_documents(DB).await;
    assert!(
        stderr(&pruned).contains("embedded 0 of 5 rows") && stderr(&pruned).contains("1 removed"),
        "{}",
        stderr(&pruned)
    );

    // A table that already has vectors is searched in place, under its own policies; a vector
    // column of other dimensions than the provider's is refused with the reason.
    sqlx::raw_sql(
        "CREATE TABLE saas.doc_vectors (doc_id bigint PRIMARY KEY, org_id bigint NOT NULL,
                                        embedding vector(384) NOT NULL, tiny vector(3) NOT NULL DEFAULT '[1,2,3]');
         INSERT INTO saas.doc_vectors (doc_id, org_id, embedding)
           SELECT d.doc_id, d.org_id, e.embedding::vector(384)
             FROM saas.documents d JOIN pgmcp_embeddings.src_documents e ON e.source_key = d.doc_id;
         ALTER TABLE saas.doc_vectors OWNER TO saas_owner;
         ALTER TABLE saas.doc_vectors ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
         CREATE POLICY by_org ON saas.doc_vectors USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
         GRANT SELECT ON saas.doc_vectors TO pgmcp_app;",
    )
    .execute(&admin)
    .await
    .unwrap();
    let vector_sources = r#"[
      {"name": "doc_vectors", "table": "saas.doc_vectors", "key": "doc_id", "vector_column": "embedding", "columns": ["doc_id", "org_id"]},
      {"name": "tiny", "table": "saas.doc_vectors", "key": "doc_id", "vector_column": "tiny"}]"#;
    let in_place = saas_server_with(DB, false, vector_sources).await;
    let mut globex = client_for(&in_place, 2, None).await;
    let found = globex
        .call("semantic_search", json!({"source": "doc_vectors", "query": "launching a rocket", "similarity_threshold": 0}))
        .await
        .ok();
    let rows = found["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["row"]["org_id"] == json!(2)),
        "{found}"
    );
    assert_eq!(rows[0]["key"], json!("5"), "Escape pods first: {found}");
    let mismatch = globex
        .call(
            "semantic_search",
            json!({"source": "tiny", "query": "rockets"}),
        )
        .await;
    assert_eq!(
        mismatch.error_code(),
        Some("VALIDATION_ERROR"),
        "{}",
        mismatch.structured
    );
    assert!(mismatch.text.contains("3 dimensions"), "{}", mismatch.text);

    // A schema outside PG_MCP_SCHEMAS is refused by name, with the reason.
    let hidden = alice
        .query("SELECT * FROM pgmcp_private.tenant_signing_key")
        .await;
    assert_eq!(
        hidden.error_code(),
        Some("UNSAFE_SQL"),
        "{}",
        hidden.structured
    );
    assert!(hidden.text.contains("not exposed"), "{}", hidden.text);

    // A token whose org claim is not a bigint is refused before any SQL runs.
    let resp = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {}", token(json!("acme"), None)))
        .body(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("whole number"),
        "{body}"
    );

    // The clean schema gives the doctor nothing to report.
    let doctor = pg_mcp_on(DB, &["doctor", "--json"], &[("PG_MCP_SCHEMAS", "saas")]).await;
    let report: Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stderr(&doctor)));
    assert_eq!(report[0]["findings"], json!([]), "{report}");
    assert_eq!(report[0]["tables_checked"], json!(6), "{report}");
    assert_eq!(doctor.status.code(), Some(0), "{}", stderr(&doctor));
    // The same audit for operators, from the running server (loopback: no admin token needed).
    let live: Value = server.get("/doctor").await.json().await.unwrap();
    assert_eq!(live["clean"], json!(true), "{live}");
    assert_eq!(live["databases"][0]["role"], json!("pgmcp_app"), "{live}");
}

/// With the SQL guard off, SQL that writes the context itself gets no other organization's
/// rows: in the same statement, as a session setting for the next call, or with a token copied
/// from another organization's transaction.
#[tokio::test]
async fn with_the_guard_off_a_forged_context_sees_no_other_organization() {
    const DB: &str = "pgmcp_byo_forge";
    saas_database(DB).await;
    let server = saas_server(DB, true).await;
    let mut globex = client_for(&server, 2, Some("alice")).await;
    let seen = globex
        .query("SELECT current_setting('pgmcp.context'), current_setting('pgmcp.context_token')")
        .await
        .ok();
    let (context, token) = (seen["rows"][0][0].clone(), seen["rows"][0][1].clone());
    assert_eq!(context, json!("tenant=2;user=alice"));

    let mut acme = client_for(&server, 1, Some("alice")).await;
    let others = "(SELECT count(*) FROM saas.tasks WHERE org_id <> 1)";
    for (sql, params) in [
        (
            format!("SELECT set_config('pgmcp.context', 'tenant=2;user=alice', true), {others}"),
            json!([]),
        ),
        (
            format!(
                "SELECT set_config('pgmcp.context', $1, true), set_config('pgmcp.context_token', $2, true), {others}"
            ),
            json!([context, token]),
        ),
        (
            format!(
                "SELECT set_config('pgmcp.context', $1, false), set_config('pgmcp.context_token', $2, false), {others}"
            ),
            json!([context, token]),
        ),
    ] {
        let others = acme
            .call("execute_query", json!({"sql": sql, "params": params}))
            .await
            .first_row_last();
        assert_eq!(others, json!(0), "{sql}: no other organization's rows");
        // The next call on the connection is Acme again.
        let next = acme
            .query(&format!(
                "SELECT pgmcp.tenant_id(), {others}, (SELECT count(*) FROM saas.tasks)"
            ))
            .await
            .ok();
        assert_eq!(next["rows"][0][0], json!("1"));
        assert_eq!(next["rows"][0][1], json!(0));
        assert!(next["rows"][0][2].as_i64().unwrap() > 0);
    }
}

/// Header mode with configured headers: a bigint tenant from `x-org-id` and the user from
/// `x-user-id` reach the same verified functions; a malformed value is refused with 400 naming
/// the header, before any SQL.
#[tokio::test]
async fn header_mode_carries_configured_values_by_their_headers() {
    const DB: &str = "pgmcp_byo_headers";
    saas_database(DB).await;
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.context = vec!["tenant:bigint".into(), "user:text".into()];
        c.context_headers = vec!["tenant=x-org-id".into(), "user=x-user-id".into()];
    })
    .await;
    let mut bob = McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("x-org-id", "1".into()), ("x-user-id", "bob".into())],
    )
    .await;
    let out = bob
        .query("SELECT pgmcp.context(), (SELECT string_agg(body, ',') FROM saas.notes), (SELECT count(DISTINCT org_id) FROM saas.tasks)")
        .await
        .ok();
    assert_eq!(
        out["rows"][0],
        json!(["tenant=1;user=bob", "bob private note", 1])
    );
    // The default tenant header means nothing here.
    let mut stray = server.client(Some("2")).await;
    let refused = stray.query("SELECT 1").await;
    assert_eq!(
        refused.error_code(),
        Some("TENANT_REQUIRED"),
        "{}",
        refused.structured
    );
    assert!(refused.text.contains("x-org-id"), "{}", refused.text);
    for (header, value) in [("x-org-id", "acme"), ("x-user-id", "bob; tenant=2")] {
        let mut headers = vec![("x-org-id", "1".to_string())];
        headers.retain(|(h, _)| *h != header);
        headers.push((header, value.to_string()));
        let mut req = reqwest::Client::new()
            .post(server.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (h, v) in &headers {
            req = req.header(*h, v);
        }
        let resp = req
            .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{header}: {value}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error_code"], json!("INVALID_TENANT"), "{body}");
        assert!(body["message"].as_str().unwrap().contains(header), "{body}");
    }
}

/// The broken schema: one planted fault per finding id.
const BROKEN_SCHEMA: &str = r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'broken_owner') THEN
    CREATE ROLE broken_owner NOLOGIN;
  END IF;
END $$;
CREATE SCHEMA app AUTHORIZATION broken_owner;
CREATE SCHEMA internal AUTHORIZATION broken_owner;
SET ROLE broken_owner;
-- A correct table, as a control: nothing is reported for it.
CREATE TABLE app.good (id int PRIMARY KEY, org_id bigint NOT NULL);
ALTER TABLE app.good ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY by_org ON app.good USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
-- rls_disabled
CREATE TABLE app.open_table (id int PRIMARY KEY, org_id bigint NOT NULL);
-- rls_without_policy
CREATE TABLE app.no_policy (id int PRIMARY KEY, org_id bigint NOT NULL);
ALTER TABLE app.no_policy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- policy_unverified: a plain setting anyone can set
CREATE TABLE app.forgeable (id int PRIMARY KEY, org_id bigint NOT NULL);
ALTER TABLE app.forgeable ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY by_setting ON app.forgeable USING (org_id = current_setting('app.org', true)::bigint);
-- view_without_security_invoker: runs with the owner's rights over an RLS table
CREATE VIEW app.good_summary AS SELECT org_id, count(*) AS n FROM app.good GROUP BY org_id;
-- materialized_view_over_rls
CREATE MATERIALIZED VIEW app.good_snapshot AS SELECT * FROM app.good;
-- definer_function_reads_rls
CREATE FUNCTION app.count_good() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $f$ SELECT count(*) FROM app.good $f$;
-- exposed_beyond_schemas: readable, but schema internal is not in PG_MCP_SCHEMAS
CREATE TABLE internal.secrets (id int PRIMARY KEY, org_id bigint NOT NULL);
ALTER TABLE internal.secrets ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY by_org ON internal.secrets USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
RESET ROLE;
-- role_owns_table: a table owned by the application role itself
CREATE TABLE app.owned_by_app (id int PRIMARY KEY);
"#;

/// Faults that need pg-mcp's role to exist (granted after `pg-mcp migrate`).
const BROKEN_GRANTS: &str = r#"
ALTER TABLE app.owned_by_app OWNER TO pgmcp_app;
GRANT USAGE ON SCHEMA internal TO pgmcp_app;
GRANT SELECT ON internal.secrets TO pgmcp_app;
-- write_grant_in_read_only_mode
GRANT INSERT ON app.good TO pgmcp_app;
-- rls_not_forced: the role may act as the owner of a table whose RLS is not forced
CREATE TABLE app.unforced (id int PRIMARY KEY, org_id bigint NOT NULL);
ALTER TABLE app.unforced OWNER TO broken_owner;
ALTER TABLE app.unforced ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_org ON app.unforced USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
GRANT SELECT ON app.unforced TO pgmcp_app;
GRANT broken_owner TO pgmcp_app;
"#;

#[tokio::test]
async fn doctor_reports_each_planted_fault_with_its_finding_id() {
    const DB: &str = "pgmcp_byo_broken";
    let admin = fresh_database(DB).await;
    // The planted faults reference pg-mcp's functions: migrate first (no grants yet).
    let out = pg_mcp_on(DB, &["migrate"], NO_SETTINGS).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    sqlx::raw_sql(BROKEN_SCHEMA).execute(&admin).await.unwrap();
    let out = pg_mcp_on(DB, &["migrate"], &[("PG_MCP_SCHEMAS", "app")]).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    sqlx::raw_sql(BROKEN_GRANTS).execute(&admin).await.unwrap();

    let doctor = pg_mcp_on(DB, &["doctor", "--json"], &[("PG_MCP_SCHEMAS", "app")]).await;
    // The role membership planted above must not outlive the test database.
    sqlx::raw_sql("REVOKE broken_owner FROM pgmcp_app")
        .execute(&admin)
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stderr(&doctor)));
    assert_eq!(doctor.status.code(), Some(1), "findings exit 1: {report}");
    let found: Vec<(String, String)> = report[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (id, object) in [
        ("rls_disabled", "app.open_table"),
        ("rls_without_policy", "app.no_policy"),
        ("policy_unverified", "app.forgeable policy by_setting"),
        ("view_without_security_invoker", "app.good_summary"),
        ("materialized_view_over_rls", "app.good_snapshot"),
        ("definer_function_reads_rls", "app.count_good()"),
        ("exposed_beyond_schemas", "internal.secrets"),
        ("role_owns_table", "app.owned_by_app"),
        ("write_grant_in_read_only_mode", "app.good"),
        ("rls_not_forced", "app.unforced"),
    ] {
        assert!(
            found.iter().any(|(i, o)| i == id && o == object),
            "doctor should report {id} on {object}; it found {found:?}"
        );
    }
    assert!(
        !found
            .iter()
            .any(|(i, o)| o == "app.good" && i != "write_grant_in_read_only_mode"),
        "the correct table has no other finding: {found:?}"
    );
    for finding in report[0]["findings"].as_array().unwrap() {
        assert!(!finding["fix"].as_str().unwrap().is_empty(), "{finding}");
    }
    // The human report says the same, with the fixes.
    let text = pg_mcp_on(DB, &["doctor"], &[("PG_MCP_SCHEMAS", "app")]).await;
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert!(
        text_out.contains("rls_disabled") && text_out.contains("fix: ALTER TABLE app.open_table"),
        "{text_out}"
    );

    // No database to talk to: exit 2, not a report.
    let mut cmd = pg_mcp_command("doctor");
    cmd.env(
        "PG_MCP_DATABASE_URL",
        "postgres://pgmcp_app:x@127.0.0.1:1/none",
    );
    let unreachable = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        stderr(&unreachable)
    );
}

/// A Zava-style database: policies read the plain setting, as the original sample's do.
const ZAVA_SCHEMA: &str = r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'zava_owner') THEN
    CREATE ROLE zava_owner NOLOGIN;
  END IF;
END $$;
CREATE SCHEMA zava AUTHORIZATION zava_owner;
SET ROLE zava_owner;
CREATE TABLE zava.stores (store_id int PRIMARY KEY, rls_user_id uuid NOT NULL);
CREATE TABLE zava.orders (order_id int PRIMARY KEY, store_id int NOT NULL REFERENCES zava.stores);
ALTER TABLE zava.orders ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_manager ON zava.orders USING (store_id IN (
  SELECT store_id FROM zava.stores
   WHERE rls_user_id = current_setting('app.current_rls_user_id', true)::uuid));
RESET ROLE;
INSERT INTO zava.stores VALUES (1, 'f47ac10b-58cc-4372-a567-0e02b2c3d479'), (2, '305e8c20-9d60-47e1-ab30-3525e8128e98');
INSERT INTO zava.orders SELECT g, 1 + g % 2 FROM generate_series(1, 9) g;
"#;

#[tokio::test]
async fn a_zava_style_database_works_unchanged_in_compatibility_mode() {
    const DB: &str = "pgmcp_byo_zava";
    let admin = fresh_database(DB).await;
    sqlx::raw_sql(ZAVA_SCHEMA).execute(&admin).await.unwrap();
    let compat = [
        ("PG_MCP_SCHEMAS", "zava".to_string()),
        (
            "PG_MCP_COMPAT_SETTINGS",
            "tenant=app.current_rls_user_id".to_string(),
        ),
        ("PG_MCP_SHARED_TABLES", "zava.stores".to_string()),
    ];
    let out = pg_mcp_on(DB, &["migrate"], &compat).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.compat_settings = vec!["tenant=app.current_rls_user_id".into()];
    })
    .await;
    let mut seattle = server
        .client(Some("f47ac10b-58cc-4372-a567-0e02b2c3d479"))
        .await;
    let mut bellevue = server
        .client(Some("305e8c20-9d60-47e1-ab30-3525e8128e98"))
        .await;
    let per_store = "SELECT count(*), min(store_id), max(store_id) FROM zava.orders";
    assert_eq!(
        seattle.query(per_store).await.ok()["rows"],
        json!([[4, 1, 1]])
    );
    assert_eq!(
        bellevue.query(per_store).await.ok()["rows"],
        json!([[5, 2, 2]])
    );

    let doctor = pg_mcp_on(DB, &["doctor", "--json"], &compat).await;
    let report: Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", stderr(&doctor)));
    let ids: Vec<&str> = report[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["policy_reads_plain_setting"], "{report}");
    assert_eq!(doctor.status.code(), Some(1));
}
