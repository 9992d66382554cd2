//! pg-mcp's integration tests, in one test binary: one link instead of one per file saves
//! minutes of build time and gigabytes of disk on a 2-core CI machine. Each module is one area
//! (`cargo nextest run -E 'test(/^security::/)'` or `scripts/test.sh security::` runs one).

// Helpers are shared by many modules; not every module uses every one.
#![allow(dead_code)]

mod common;
mod stub_chat;
mod stub_embeddings;

mod audit_log;
mod byo_database;
mod connections;
mod dba;
mod deploy_config;
mod embedders_http;
mod fast_path;
mod health_and_types;
mod isolation;
mod kubernetes;
mod local_embedder;
mod mcp_foundation;
mod nl_query;
mod oauth;
mod ops;
mod otel;
mod pgbouncer;
mod real_clients;
mod reload;
mod replicas;
mod scale_out;
mod schema_surface;
mod security;
mod seed_determinism;
mod semantic_search;
mod shutdown;
mod stdio;
mod write_mode;
