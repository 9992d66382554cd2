//! `/health` follows the database down and back up; every PostgreSQL type keeps its meaning
//! in JSON.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::process::free_port;
use crate::common::*;
use serde_json::{Value, json};

/// A private PostgreSQL cluster for tests that stop the database.
struct PrivateCluster {
    dir: PathBuf,
    port: u16,
    vars: Vec<(String, String)>,
}

impl PrivateCluster {
    fn script(&self, arg: &str) -> std::process::Output {
        let root =
            std::env::var("PG_MCP_TEST_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        Command::new(format!("{root}/scripts/dev-db.sh"))
            .arg(arg)
            .env("PG_MCP_DEV_DIR", &self.dir)
            .env("PG_MCP_DEV_DB_PORT", self.port.to_string())
            .output()
            .expect("run dev-db.sh")
    }

    /// Runs `dev-db.sh <arg>`, which must succeed.
    fn run(&self, arg: &str) {
        let out = self.script(arg);
        assert!(
            out.status.success(),
            "dev-db {arg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        self.run("start");
    }

    fn stop(&self) {
        self.run("stop");
    }

    fn new() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("pg-mcp-health-{}-{port}", std::process::id()));
        let mut cluster = Self {
            dir,
            port,
            vars: vec![],
        };
        cluster.start();
        let env = String::from_utf8(cluster.script("env").stdout).unwrap();
        cluster.vars = env
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        let migrate = Command::new(env!("CARGO_BIN_EXE_pg-mcp"))
            .arg("migrate")
            .envs(cluster.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        cluster
    }

    fn var(&self, k: &str) -> String {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.script("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn health(server: &TestServer) -> (u16, Value) {
    let resp = server.get("/health").await;
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn health_follows_the_database_down_and_back_up() {
    let cluster = PrivateCluster::new();
    let app_url = cluster.var("PG_MCP_DATABASE_URL");
    let key = cluster.var("PG_MCP_TENANT_SIGNING_KEY");
    let server = TestServer::start_with(move |c| {
        c.database_url = Some(app_url.into());
        c.tenant_signing_key = Some(key.into());
        c.pool_acquire_timeout_ms = 1_000;
    })
    .await;
    let mut client = server.client(Some(HEAD_OFFICE)).await;

    let (status, body) = health(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["database_reachable"], true);
    assert_eq!(
        body["databases"][0]["server_version"]
            .as_str()
            .unwrap()
            .split('.')
            .next(),
        Some("18")
    );
    assert!(body["uptime_seconds"].is_u64());
    assert!(body.to_string().contains("pgmcp_app"));
    assert!(
        !body
            .to_string()
            .contains(&cluster.var("PG_MCP_APP_PASSWORD")),
        "no password in /health"
    );
    assert_eq!(client.query("SELECT 1").await.scalar(), json!(1));

    assert_eq!(server.status("/health/ready").await, 200);

    cluster.stop();
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(server.status("/health/ready").await, 503);
    assert_eq!(
        server.status("/health/live").await,
        200,
        "the process is alive"
    );
    assert_eq!(body["database_reachable"], false);
    assert!(body["databases"][0]["last_error"].is_string());
    let started = Instant::now();
    let out = client.query("SELECT 1").await;
    assert_eq!(
        out.error_code(),
        Some("CONNECTION_ERROR"),
        "{}",
        out.structured
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no unbounded wait"
    );

    cluster.start();
    let recovered = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || (health(&server).await.0 == 200).then_some(()),
    )
    .await;
    assert!(recovered.is_some(), "health did not recover");
    assert_eq!(
        client.query("SELECT 1").await.scalar(),
        json!(1),
        "tools recover too"
    );
}

#[tokio::test]
async fn every_type_keeps_its_meaning_in_json() {
    let admin = admin_pool().await;
    for stmt in [
        "CREATE SCHEMA IF NOT EXISTS fidelity",
        "DROP TABLE IF EXISTS fidelity.all_types",
        "DROP TYPE IF EXISTS fidelity.mood",
        "CREATE TYPE fidelity.mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE TABLE fidelity.all_types (
            i2 int2, i4 int4, i8 int8, n numeric, n_big numeric, f4 float4, f8 float8, f_nan float8,
            b bool, t text, vc varchar(10), ch char(3), u uuid, d date, ts timestamp, tstz timestamptz,
            tm time, iv interval, j json, jb jsonb, arr int4[], arr2 text[][], m fidelity.mood,
            moods fidelity.mood[], by bytea, v vector(3), nothing text, inet_col inet)",
        "INSERT INTO fidelity.all_types VALUES (
            -32768, 2147483647, 9223372036854775807, 12345.6789, 123456789012345678901234567890.123456789,
            1.5, 2.25, 'NaN', true, 'héllo \"quoted\"', 'short', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '2025-02-28', '2025-02-28 13:14:15.123456', '2025-02-28 13:14:15+02', '23:59:59.5',
            '1 year 2 months 3 days 04:05:06.5', '{\"a\": [1, 2.5, null]}', '{\"b\": {\"c\": true}}',
            '{1,NULL,3}', '{{a,b},{c,d}}', 'happy', '{sad,ok}', '\\xdeadbeef', '[1,2.5,-3]', NULL, '10.0.0.1/8')",
        "GRANT USAGE ON SCHEMA fidelity TO pgmcp_app",
        "GRANT SELECT ON fidelity.all_types TO pgmcp_app",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt)).execute(&admin).await.unwrap();
    }
    let server = TestServer::start().await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    let out = c.query("SELECT * FROM fidelity.all_types").await.ok();
    let column = |field: &str| -> Vec<&str> {
        out["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[field].as_str().unwrap())
            .collect()
    };
    let (names, types) = (column("name"), column("type"));
    let row = out["rows"][0].as_array().unwrap();
    let get = |name: &str| row[names.iter().position(|n| *n == name).unwrap()].clone();
    let ty = |name: &str| types[names.iter().position(|n| *n == name).unwrap()];

    assert_eq!(get("i2"), json!(-32768));
    assert_eq!(get("i4"), json!(2147483647));
    assert_eq!(get("i8"), json!(9223372036854775807i64));
    assert_eq!(get("n"), json!("12345.6789"));
    assert_eq!(
        get("n_big"),
        json!("123456789012345678901234567890.123456789"),
        "no precision lost"
    );
    assert_eq!(get("f4"), json!(1.5));
    assert_eq!(get("f8"), json!(2.25));
    assert_eq!(get("f_nan"), json!("NaN"));
    assert_eq!(get("b"), json!(true));
    assert_eq!(get("t"), json!("héllo \"quoted\""));
    assert_eq!(get("vc"), json!("short"));
    assert_eq!(get("ch"), json!("ab "));
    assert_eq!(get("u"), json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(get("d"), json!("2025-02-28"));
    assert_eq!(get("ts"), json!("2025-02-28T13:14:15.123456"));
    assert_eq!(get("tstz"), json!("2025-02-28T11:14:15Z"));
    assert_eq!(get("tm"), json!("23:59:59.500"));
    assert_eq!(get("iv"), json!("P1Y2M3DT4H5M6.5S"));
    assert_eq!(get("j"), json!({"a": [1, 2.5, null]}));
    assert_eq!(get("jb"), json!({"b": {"c": true}}));
    assert_eq!(get("arr"), json!([1, null, 3]));
    assert_eq!(get("arr2"), json!([["a", "b"], ["c", "d"]]));
    assert_eq!(get("m"), json!("happy"));
    assert_eq!(ty("m"), "fidelity.mood");
    assert_eq!(get("moods"), json!(["sad", "ok"]));
    assert_eq!(get("by"), json!("\\xdeadbeef"));
    assert_eq!(get("v"), json!([1.0, 2.5, -3.0]));
    assert_eq!(ty("v"), "vector");
    assert_eq!(get("nothing"), Value::Null);
    assert_eq!(get("inet_col"), json!("10.0.0.1/8"));
    assert_eq!(ty("i8"), "int8");
    assert_eq!(ty("arr"), "int4[]");

    // Duplicate column names survive: rows are arrays aligned with columns.
    let dup = c
        .query("SELECT 1 AS a, 'x' AS a, NULL::int AS a")
        .await
        .ok();
    assert_eq!(dup["columns"].as_array().unwrap().len(), 3);
    assert_eq!(dup["rows"], json!([[1, "x", null]]));

    // Parameters bind by the type PostgreSQL inferred.
    let p = c
        .call(
            "execute_query",
            json!({"sql": "SELECT $1::int8 + 1, $2::numeric * 2, $3::date + 1, $4::jsonb -> 'k', $5::bool, $6::uuid, $7::text IS NULL",
                   "params": [41, "0.10000000000000000001", "2025-12-31", {"k": [1]}, true, SEATTLE, null]}),
        )
        .await
        .ok();
    assert_eq!(
        p["rows"],
        json!([[
            42,
            "0.20000000000000000002",
            "2026-01-01",
            [1],
            true,
            SEATTLE,
            true
        ]])
    );
}
