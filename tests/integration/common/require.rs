//! Test dependencies that must be present: a check that cannot run must not count as passed.
//!
//! A test whose database, model or third-party client is missing fails with a message saying
//! how to install it (`scripts/test.sh` installs everything). There is no opt-out.

/// Something a test needs and cannot run without.
pub struct Dependency {
    /// A short name for the failure message.
    pub name: &'static str,
    pub what: &'static str,
    pub how_to_install: &'static str,
}

pub const CLIENTS: Dependency = Dependency {
    name: "clients",
    what: "the third-party MCP clients (MCP Python SDK, MCP Inspector; PG_MCP_TEST_CLIENTS_DIR)",
    how_to_install: "run scripts/test.sh, which installs them with scripts/install-client-tools.sh",
};

pub const NGINX: Dependency = Dependency {
    name: "nginx",
    what: "nginx (on PATH or in /usr/sbin)",
    how_to_install: "run scripts/test.sh, which installs it with scripts/install-client-tools.sh",
};

pub const PGBOUNCER: Dependency = Dependency {
    name: "pgbouncer",
    what: "PgBouncer (on PATH or in /usr/sbin)",
    how_to_install: "run scripts/test.sh, which installs it with scripts/install-client-tools.sh",
};

pub const POSTGRES_BINARIES: Dependency = Dependency {
    name: "postgres binaries",
    what: "the local PostgreSQL binaries, pg_basebackup and postgres (PG_MCP_TEST_PG_BIN)",
    how_to_install: "run the tests with scripts/test.sh, which sets PG_MCP_TEST_PG_BIN to scripts/dev-db.sh's PostgreSQL",
};

pub const MODEL: Dependency = Dependency {
    name: "model",
    what: "the local embeddings model all-MiniLM-L6-v2 (PG_MCP_MODEL_DIR or .cache/models)",
    how_to_install: "run scripts/fetch-model.sh (scripts/test.sh runs it)",
};

pub const DATABASE: Dependency = Dependency {
    name: "database",
    what: "the test database (PG_MCP_TEST_ADMIN_URL)",
    how_to_install: "run the tests with scripts/test.sh, which starts and seeds PostgreSQL",
};

/// `found`, or a panic naming the missing dependency and how to install it. There is no
/// opt-out: a test that cannot run fails (filter tests with `cargo nextest -E` to run fewer).
pub fn dependency<T>(test: &str, dep: &Dependency, found: Option<T>) -> T {
    match found {
        Some(value) => value,
        None => panic!("{}", missing_message(test, dep)),
    }
}

fn missing_message(test: &str, dep: &Dependency) -> String {
    format!(
        "{test}: missing dependency `{}`: {}; {}. A check that cannot run fails rather than passing.",
        dep.name, dep.what, dep.how_to_install
    )
}

#[test]
fn a_present_dependency_is_returned() {
    assert_eq!(dependency("t", &MODEL, Some(7)), 7);
}

#[test]
#[should_panic(expected = "missing dependency `model`")]
fn a_missing_dependency_fails_the_test() {
    dependency::<()>("t", &MODEL, None);
}

#[test]
fn the_failure_says_how_to_install() {
    for dep in [
        &CLIENTS,
        &NGINX,
        &PGBOUNCER,
        &POSTGRES_BINARIES,
        &MODEL,
        &DATABASE,
    ] {
        let message = missing_message("some_test", dep);
        assert!(
            message.starts_with("some_test: missing dependency"),
            "{message}"
        );
        assert!(message.contains(dep.how_to_install), "{message}");
    }
}
