//! The Kubernetes manifests (`infra/kubernetes/`): every resource of the base, and the
//! production overlay as kustomize renders it (its patches merged, its namespace and image set),
//! validate against Kubernetes 1.37's schemas with `kubernetes-validate --strict` (PyPI,
//! installed by `scripts/install-client-tools.sh`). The ConfigMap's configuration file is one
//! pg-mcp accepts, and the Deployment probes the routes the server serves, gives its drain
//! time to finish and reads its secrets from the Secret.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::process::Scratch;
use crate::common::require;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("infra/kubernetes")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubernetes-validate --strict` on `files`: passes, or the test fails with its output.
fn validate(files: &[PathBuf]) {
    let dir = PathBuf::from(require::dependency(
        "kubernetes::the_manifests_validate_and_fit_the_server",
        &require::CLIENTS,
        std::env::var_os("PG_MCP_TEST_CLIENTS_DIR"),
    ));
    let validator = dir.join("venv/bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing although PG_MCP_TEST_CLIENTS_DIR is set: run scripts/install-client-tools.sh",
        validator.display()
    );
    let out = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        files.len(),
        "one pass per file:\n{text}"
    );
}

/// A strategic merge as kustomize applies it to these patches: maps merge key by key, lists
/// of named items (containers, ports) merge by `name`, anything else is replaced.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(b), Value::Array(p)) if p.iter().all(|i| i.get("name").is_some()) => {
            for item in p {
                match b.iter_mut().find(|i| i.get("name") == item.get("name")) {
                    Some(existing) => merge(existing, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn key(resource: &Value) -> (String, String) {
    (
        resource["kind"].as_str().unwrap().to_string(),
        resource["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_manifests_validate_and_fit_the_server() {
    let base_dir = root().join("base");
    let kustomization = yaml(&base_dir.join("kustomization.yaml"));
    let listed: Vec<PathBuf> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| base_dir.join(r.as_str().unwrap()))
        .collect();
    // Every manifest in the base is listed (none forgotten), and every listed one validates.
    let mut present: Vec<PathBuf> = std::fs::read_dir(&base_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "kustomization.yaml")
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, present,
        "base/kustomization.yaml lists every manifest"
    );
    validate(&listed);
    let mut resources: Vec<Value> = listed.iter().map(|p| yaml(p)).collect();

    // The production overlay, rendered: its resources, patches, namespace and image.
    let overlay_dir = root().join("overlays/production");
    let overlay = yaml(&overlay_dir.join("kustomization.yaml"));
    for r in overlay["resources"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        if r != "../../base" {
            resources.push(yaml(&overlay_dir.join(r)));
        }
    }
    for patch in overlay["patches"].as_array().unwrap() {
        let patch = yaml(&overlay_dir.join(patch["path"].as_str().unwrap()));
        let target = resources
            .iter_mut()
            .find(|r| key(r) == key(&patch))
            .unwrap_or_else(|| panic!("the patch {:?} targets no base resource", key(&patch)));
        merge(target, &patch);
    }
    let namespace = overlay["namespace"].as_str().unwrap();
    let image = &overlay["images"][0];
    for r in &mut resources {
        if r["kind"] != "Namespace" {
            r["metadata"]["namespace"] = namespace.into();
        }
        if r["kind"] == "Deployment" {
            for c in r["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .unwrap()
            {
                let name = c["image"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .next()
                    .unwrap()
                    .to_string();
                if name == image["name"] {
                    c["image"] = format!(
                        "{}:{}",
                        image["newName"].as_str().unwrap(),
                        image["newTag"].as_str().unwrap()
                    )
                    .into();
                }
            }
        }
    }
    let scratch = Scratch::dir("kubernetes");
    std::fs::create_dir_all(scratch.path()).unwrap();
    let rendered: Vec<PathBuf> = resources
        .iter()
        .map(|r| {
            let (kind, name) = key(r);
            let path = scratch.path().join(format!("{kind}-{name}.yaml"));
            std::fs::write(&path, serde_norway::to_string(r).unwrap()).unwrap();
            path
        })
        .collect();
    validate(&rendered);

    let find = |kind: &str| {
        resources
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let deployment = find("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 5, "the overlay's replicas");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "myregistry.azurecr.io/pg-mcp:1.0.0");
    assert_eq!(container["resources"]["requests"]["cpu"], "1");
    assert_eq!(find("HorizontalPodAutoscaler")["spec"]["minReplicas"], 5);

    // It fits the server: the probes hit the routes it serves, the secrets come from the
    // Secret, and the configuration file is one pg-mcp accepts.
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        pod["securityContext"]["runAsUser"], 10001,
        "the image's USER"
    );
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name);
    for secret in [
        "PG_MCP_DATABASE_URL",
        "PG_MCP_TENANT_SIGNING_KEY",
        "PG_MCP_ADMIN_TOKEN",
    ] {
        let from = &var(secret).unwrap_or_else(|| panic!("{secret} is set"))["valueFrom"];
        assert_eq!(from["secretKeyRef"]["name"], "pg-mcp-secrets", "{secret}");
    }
    let config_path = var("PG_MCP_CONFIG").unwrap()["value"].as_str().unwrap();
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap();
    let file_name = config_path
        .strip_prefix(mount["mountPath"].as_str().unwrap())
        .expect("PG_MCP_CONFIG is in the ConfigMap's mount")
        .trim_start_matches('/');
    let toml = find("ConfigMap")["data"][file_name].as_str().unwrap();
    let settings = pg_mcp::config_file::parse(toml).expect("the ConfigMap's file parses");
    let argv: Vec<std::ffi::OsString> = [
        "pg-mcp",
        "--database-url",
        "postgres://pgmcp_app:secret@db:5432/pgmcp",
        "--tenant-signing-key",
        "0123456789abcdef0123456789abcdef",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let loaded = pg_mcp::config_file::resolve(&argv, &settings)
        .unwrap_or_else(|e| panic!("the ConfigMap's file is refused: {e:?}"));
    // The kubelet's SIGKILL comes after the preStop pause and the server's drain.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = loaded.config.shutdown_drain_secs;
    assert!(
        drain > 0,
        "behind a Service and an ingress, replicas drain before they stop"
    );
    assert!(
        grace > pause + drain + loaded.config.shutdown_grace_secs,
        "terminationGracePeriodSeconds {grace} must exceed the preStop pause {pause}, the drain {drain} and PG_MCP_SHUTDOWN_GRACE_SECS {}",
        loaded.config.shutdown_grace_secs
    );
}
