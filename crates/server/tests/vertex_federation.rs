//! Vertex AI with `external_account` credentials (workload identity
//! federation), against the test kit's mock Google STS, impersonation
//! endpoint, subject token URL and AWS metadata: file-, URL-, AWS- and
//! executable-sourced subject tokens, exchanged, impersonated and cached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Dir, Gateway};
use modelgate_testkit::MockUpstream;
use modelgate_testkit::bedrock::{MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY};
use modelgate_testkit::vertex::{GOOGLE_STS_PATH, IMPERSONATION_PREFIX, SUBJECT_TOKEN_PATH};
use serde_json::{Value, json};

const GEM: &str =
    "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov";
const SA: &str = "gateway@test-project.iam.gserviceaccount.com";

/// An `external_account` file with `source` as its `credential_source`.
fn credentials(up: &MockUpstream, token_type: &str, source: Value, impersonate: bool) -> String {
    let mut v = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": token_type,
        "token_url": format!("{}{GOOGLE_STS_PATH}", up.url()),
        "credential_source": source,
    });
    if impersonate {
        v["service_account_impersonation_url"] = json!(format!(
            "{}{IMPERSONATION_PREFIX}{SA}:generateAccessToken",
            up.url()
        ));
        v["service_account_impersonation"] = json!({"token_lifetime_seconds": 1800});
    }
    v.to_string()
}

fn config(up: &MockUpstream, creds_file: &str) -> String {
    format!(
        r#"
models:
  - name: flash
    provider: vertex
    model: gemini-2.5-flash
    project: test-project
    base_url: {url}
    credentials_file: {creds_file}
    retry: {{ max_attempts: 1 }}
"#,
        url = up.url()
    )
}

async fn call(gw: &Gateway) -> (u16, Value) {
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "flash", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The bearer token of the last Vertex call.
fn vertex_bearer(up: &MockUpstream) -> String {
    up.requests()
        .into_iter()
        .rev()
        .find(|r| r.path.starts_with(GEM))
        .and_then(|r| r.header("authorization"))
        .expect("no Vertex call")
}

fn sts_form(up: &MockUpstream) -> String {
    let rec = up
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == GOOGLE_STS_PATH)
        .unwrap();
    String::from_utf8(rec.body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_file_sourced_oidc_token_is_exchanged_impersonated_and_cached() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    up.accept_subject_token("eyJ.k8s.sa-token");
    let token = dir.file("token", "eyJ.k8s.sa-token\n");
    let creds = dir.file(
        "wif.json",
        &credentials(
            &up,
            "urn:ietf:params:oauth:token-type:jwt",
            json!({"file": token}),
            true,
        ),
    );
    let gw = Gateway::start(&config(&up, &creds), &[]).await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = call(&gw).await;
    assert_eq!(status, 200);
    assert_eq!(up.count(GOOGLE_STS_PATH), 1, "one exchange for both calls");
    let imp = format!("{IMPERSONATION_PREFIX}{SA}:generateAccessToken");
    assert_eq!(up.count(&imp), 1);
    assert!(vertex_bearer(&up).starts_with("Bearer ya29.impersonated-"));
    let form = sts_form(&up);
    for part in [
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        "subject_token=eyJ.k8s.sa-token",
        "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt",
        "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
    ] {
        assert!(form.contains(part), "{part} in {form}");
    }
    let imp_rec = up.requests().into_iter().find(|r| r.path == imp).unwrap();
    assert_eq!(imp_rec.json()["lifetime"], "1800s");
    assert!(
        imp_rec
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ya29.sts-")
    );
}

#[tokio::test]
async fn a_url_sourced_json_token_without_impersonation_and_a_refused_one() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    up.accept_subject_token("azure-mi-token");
    let creds = dir.file(
        "wif.json",
        &credentials(
            &up,
            "urn:ietf:params:oauth:token-type:jwt",
            json!({"url": format!("{}{SUBJECT_TOKEN_PATH}", up.url()),
                   "headers": {"Metadata": "True"},
                   "format": {"type": "json", "subject_token_field_name": "access_token"}}),
            false,
        ),
    );
    let gw = Gateway::start(&config(&up, &creds), &[]).await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        vertex_bearer(&up).starts_with("Bearer ya29.sts-"),
        "the federated token itself"
    );
    assert!(sts_form(&up).contains("subject_token=azure-mi-token"));

    // A subject token STS cannot verify: a credentials failure naming STS's reason.
    let token = dir.file("forged", "forged-token");
    let creds = dir.file(
        "forged.json",
        &credentials(
            &up,
            "urn:ietf:params:oauth:token-type:jwt",
            json!({"file": token}),
            false,
        ),
    );
    let gw = Gateway::start(&config(&up, &creds), &[]).await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 502);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "Google STS token exchange refused (HTTP 400): The subject token could not be verified."
        ),
        "{message}"
    );
    assert!(!message.contains("forged-token"), "{message}");
}

#[tokio::test]
async fn aws_sourced_credentials_sign_get_caller_identity() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let source = json!({
        "environment_id": "aws1",
        "region_url": format!("{}/latest/meta-data/placement/availability-zone", up.url()),
        "url": format!("{}/latest/meta-data/iam/security-credentials", up.url()),
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        "imdsv2_session_token_url": format!("{}/latest/api/token", up.url()),
    });
    let creds = dir.file(
        "aws.json",
        &credentials(
            &up,
            "urn:ietf:params:aws:token-type:aws4_request",
            source,
            true,
        ),
    );
    // Keys and region from the environment: no metadata call.
    let gw = Gateway::start(
        &config(&up, &creds),
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", MOCK_AWS_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", MOCK_AWS_SECRET_ACCESS_KEY),
        ],
    )
    .await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        up.requests()
            .iter()
            .all(|r| !r.path.starts_with("/latest/"))
    );
    assert!(sts_form(&up).contains("sts.eu-west-1.amazonaws.com"));
    assert!(vertex_bearer(&up).starts_with("Bearer ya29.impersonated-"));

    // On EC2: region and role credentials from the metadata service (IMDSv2).
    let gw = Gateway::start(&config(&up, &creds), &[]).await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 200, "{v}");
    let paths: Vec<String> = up
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with("/latest/"))
        .collect();
    assert_eq!(
        paths,
        [
            "/latest/api/token",
            "/latest/meta-data/placement/availability-zone",
            "/latest/meta-data/iam/security-credentials/",
            "/latest/meta-data/iam/security-credentials/modelgate-mock-role",
        ]
    );
    assert!(
        sts_form(&up).contains("sts.us-east-1.amazonaws.com"),
        "region from the zone"
    );
}

#[tokio::test]
async fn executables_run_only_when_allowed() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    up.accept_subject_token("exe-token");
    let out = dir.file(
        "out.json",
        &json!({"version": 1, "success": true, "token_type": "urn:ietf:params:oauth:token-type:id_token",
                "id_token": "exe-token", "expiration_time": 4_102_444_800u64})
        .to_string(),
    );
    let creds = dir.file(
        "exe.json",
        &credentials(
            &up,
            "urn:ietf:params:oauth:token-type:id_token",
            json!({"executable": {"command": format!("cat {out}"), "timeout_millis": 5000}}),
            false,
        ),
    );
    let gw = Gateway::start(&config(&up, &creds), &[]).await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 502);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"),
        "{v}"
    );
    assert_eq!(up.count(GOOGLE_STS_PATH), 0);
    let gw = Gateway::start(
        &config(&up, &creds),
        &[("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")],
    )
    .await;
    let (status, v) = call(&gw).await;
    assert_eq!(status, 200, "{v}");
    assert!(sts_form(&up).contains("subject_token=exe-token"));
}
