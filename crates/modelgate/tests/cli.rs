//! The `modelgate` binary's commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelgate"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn version_prints() {
    let out = bin().arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("modelgate "));
}

#[test]
fn print_schema_is_json_schema() {
    let out = bin().arg("print-schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["models"].is_object());
}

#[test]
fn validate_config_reports_every_error_with_path() {
    let p = temp_file(
        "bad.yaml",
        "server:\n  listen: 1.2.3\nmodels:\n  - name: a\n    provider: openia\n    model: x\n  - name: b\n    provider: mock\n    model: echo\n    colour: red\n",
    );
    let out = bin()
        .arg("validate-config")
        .arg(&p)
        .env_remove("MODELGATE_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 errors"), "{err}");
    assert!(err.contains("server.listen:"), "{err}");
    assert!(err.contains("models[0].provider:"), "{err}");
    assert!(err.contains("models[1].colour"), "{err}");
}

#[test]
fn validate_config_accepts_a_good_file() {
    let p = temp_file(
        "good.yaml",
        "models:\n  - name: local\n    provider: openai_compatible\n    model: llama3\n    base_url: http://127.0.0.1:11434/v1\n",
    );
    let out = bin().arg("validate-config").arg(&p).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn refuses_public_bind_without_a_master_key() {
    let out = bin()
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(std::env::temp_dir().join(format!("mg-cli-refuse-{}.db", std::process::id())))
        .env_remove("MODELGATE_MASTER_KEY")
        .env_remove("MODELGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a master key"),
        "{err}"
    );
}

#[test]
fn keys_and_teams_from_the_cli_share_the_store() {
    let dir = std::env::temp_dir().join(format!("mg-cli-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.db");
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .arg("--db")
            .arg(&db)
            .env_remove("MODELGATE_CONFIG")
            .env_remove("MODELGATE_KEY_SECRET")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let team = run(&[
        "teams",
        "create",
        "platform",
        "--max-budget-usd",
        "25",
        "--budget-period",
        "monthly",
    ]);
    assert_eq!(team["name"], "platform");
    assert_eq!(team["max_budget_usd"], "25");
    let key = run(&[
        "keys",
        "create",
        "--team",
        "platform",
        "--name",
        "svc",
        "--rpm",
        "60",
        "--models",
        "gpt-*,mock/*",
    ]);
    let plaintext = key["key"].as_str().unwrap().to_owned();
    assert!(plaintext.starts_with("sk-mg-"));
    assert_eq!(key["team_id"], team["id"]);
    assert_eq!(key["models"], serde_json::json!(["gpt-*", "mock/*"]));
    let list = run(&["keys", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&plaintext));
    let revoked = run(&["keys", "revoke", key["id"].as_str().unwrap()]);
    assert_eq!(revoked["revoked"], true);
    assert_eq!(run(&["teams", "list"]).as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn audit_verify_finds_a_flipped_byte() {
    let dir = std::env::temp_dir().join(format!("mg-cli-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.db");
    let run = |args: &[&str]| {
        bin()
            .args(args)
            .arg("--db")
            .arg(&db)
            .env_remove("MODELGATE_CONFIG")
            .env_remove("MODELGATE_DATABASE_URL")
            .output()
            .unwrap()
    };
    assert!(run(&["teams", "create", "audited"]).status.success());
    assert!(
        run(&["keys", "create", "--team", "audited"])
            .status
            .success()
    );
    let ok = run(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"records\": 2"));
    // Flip one byte of the first record, as an attacker with the file would.
    let flip = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c=sqlite3.connect('{}'); c.execute(\"UPDATE audit_log SET actor='clj' WHERE seq=1\"); c.commit()",
            db.display()
        ))
        .status()
        .unwrap();
    assert!(flip.success());
    let bad = run(&["audit", "verify"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("broken at record 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// GET over plain HTTP/1.1 (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out))
}

/// Polls (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn sighup_reloads_the_config_file() {
    let config = temp_file(
        "reload.yaml",
        "models:\n  - { name: first, provider: mock, model: echo }\n",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = bin()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .arg("--db")
        .arg(std::env::temp_dir().join(format!("mg-cli-hup-{}.db", std::process::id())))
        .env_remove("MODELGATE_MASTER_KEY")
        .env_remove("MODELGATE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let models = || {
        http_get(port, "/v1/models")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    eventually("the gateway to start", || models().contains("\"first\""));
    std::fs::write(
        &config,
        "models:\n  - { name: second, provider: mock, model: echo }\n",
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually("the reload", || {
        let m = models();
        m.contains("\"second\"") && !m.contains("\"first\"")
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    // Info lines are buffered (logbuf) and still all written by exit, the
    // last one included.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("configuration reloaded") && err.contains("request log flushed; bye"),
        "{err}"
    );
}
