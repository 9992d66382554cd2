//! pg-mcp: a Model Context Protocol server for PostgreSQL where every tool call runs under
//! the caller's row-level-security tenant. See `README.md` and `../shared/design.md`.

pub mod audit;
pub mod auth;
pub mod config;
pub mod config_file;
pub mod db;
pub mod doctor;
pub mod error;
pub mod exposure;
pub mod history;
pub mod http;
pub mod limits;
pub mod mcp;
pub mod nl;
pub mod otel;
pub mod reload;
pub mod schema;
pub mod search;
pub mod server;
pub mod sql;
pub mod state;
pub mod telemetry;
pub mod tools;
pub mod untrusted;
