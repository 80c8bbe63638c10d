//! Keeps the conformance matrix (`crates/server/src/capabilities.rs`) honest:
//! every test a cell names exists and runs, every cell names an end-to-end
//! test, `docs/CONFORMANCE.md` is the table rendered, and
//! `GET /v1/modelgate/capabilities` serves the table.
//!
//! `UPDATE_CONFORMANCE=1 cargo test -p modelgate-server --test conformance`
//! rewrites the document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use common::Gateway;
use modelgate_config::ProviderKind;
use modelgate_server::capabilities::{
    self, CELLS, Cell, Feature, PROVIDERS, REGENERATE, Status, Surface,
};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Tests that run in CI: `cargo test --workspace` runs `crates/*/tests/*.rs`,
/// `scripts/sdk-tests.sh` runs `tests/sdk/test_*.py`.
fn runs_in_ci(path: &str) -> bool {
    let rust = path.starts_with("crates/") && path.contains("/tests/") && path.ends_with(".rs");
    let sdk = path.starts_with("tests/sdk/test_") && path.ends_with(".py");
    rust || sdk
}

/// End to end: through the gateway's HTTP API (the server's integration
/// tests) or the official SDKs against the binary — not a codec alone.
fn end_to_end(path: &str) -> bool {
    path.starts_with("crates/server/tests/") || path.starts_with("tests/sdk/")
}

/// `fn name(` is defined once, marked as a test and not ignored.
fn rust_test(text: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    let def = format!("fn {name}(");
    let hits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            t.starts_with(&def) || t.starts_with(&format!("async {def}"))
        })
        .map(|(i, _)| i)
        .collect();
    let at = match hits.as_slice() {
        [] => return Err(format!("no `{def}`")),
        [at] => *at,
        _ => return Err(format!("`{def}` is defined more than once")),
    };
    // The attributes right above it (up to a blank line or the previous item).
    let attrs: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take(6)
        .take_while(|l| {
            let t = l.trim();
            !t.is_empty() && !t.ends_with('}') && !t.ends_with(';')
        })
        .copied()
        .collect();
    if !attrs
        .iter()
        .any(|a| a.contains("#[test]") || a.contains("#[tokio::test"))
    {
        return Err(format!("`{def}` is not marked #[test] or #[tokio::test]"));
    }
    if attrs.iter().any(|a| a.contains("#[ignore")) {
        return Err(format!("`{def}` is #[ignore]d"));
    }
    Ok(())
}

/// `def name(` is defined (in `class` when given), is collected by pytest
/// (`test_*` in `Test*`) and is not skipped.
fn python_test(text: &str, class: Option<&str>, name: &str) -> Result<(), String> {
    if !name.starts_with("test_") || class.is_some_and(|c| !c.starts_with("Test")) {
        return Err("pytest collects `test_*` functions in `Test*` classes only".into());
    }
    let lines: Vec<&str> = text.lines().collect();
    let def = format!("def {name}(");
    let hits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(&def))
        .filter(|(i, l)| {
            // The enclosing class is the nearest unindented `class` above.
            let owner = lines[..*i]
                .iter()
                .rev()
                .find(|p| !p.starts_with(' ') && !p.trim().is_empty() && !p.starts_with('@'))
                .and_then(|p| p.strip_prefix("class "))
                .map(|p| p.split(['(', ':']).next().unwrap_or(""));
            match class {
                None => l.starts_with(&def),
                Some(c) => l.starts_with(' ') && owner == Some(c),
            }
        })
        .map(|(i, _)| i)
        .collect();
    let at = match hits.as_slice() {
        [] => return Err(format!("no `{def}` in {}", class.unwrap_or("the module"))),
        [at] => *at,
        _ => return Err(format!("`{def}` is defined more than once")),
    };
    let decorators = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with('@'));
    for d in decorators {
        if d.contains("skip") || d.contains("xfail") {
            return Err(format!("`{def}` is decorated with {}", d.trim()));
        }
    }
    Ok(())
}

/// Checks one `path::[Class::]function` reference.
fn check_reference(reference: &str) -> Result<(), String> {
    let mut parts = reference.split("::");
    let path = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if !runs_in_ci(path) {
        return Err(format!(
            "{path} is not a test file that CI runs (crates/*/tests/*.rs or tests/sdk/test_*.py)"
        ));
    }
    let text = std::fs::read_to_string(repo().join(path))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    match (path.ends_with(".py"), rest.as_slice()) {
        (false, [name]) => rust_test(&text, name),
        (true, [name]) => python_test(&text, None, name),
        (true, [class, name]) => python_test(&text, Some(class), name),
        _ => Err("expected path::function (Rust) or path::[Class::]function (pytest)".into()),
    }
}

fn coordinates(c: &Cell) -> String {
    format!(
        "{} × {} × {}",
        c.surface.id(),
        c.provider.as_str(),
        c.feature.id()
    )
}

#[test]
fn every_named_test_exists_and_runs() {
    let mut problems = Vec::new();
    for c in CELLS {
        for t in c.tests {
            if let Err(e) = check_reference(t) {
                problems.push(format!("{}: {t}: {e}", coordinates(c)));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "cells of crates/server/src/capabilities.rs name tests that do not exist or do not run:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_cell_names_an_end_to_end_test_and_no_cell_is_claimed_twice() {
    let mut seen = HashSet::new();
    for c in CELLS {
        assert!(
            seen.insert((c.surface.id(), c.provider.as_str(), c.feature.id())),
            "{} is claimed twice",
            coordinates(c)
        );
        assert!(
            c.tests.iter().any(|t| end_to_end(t)),
            "{} names no end-to-end test (crates/server/tests/ or tests/sdk/): a codec test alone does not show the gateway serves it",
            coordinates(c)
        );
        let unique: HashSet<_> = c.tests.iter().collect();
        assert_eq!(
            unique.len(),
            c.tests.len(),
            "{} names a test twice",
            coordinates(c)
        );
        assert!(
            c.note.is_none_or(|n| !n.trim().is_empty()),
            "{}",
            coordinates(c)
        );
    }
}

#[test]
fn every_provider_the_config_accepts_is_a_column() {
    let columns: Vec<&str> = PROVIDERS.iter().map(|p| p.kind.as_str()).collect();
    for kind in ProviderKind::ALL {
        assert_eq!(
            columns.iter().filter(|c| **c == kind).count(),
            1,
            "provider `{kind}` needs exactly one PROVIDERS entry in crates/server/src/capabilities.rs \
             (then add its cells: adding a provider is adding rows)"
        );
    }
    assert_eq!(columns.len(), ProviderKind::ALL.len());
}

#[test]
fn the_document_is_the_table_rendered() {
    let path = repo().join("docs/CONFORMANCE.md");
    let want = capabilities::render_markdown();
    if std::env::var_os("UPDATE_CONFORMANCE").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || got.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "docs/CONFORMANCE.md is not the rendering of crates/server/src/capabilities.rs \
             (first difference at line {line}). Regenerate it with\n\n    {REGENERATE}\n"
        );
    }
}

const KEY: &str = "mg-master-conformance";

/// The cell as the endpoint must serve it, built from the table.
fn expected(c: &Cell) -> Value {
    let mut v = json!({
        "surface": c.surface.id(),
        "provider": c.provider.as_str(),
        "feature": c.feature.id(),
        "status": match c.status { Status::Supported => "supported", Status::Refused => "refused" },
        "tests": c.tests,
    });
    if let Some(n) = c.note {
        v["note"] = json!(n);
    }
    v
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_endpoint_serves_the_table_to_authenticated_callers() {
    let gw = Gateway::start("", &[("MODELGATE_MASTER_KEY", KEY)]).await;
    let r = gw.get("/v1/modelgate/capabilities").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "authentication_error");

    let r = gw
        .get("/v1/modelgate/capabilities")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(ids(&v["surfaces"]), Surface::ALL.map(|s| s.id().to_owned()));
    assert_eq!(v["surfaces"][0]["route"], "/v1/chat/completions");
    assert_eq!(
        ids(&v["providers"]),
        PROVIDERS
            .iter()
            .map(|p| p.kind.as_str().to_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(v["providers"][0]["paths"]["chat"], PROVIDERS[0].chat);
    assert_eq!(ids(&v["features"]), Feature::ALL.map(|f| f.id().to_owned()));
    let served = v["cells"].as_array().unwrap();
    assert_eq!(served.len(), CELLS.len());
    for c in CELLS {
        let want = expected(c);
        assert!(
            served.contains(&want),
            "{} is not served as {want}",
            coordinates(c)
        );
    }

    // x-api-key works as on every /v1 route.
    let r = gw
        .get("/v1/modelgate/capabilities")
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn the_reference_checks_catch_what_they_should() {
    let rust = "#[tokio::test]\nasync fn real() {}\n\n#[test]\n#[ignore]\nfn skipped() {}\n\nfn helper() {}\n";
    assert!(rust_test(rust, "real").is_ok());
    assert!(rust_test(rust, "skipped").unwrap_err().contains("ignore"));
    assert!(
        rust_test(rust, "helper")
            .unwrap_err()
            .contains("not marked")
    );
    assert!(rust_test(rust, "gone").is_err());
    let py = "class TestA:\n    def test_in_a(self):\n        pass\n\n\n@pytest.mark.skip\ndef test_skipped():\n    pass\n\n\ndef test_top():\n    pass\n";
    assert!(python_test(py, Some("TestA"), "test_in_a").is_ok());
    assert!(python_test(py, None, "test_in_a").is_err());
    assert!(python_test(py, None, "test_top").is_ok());
    assert!(python_test(py, Some("TestA"), "test_top").is_err());
    assert!(
        python_test(py, None, "test_skipped")
            .unwrap_err()
            .contains("skip")
    );
    assert!(check_reference("crates/server/src/lib.rs::router").is_err());
    assert!(check_reference("tests/sdk/test_upstreams.py::test_chat").is_ok());
}
