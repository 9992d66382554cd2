//! pg-mcp as an OAuth protected resource (issue 15): protected resource metadata (RFC 9728)
//! at both well-known paths, 401 challenges that point at it, the token's audience bound to
//! the resource URL (RFC 8707), and, against a real OpenID Provider (npm `oidc-provider`),
//! keys discovered from the issuer's metadata and its JWKS, refreshed when the provider
//! rotates them (rate-limited against forged key ids), and 403 `insufficient_scope`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::idp::IdentityProvider;
use crate::common::mcp_client::McpClient;
use crate::common::{SEATTLE, TestServer, test_config, wait_until};

const SECRET: &str = "oauth-test-secret-that-is-long-enough-for-hs256";
const RESOURCE: &str = "https://mcp.example.test/mcp";
const ISSUER: &str = "https://login.example.test";

fn token(audience: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "iss": ISSUER, "aud": audience, "exp": now + 600, "rls_user_id": SEATTLE}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// POSTs `initialize` to /mcp with `bearer` (if any): status, `WWW-Authenticate`, body.
async fn initialize(server: &TestServer, bearer: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .or_else(|_| {
            text.lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(|d| serde_json::from_str(d.trim()))
                .unwrap_or(Ok(Value::Null))
        })
        .unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test]
async fn the_server_is_a_protected_resource_with_discoverable_metadata() {
    let server = TestServer::start_with(|c| {
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.into());
        c.jwt_issuer = Some(ISSUER.into());
        c.resource_url = Some(RESOURCE.into());
        c.authorization_servers = vec![ISSUER.into()];
    })
    .await;

    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let meta: Value = server.get(path).await.json().await.unwrap();
        assert_eq!(meta["resource"], RESOURCE, "{path}: {meta}");
        assert_eq!(meta["authorization_servers"], json!([ISSUER]), "{meta}");
        assert_eq!(
            meta["bearer_methods_supported"],
            json!(["header"]),
            "{meta}"
        );
        let scopes = meta["scopes_supported"].to_string();
        assert!(
            scopes.contains("pgmcp:write") && scopes.contains("pgmcp:operator"),
            "{meta}"
        );
    }

    // No token: 401, and the challenge names the metadata.
    let (status, challenge, body) = initialize(&server, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer resource_metadata=\"https://mcp.example.test/.well-known/oauth-protected-resource/mcp\""
        ),
    );
    // A token for another audience is refused the same way; one for this resource works.
    let (status, challenge, body) =
        initialize(&server, Some(&token("https://other.test/mcp"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.unwrap().contains("resource_metadata="));
    assert!(body.to_string().contains("audience"), "{body}");
    let (status, _, body) = initialize(&server, Some(&token(RESOURCE))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["serverInfo"].is_object(), "{body}");
}

#[tokio::test]
async fn the_resource_url_is_checked_and_metadata_is_absent_without_it() {
    let mut config = test_config();
    config.resource_url = Some("not a url".into());
    assert!(
        config
            .validate()
            .unwrap_err()
            .message
            .contains("PG_MCP_RESOURCE_URL")
    );
    config.resource_url = Some(RESOURCE.into());
    config.jwt_audience = Some("pg-mcp".into());
    let mismatch = config.validate().unwrap_err().message;
    assert!(mismatch.contains("must equal"), "{mismatch}");

    let server = TestServer::start().await;
    assert_eq!(
        server.status("/.well-known/oauth-protected-resource").await,
        404
    );
}

/// `/mcp` with a bearer token.
async fn bearer(server: &TestServer, token: &str) -> McpClient {
    McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("authorization", format!("Bearer {token}"))],
    )
    .await
}

/// A `tools/call` of `tool` as `client`: HTTP status, `WWW-Authenticate`, reply.
async fn call_raw(client: &McpClient, tool: &str) -> (u16, Option<String>, Option<Value>) {
    let (status, headers, body) = client
        .post_raw(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": {}}}))
        .await;
    let challenge = headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, body)
}

/// The stores whose orders `client` sees.
async fn stores_seen(client: &mut McpClient) -> Value {
    client
        .query("SELECT array_agg(DISTINCT store_id ORDER BY store_id) FROM retail.orders")
        .await
        .scalar()
}

/// A token signed by a key the provider never published, naming key id `kid`.
fn forged(kid: &str, issuer: &str) -> String {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt_test_rsa_private.pem"
    ))
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    encode(
        &header,
        &json!({"sub": "mallory", "iss": issuer, "aud": RESOURCE, "exp": now + 600,
            "rls_user_id": SEATTLE, "scope": "pgmcp:read pgmcp:write pgmcp:operator"}),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_from_a_real_identity_provider_verify_through_its_rotating_keys() {
    let redmond = pg_mcp_demo::STORES[1].rls_user_id;
    let idp = IdentityProvider::start(
        "oauth::tokens_from_a_real_identity_provider_verify_through_its_rotating_keys",
        RESOURCE,
        SEATTLE,
        redmond,
    )
    .await;
    let issuer = idp.issuer();
    let server = TestServer::start_with(|c| {
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_issuer = Some(issuer.clone());
        c.resource_url = Some(RESOURCE.into());
        c.authorization_servers = vec![issuer.clone()];
        c.read_scope = "pgmcp:read".into();
        c.jwks_min_refresh_secs = 1;
        c.jwt_leeway_secs = 0;
        c.rate_limit_per_minute = 0;
    })
    .await;

    // Start-up discovered the JWKS from the issuer's metadata and loaded its one key.
    let health = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let health: Value = server.get("/health").await.json().await.unwrap();
            (health["auth"]["jwks"]["loaded"] == true).then_some(health)
        },
    )
    .await
    .expect("the JWKS loads at start-up");
    assert_eq!(health["auth"]["jwks"]["keys"], 1, "{health}");
    let (hits_at_start, kids) = idp.jwks_hits().await;
    assert_eq!(kids, ["key-1"]);

    // Each store's client sees only its store: the tenant is the provider's claim.
    let seattle_token = idp
        .token("seattle-reader", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    let mut seattle = bearer(&server, &seattle_token).await;
    assert_eq!(stores_seen(&mut seattle).await, json!([1]));
    let redmond_token = idp
        .token("redmond-reader", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    assert_eq!(
        stores_seen(&mut bearer(&server, &redmond_token).await).await,
        json!([2])
    );

    // Missing scopes: 403 insufficient_scope naming the scope, at the HTTP level.
    for (tool, scope) in [
        ("batch_execute", "pgmcp:write"),
        ("db_overview", "pgmcp:operator"),
        ("add_connection", "pgmcp:operator"),
    ] {
        let (status, challenge, body) = call_raw(&seattle, tool).await;
        assert_eq!(status, 403, "{tool}: {body:?}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\"")
                && challenge.contains(&format!("scope=\"{scope}\""))
                && challenge.contains("resource_metadata="),
            "{tool}: {challenge}"
        );
        assert_eq!(body.unwrap()["error_code"], "INSUFFICIENT_SCOPE", "{tool}");
    }
    let no_scope = idp.token("no-scope", "", RESOURCE).await.unwrap();
    let (status, challenge, body) = initialize(&server, Some(&no_scope)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge.unwrap().contains("scope=\"pgmcp:read\""),
        "the read scope is asked for"
    );
    // The provider refuses a scope the client may not have.
    let refused = idp
        .token("seattle-reader", "pgmcp:read pgmcp:write", RESOURCE)
        .await
        .unwrap_err();
    assert_eq!(refused["error"], "invalid_scope", "{refused}");
    // The operator's token carries no tenant and is accepted.
    let dba = idp
        .token("dba", "pgmcp:read pgmcp:operator", RESOURCE)
        .await
        .unwrap();
    assert_eq!(initialize(&server, Some(&dba)).await.0, 200);

    // A token the provider issued for another resource, and an expired one: 401.
    let other = idp
        .token(
            "seattle-reader",
            "pgmcp:read",
            "https://other.example.test/mcp",
        )
        .await
        .unwrap();
    let (status, challenge, body) = initialize(&server, Some(&other)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("audience"), "{body}");
    assert!(challenge.unwrap().contains("resource_metadata="));
    let short = idp
        .token("short-lived", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (status, _, body) = initialize(&server, Some(&short)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("expired"), "{body}");

    // Key rotation in the middle: the new key's token names an unknown kid, which makes the
    // server fetch the JWKS again; the old key's tokens still verify while it is published.
    idp.rotate().await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let rotated = idp
        .token("seattle-reader", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    let mut after = bearer(&server, &rotated).await;
    assert_eq!(stores_seen(&mut after).await, json!([1]));
    assert_eq!(stores_seen(&mut seattle).await, json!([1]));
    let (hits, kids) = idp.jwks_hits().await;
    assert_eq!(kids, ["key-2", "key-1"]);
    assert_eq!(hits, hits_at_start + 1, "one refresh for the new key");

    // Forged key ids: every one refused, and they cannot make the server hammer the provider.
    for i in 0..20 {
        let (status, _, body) =
            initialize(&server, Some(&forged(&format!("forged-{i}"), &issuer))).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body.to_string().contains("not among the issuer's keys"),
            "{body}"
        );
    }
    let (hits_after_forgeries, _) = idp.jwks_hits().await;
    assert!(
        hits_after_forgeries <= hits + 2,
        "20 forged key ids in about a second caused {} JWKS fetches (at most one a second)",
        hits_after_forgeries - hits
    );

    // The provider unpublishes the old key: after the next refresh its tokens are refused.
    idp.drop_old_keys().await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _, _) = initialize(&server, Some(&forged("forged-again", &issuer))).await;
    assert_eq!(status, 401);
    let (status, _, body) = initialize(&server, Some(&seattle_token)).await;
    assert_eq!(status, 401, "the retired key no longer verifies: {body}");
    assert_eq!(
        stores_seen(&mut after).await,
        json!([1]),
        "the new key still does"
    );
}

#[tokio::test]
async fn keys_from_an_issuer_need_an_audience_and_a_reachable_https_issuer() {
    let mut config = test_config();
    config.auth_mode = pg_mcp::config::AuthMode::Jwt;
    config.jwt_issuer = Some("https://login.example.test".into());
    let error = pg_mcp::state::AppState::new(config.clone())
        .err()
        .unwrap()
        .message;
    assert!(error.contains("audience"), "{error}");
    config.resource_url = Some(RESOURCE.into());
    config.jwt_issuer = Some("http://login.example.test".into());
    let error = pg_mcp::state::AppState::new(config.clone())
        .err()
        .unwrap()
        .message;
    assert!(error.contains("https"), "{error}");
    config.jwt_issuer = None;
    let error = config.validate().unwrap_err().message;
    assert!(error.contains("PG_MCP_JWT_ISSUER"), "{error}");
}

#[tokio::test]
async fn opaque_tokens_are_checked_at_the_issuers_introspection_endpoint() {
    let redmond = pg_mcp_demo::STORES[1].rls_user_id;
    let idp = IdentityProvider::start(
        "oauth::opaque_tokens_are_checked_at_the_issuers_introspection_endpoint",
        RESOURCE,
        SEATTLE,
        redmond,
    )
    .await;
    let issuer = idp.issuer();
    let start = |secret: &'static str| {
        let issuer = issuer.clone();
        TestServer::start_with(move |c| {
            c.auth_mode = pg_mcp::config::AuthMode::Jwt;
            c.jwt_issuer = Some(issuer.clone());
            c.resource_url = Some(RESOURCE.into());
            c.read_scope = "pgmcp:read".into();
            c.introspection_url = Some(format!("{issuer}/token/introspection"));
            c.introspection_client_id = Some("pg-mcp".into());
            c.introspection_client_secret = Some(secret.into());
            c.introspection_cache_secs = 30;
            c.rate_limit_per_minute = 0;
        })
    };
    let server = start("pg-mcp-secret").await;

    // An opaque token from the provider: not a JWT, yet its tenant is the provider's claim.
    let opaque = idp
        .token("seattle-opaque", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    assert!(
        jsonwebtoken::decode_header(&opaque).is_err(),
        "the token should be opaque: {opaque}"
    );
    let before = idp.introspections().await;
    let mut seattle = bearer(&server, &opaque).await;
    assert_eq!(stores_seen(&mut seattle).await, json!([1]));
    assert_eq!(stores_seen(&mut seattle).await, json!([1]));
    assert_eq!(
        idp.introspections().await - before,
        1,
        "one introspection for the token's calls (the reply is cached)"
    );
    // Its scope is read from the reply: no write scope, so a write tool is 403.
    let (status, challenge, _) = call_raw(&seattle, "batch_execute").await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap().contains("scope=\"pgmcp:write\""));

    // JWTs from the same provider still verify through its keys, without introspection.
    let jwt = idp
        .token("redmond-reader", "pgmcp:read", RESOURCE)
        .await
        .unwrap();
    let introspected = idp.introspections().await;
    assert_eq!(
        stores_seen(&mut bearer(&server, &jwt).await).await,
        json!([2])
    );
    assert_eq!(idp.introspections().await, introspected);

    // An opaque token for another resource, and one the provider never issued: 401.
    let other = idp
        .token(
            "seattle-opaque",
            "pgmcp:read",
            "https://other.example.test/mcp",
        )
        .await
        .unwrap();
    let (status, challenge, body) = initialize(&server, Some(&other)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("audience"), "{body}");
    assert!(challenge.unwrap().contains("resource_metadata="));
    let (status, _, body) = initialize(&server, Some("made-up-opaque-token")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("not active"), "{body}");

    // A server whose client secret is wrong refuses every opaque token, and says why without
    // echoing the secret.
    let misconfigured = start("wrong-secret").await;
    let (status, _, body) = initialize(&misconfigured, Some(&opaque)).await;
    assert_eq!(status, 401, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("introspection") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"), "{text}");

    // Settings that cannot work are refused at start.
    let mut config = test_config();
    config.auth_mode = pg_mcp::config::AuthMode::Jwt;
    config.jwt_issuer = Some(issuer.clone());
    config.resource_url = Some(RESOURCE.into());
    config.introspection_url = Some(format!("{issuer}/token/introspection"));
    let error = pg_mcp::state::AppState::new(config.clone())
        .err()
        .unwrap()
        .message;
    assert!(error.contains("PG_MCP_INTROSPECTION_CLIENT_ID"), "{error}");
    config.introspection_client_id = Some("pg-mcp".into());
    config.introspection_client_secret = Some("pg-mcp-secret".into());
    config.introspection_url = Some("http://idp.example.test/introspect".into());
    let error = pg_mcp::state::AppState::new(config).err().unwrap().message;
    assert!(error.contains("https"), "{error}");
}
