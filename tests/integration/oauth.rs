//! pg-mcp as an OAuth protected resource (issue 15, part 1): protected resource metadata
//! (RFC 9728) at both well-known paths, 401 challenges that point at it, and the token's
//! audience bound to the resource URL (RFC 8707). Tokens here are signed with a shared
//! secret; the identity-provider flow (JWKS discovery) is still to come.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::common::{SEATTLE, TestServer, test_config};

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
