//! Configuration reload: atomic, all-or-nothing, audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Gateway;
use serde_json::{Value, json};

const MASTER: &str = "mg-master-reload";

fn file(name: &str, yaml: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "modelgate-reload-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

const V1: &str = r#"
deployments:
  - { name: echo-1, provider: mock, model: echo }
models:
  - name: chat
    deployments: [echo-1]
"#;

async fn chat(gw: &Gateway, model: &str) -> reqwest::Response {
    gw.post("/v1/chat/completions")
        .bearer_auth(MASTER)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn reload(gw: &Gateway) -> (u16, Value) {
    let r = gw
        .post("/admin/config/reload")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_reload_swaps_models_in_and_is_audited() {
    let path = file("modelgate.yaml", V1);
    let gw = Gateway::start_from_file(&path, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    assert_eq!(chat(&gw, "chat").await.status(), 200);
    assert_eq!(chat(&gw, "second").await.status(), 404);

    // Unchanged file: nothing changes, still audited.
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false);

    std::fs::write(
        &path,
        r#"
deployments:
  - { name: echo-1, provider: mock, model: text, weight: 2 }
  - { name: echo-2, provider: mock, model: echo }
models:
  - name: second
    deployments: [echo-2]
"#,
    )
    .unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    let ch = &body["changes"];
    assert_eq!(ch["deployments_added"], json!(["echo-2"]));
    assert_eq!(ch["deployments_changed"], json!(["echo-1"]));
    assert_eq!(ch["models_added"], json!(["second"]));
    assert_eq!(ch["models_removed"], json!(["chat"]));
    assert_ne!(body["sha256_before"], body["sha256_after"]);
    assert_eq!(chat(&gw, "second").await.status(), 200);
    assert_eq!(chat(&gw, "chat").await.status(), 404);
    let models: Value = gw
        .get("/v1/models")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"second") && !ids.contains(&"chat"), "{ids:?}");

    let audit: Value = gw
        .get("/admin/audit")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    let reloads: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"))
        .iter()
        .filter(|r| r["action"] == "config.reload")
        .collect();
    assert_eq!(reloads.len(), 2, "{text}");
    let last = reloads[1];
    assert_eq!(last["actor"], "master");
    let before: Value = serde_json::from_str(last["before_json"].as_str().unwrap()).unwrap();
    let after: Value = serde_json::from_str(last["after_json"].as_str().unwrap()).unwrap();
    assert_eq!(before["models"], json!(["chat"]));
    assert_eq!(after["config"]["models"], json!(["second"]));
    assert_eq!(after["changes"]["models_added"], json!(["second"]));
    assert_eq!(before["sha256"], body["sha256_before"]);
    assert!(!text.contains("api_key"), "no secrets in the audit trail");
    let verify = gw.store.verify_audit().await.unwrap();
    assert!(
        verify.1.is_none() && verify.0 >= 2,
        "chain intact: {verify:?}"
    );
}

#[tokio::test]
async fn an_invalid_or_restart_only_change_leaves_everything_as_it_was() {
    let path = file("modelgate.yaml", V1);
    let gw = Gateway::start_from_file(&path, &[("MODELGATE_MASTER_KEY", MASTER)]).await;

    // Two errors at once; both named, nothing applied.
    std::fs::write(
        &path,
        "deployments:\n  - { name: x, provider: nope, model: m }\nmodels:\n  - name: other\n    deployments: [missing]\n",
    )
    .unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "config_invalid");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("deployments[0].provider"), "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    assert_eq!(chat(&gw, "chat").await.status(), 200);

    // A mock behaviour that does not exist is caught too.
    std::fs::write(
        &path,
        "deployments:\n  - { name: echo-1, provider: mock, model: no-such-behaviour }\nmodels:\n  - name: chat\n    deployments: [echo-1]\n",
    )
    .unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(chat(&gw, "chat").await.status(), 200);

    // Governance needs a restart: refused as a whole, even with a valid model change.
    std::fs::write(
        &path,
        format!("{V1}  - name: extra\n    deployments: [echo-1]\ngovernance:\n  default_max_output_tokens: 99\n"),
    )
    .unwrap();
    let (status, body) = reload(&gw).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "restart_required");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("governance")
    );
    assert_eq!(chat(&gw, "extra").await.status(), 404);

    // Rejections are audited too.
    let audit: Value = gw
        .get("/admin/audit")
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rejected = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "config.reload_rejected")
        .count();
    assert_eq!(rejected, 3);
}

#[tokio::test]
async fn reload_needs_an_admin_and_a_config_to_read() {
    let path = file("modelgate.yaml", V1);
    let gw = Gateway::start_from_file(&path, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let r = gw.post("/admin/config/reload").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A gateway built without a reloader says so.
    let plain = Gateway::start(V1, &[("MODELGATE_MASTER_KEY", MASTER)]).await;
    let (status, body) = reload(&plain).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reload_unavailable");
}
