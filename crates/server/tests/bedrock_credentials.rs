//! Bedrock with AWS credentials resolved at run time, against the test kit's
//! mock STS, container endpoint and instance metadata service: shared
//! profiles (keys, `credential_process`, roles), web identity, the container
//! endpoint, IMDSv2, roles assumed on top of fixed keys, refresh after
//! Bedrock refuses, passthrough signing, and the error when there is none.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Dir, Gateway};
use modelgate_testkit::aws::{CONTAINER_PATH, STS_PATH};
use modelgate_testkit::bedrock::{
    MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY, converse_path,
};
use modelgate_testkit::{MockUpstream, Reply};
use serde_json::{Value, json};

const NOVA: &str = "amazon.nova-pro-v1:0";

/// A deployment `nova` on the mock with `auth` lines (YAML, 4-space indent).
fn config(up: &MockUpstream, auth: &str) -> String {
    format!(
        r#"
models:
  - name: nova
    provider: bedrock
    model: {NOVA}
    base_url: {url}
    region: us-east-1
    retry: {{ max_attempts: 1 }}
{auth}"#,
        url = up.url()
    )
}

fn chat() -> Value {
    json!({"model": "nova", "messages": [{"role": "user", "content": "hi"}]})
}

/// The access key id the last Bedrock request was signed with.
fn signed_with(up: &MockUpstream) -> String {
    let rec = up
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == converse_path(NOVA, false))
        .expect("no Bedrock request");
    let authz = rec.header("authorization").unwrap();
    authz
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap()
        .to_owned()
}

async fn ok(gw: &Gateway) {
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
}

async fn failure(gw: &Gateway) -> (u16, String) {
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// Environment that keeps the chain off the real machine: no files, no IMDS.
fn isolated<'a>(dir: &'a Dir, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("AWS_SHARED_CREDENTIALS_FILE", dir.path("none-credentials")),
        ("AWS_CONFIG_FILE", dir.path("none-config")),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    for (k, v) in extra {
        env.retain(|(n, _)| n != k);
        env.push((k, (*v).to_owned()));
    }
    env
}

async fn start(yaml: &str, env: &[(&str, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start(yaml, &env).await
}

#[tokio::test]
async fn shared_profiles_keys_processes_roles_and_sso() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let creds = dir.file(
        "credentials",
        &format!(
            "[prod]\naws_access_key_id = {MOCK_AWS_ACCESS_KEY_ID}\naws_secret_access_key = {MOCK_AWS_SECRET_ACCESS_KEY}\n"
        ),
    );
    let process_out = dir.file(
        "process.json",
        &json!({"Version": 1, "AccessKeyId": MOCK_AWS_ACCESS_KEY_ID, "SecretAccessKey": MOCK_AWS_SECRET_ACCESS_KEY})
            .to_string(),
    );
    let cfg = dir.file(
        "config",
        &format!(
            "[profile proc]\ncredential_process = cat {process_out}\n\
             [profile roled]\nrole_arn = arn:aws:iam::123456789012:role/bedrock\nsource_profile = prod\n\
             [profile sso]\nsso_session = corp\nsso_account_id = 1\n\
             [profile broken]\ncredential_process = false\n"
        ),
    );
    let sts = format!("{}{STS_PATH}", up.url());
    let env = isolated(
        &dir,
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.as_str()),
            ("AWS_CONFIG_FILE", cfg.as_str()),
            ("AWS_ENDPOINT_URL_STS", sts.as_str()),
        ],
    );
    // Static keys in the credentials file.
    let gw = start(&config(&up, "    aws_profile: prod\n"), &env).await;
    ok(&gw).await;
    assert_eq!(signed_with(&up), MOCK_AWS_ACCESS_KEY_ID);
    drop(gw);
    // A credential_process.
    let gw = start(&config(&up, "    aws_profile: proc\n"), &env).await;
    ok(&gw).await;
    assert_eq!(signed_with(&up), MOCK_AWS_ACCESS_KEY_ID);
    drop(gw);
    // A role assumed with the prod profile's keys (AssumeRole is signed by them).
    let gw = start(&config(&up, "    aws_profile: roled\n"), &env).await;
    ok(&gw).await;
    ok(&gw).await;
    assert_eq!(
        up.sts_callers(),
        vec![MOCK_AWS_ACCESS_KEY_ID.to_owned()],
        "cached"
    );
    let issued = up.aws_issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(signed_with(&up), issued[0]);
    let rec = up.last();
    assert!(
        rec.header("x-amz-security-token")
            .unwrap()
            .starts_with("mock-session-")
    );
    drop(gw);
    // SSO profiles and failing processes are refused with the reason.
    for (profile, needle) in [
        ("sso", "IAM Identity Center"),
        (
            "broken",
            "credential_process of AWS profile \"broken\" failed",
        ),
        (
            "missing",
            "AWS profile \"missing\" is not in the shared files",
        ),
    ] {
        let gw = start(&config(&up, &format!("    aws_profile: {profile}\n")), &env).await;
        let (status, message) = failure(&gw).await;
        assert_eq!(status, 502, "{profile}: {message}");
        assert!(message.contains(needle), "{profile}: {message}");
    }
}

#[tokio::test]
async fn web_identity_is_exchanged_once_and_again_after_bedrock_refuses() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let token = dir.file("token", "eyJ.web-identity.token\n");
    up.accept_web_identity_token("eyJ.web-identity.token");
    let sts = format!("{}{STS_PATH}", up.url());
    let env = isolated(
        &dir,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa"),
            ("AWS_ENDPOINT_URL_STS", sts.as_str()),
        ],
    );
    let gw = start(&config(&up, ""), &env).await;
    ok(&gw).await;
    ok(&gw).await;
    assert_eq!(up.count(STS_PATH), 1, "one exchange for both requests");
    let form = String::from_utf8(
        up.requests()
            .into_iter()
            .find(|r| r.path == STS_PATH)
            .unwrap()
            .body
            .to_vec(),
    )
    .unwrap();
    assert!(form.contains("Action=AssumeRoleWithWebIdentity"), "{form}");
    assert!(form.contains("RoleSessionName=modelgate"), "{form}");
    let first = up.aws_issued()[0].clone();
    assert_eq!(signed_with(&up), first);

    // AWS stops honouring the session: that request fails, the credentials
    // are forgotten, and the next request exchanges the token again.
    up.revoke_aws_sessions();
    let (status, message) = failure(&gw).await;
    assert_eq!(status, 502, "{message}");
    assert!(!message.contains("mock-session"), "{message}");
    ok(&gw).await;
    assert_eq!(up.count(STS_PATH), 2);
    assert_ne!(signed_with(&up), first);

    // A token STS does not accept.
    std::fs::write(&token, "forged").unwrap();
    up.revoke_aws_sessions();
    let _ = failure(&gw).await;
    let (status, message) = failure(&gw).await;
    assert_eq!(status, 502);
    assert!(
        message.contains("AssumeRoleWithWebIdentity refused"),
        "{message}"
    );
    assert!(message.contains("InvalidIdentityToken"), "{message}");
}

#[tokio::test]
async fn credentials_close_to_expiry_are_replaced() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    // Credentials that expire within the five-minute margin are used once.
    up.set_aws_expires_in(120);
    let url = format!("{}{CONTAINER_PATH}", up.url());
    let env = isolated(
        &dir,
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str())],
    );
    let gw = start(&config(&up, ""), &env).await;
    ok(&gw).await;
    ok(&gw).await;
    assert_eq!(up.count(CONTAINER_PATH), 2);
    up.set_aws_expires_in(3600);
    ok(&gw).await;
    ok(&gw).await;
    assert_eq!(up.count(CONTAINER_PATH), 3);
}

#[tokio::test]
async fn the_container_endpoint_with_a_token_file() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let token = dir.file("pod-identity-token", "pod-token-1\n");
    up.require_container_token("pod-token-1");
    let url = format!("{}{CONTAINER_PATH}", up.url());
    let env = isolated(
        &dir,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url.as_str()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token.as_str()),
        ],
    );
    let gw = start(&config(&up, ""), &env).await;
    ok(&gw).await;
    assert_eq!(up.count(CONTAINER_PATH), 1);
    assert_eq!(signed_with(&up), up.aws_issued()[0]);
    let sent = up
        .requests()
        .into_iter()
        .find(|r| r.path == CONTAINER_PATH)
        .unwrap();
    assert_eq!(sent.header("authorization").as_deref(), Some("pod-token-1"));
}

#[tokio::test]
async fn instance_metadata_for_the_zero_config_prefix() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let mut env = isolated(&dir, &[]);
    env.retain(|(k, _)| *k != "AWS_EC2_METADATA_DISABLED");
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", up.url()));
    env.push(("AWS_REGION", "us-east-1".to_owned()));
    env.push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", up.url()));
    let gw = start("", &env).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": format!("bedrock/{NOVA}"), "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let paths: Vec<String> = up.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![
            "/latest/api/token".to_owned(),
            "/latest/meta-data/iam/security-credentials/".to_owned(),
            "/latest/meta-data/iam/security-credentials/modelgate-mock-role".to_owned(),
            converse_path(NOVA, false),
        ]
    );
    assert_eq!(signed_with(&up), up.aws_issued()[0]);
}

#[tokio::test]
async fn a_role_assumed_over_fixed_keys_with_an_external_id_signs_passthrough_too() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    up.require_external_id("ext-42");
    let sts = format!("{}{STS_PATH}", up.url());
    let env = isolated(
        &dir,
        &[
            ("AWS_ENDPOINT_URL_STS", sts.as_str()),
            ("MODELGATE_MASTER_KEY", "mg-master-aws"),
        ],
    );
    let auth = format!(
        "    aws_access_key_id: {MOCK_AWS_ACCESS_KEY_ID}\n    aws_secret_access_key: \"{MOCK_AWS_SECRET_ACCESS_KEY}\"\n    aws_role_arn: arn:aws:iam::123456789012:role/cross-account\n    aws_external_id: ext-42\n"
    );
    let gw = start(&config(&up, &auth), &env).await;
    let r = gw
        .post("/v1/chat/completions")
        .bearer_auth("mg-master-aws")
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.sts_callers(), vec![MOCK_AWS_ACCESS_KEY_ID.to_owned()]);
    let role_key = up.aws_issued()[0].clone();
    assert_eq!(signed_with(&up), role_key);

    // Provider-native passthrough is signed with the same role credentials.
    let path = converse_path(NOVA, false);
    let r = gw
        .post(&format!("/passthrough/nova{path}"))
        .bearer_auth("mg-master-aws")
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(signed_with(&up), role_key);
    assert_eq!(up.count(STS_PATH), 1);

    // The wrong external id: the role cannot be assumed.
    let bad = auth.replace("ext-42", "ext-0");
    let gw = start(&config(&up, &bad), &env).await;
    let r = gw
        .post("/v1/chat/completions")
        .bearer_auth("mg-master-aws")
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("AssumeRole refused (HTTP 403): AccessDenied"),
        "{message}"
    );
}

#[tokio::test]
async fn no_credentials_anywhere_is_a_clear_error() {
    let up = MockUpstream::start().await;
    let dir = Dir::new();
    let gw = start(&config(&up, ""), &isolated(&dir, &[])).await;
    let (status, message) = failure(&gw).await;
    assert_eq!(status, 502);
    assert!(message.contains("no AWS credentials found"), "{message}");
    assert!(up.requests().is_empty(), "nothing was sent unsigned");
    // The next request within the hold is answered from memory (the chain,
    // instance metadata timeouts included, is not walked per request).
    let (status, again) = failure(&gw).await;
    assert_eq!((status, again), (502, message));
    // STS being down is a transient failure (503-class), not a credential one.
    let dir2 = Dir::new();
    let token = dir2.file("token", "t");
    up.push(STS_PATH, Reply::error(503, json!({})));
    let sts = format!("{}{STS_PATH}", up.url());
    let env = isolated(
        &dir2,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_ENDPOINT_URL_STS", sts.as_str()),
        ],
    );
    let gw = start(&config(&up, ""), &env).await;
    let r = gw
        .post("/v1/chat/completions")
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let rec = gw.record(&rid).await;
    assert_eq!(
        rec.error_class.as_deref(),
        Some("upstream_unavailable"),
        "{rec:?}"
    );
}
