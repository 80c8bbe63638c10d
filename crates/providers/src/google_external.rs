//! `external_account` credentials (workload identity federation): a token
//! from another identity provider (a Kubernetes or GitHub OIDC token, an
//! Azure managed identity, AWS credentials, a program's output) exchanged
//! at Google's STS for a Google access token, optionally traded for a
//! service account's token (impersonation).
//!
//! Format and steps follow AIP-4117
//! (<https://google.aip.dev/auth/4117>) as Google's auth libraries
//! implement it:
//! 1. the subject token, from `credential_source`: a `file`, a `url` (with
//!    `headers`), either as text or JSON (`format.subject_token_field_name`);
//!    `environment_id: aws1` (a SigV4-signed `GetCallerIdentity` request,
//!    serialised); or an `executable` (only with
//!    `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`);
//! 2. `POST token_url` (RFC 8693 token exchange, form-encoded) for an access
//!    token with the cloud-platform scope;
//! 3. with `service_account_impersonation_url`: `POST` it (bearer: the STS
//!    token) for the service account's access token.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use modelgate_codec::sigv4;
use modelgate_config::{AwsCredentials, ExternalAccountEnv, Secret};
use serde::Deserialize;

use crate::aws_auth::parse_json_credentials;
use crate::credentials::{AuthError, form_urlencode};
use crate::google_auth::CLOUD_PLATFORM_SCOPE;

/// Google's STS (the default `token_url`).
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The subject token type of AWS-sourced credentials.
pub const AWS_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
/// How long an executable may run unless the file says (AIP-4117's default).
const EXECUTABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the subject token is read from a file or a URL's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Text,
    Json(String),
}

/// Where the subject token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSource {
    File {
        path: String,
        format: Format,
    },
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        format: Format,
    },
    Aws {
        region_url: Option<String>,
        credentials_url: Option<String>,
        verification_url: String,
        imdsv2_token_url: Option<String>,
    },
    Executable {
        command: String,
        timeout: Duration,
        output_file: Option<String>,
    },
}

/// A parsed `external_account` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: String,
    pub impersonation_url: Option<String>,
    pub impersonation_lifetime: u64,
    pub source: SubjectSource,
    /// Workforce pools: the project billed (`options.userProject`).
    pub workforce_pool_user_project: Option<String>,
    /// Workforce pools' OAuth client, sent to STS with basic auth.
    pub client: Option<(String, String)>,
}

#[derive(Deserialize)]
struct RawExternal {
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    service_account_impersonation: Option<RawImpersonation>,
    credential_source: Option<RawSource>,
    workforce_pool_user_project: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Deserialize)]
struct RawImpersonation {
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct RawSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<RawFormat>,
    environment_id: Option<String>,
    region_url: Option<String>,
    regional_cred_verification_url: Option<String>,
    imdsv2_session_token_url: Option<String>,
    executable: Option<RawExecutable>,
}

#[derive(Deserialize)]
struct RawFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

#[derive(Deserialize)]
struct RawExecutable {
    command: Option<String>,
    timeout_millis: Option<u64>,
    output_file: Option<String>,
}

fn bad(m: impl Into<String>) -> AuthError {
    AuthError::Credentials(format!("external_account credentials: {}", m.into()))
}

impl ExternalAccount {
    /// Parses the JSON of an `external_account` file.
    pub fn parse(json: &[u8]) -> Result<ExternalAccount, AuthError> {
        let r: RawExternal =
            serde_json::from_slice(json).map_err(|_| bad("the file is not valid JSON"))?;
        let audience = r
            .audience
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("no `audience`"))?;
        let subject_token_type = r
            .subject_token_type
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("no `subject_token_type`"))?;
        let src = r
            .credential_source
            .ok_or_else(|| bad("no `credential_source`"))?;
        let format = match &src.format {
            None => Format::Text,
            Some(f) => match f.kind.as_deref() {
                None | Some("text") => Format::Text,
                Some("json") => Format::Json(
                    f.subject_token_field_name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| {
                            bad("`format.type: json` needs `format.subject_token_field_name`")
                        })?,
                ),
                Some(other) => return Err(bad(format!("unknown format type {other:?}"))),
            },
        };
        let source = if let Some(env) = &src.environment_id {
            if !env.starts_with("aws") {
                return Err(bad(format!("unknown environment_id {env:?}")));
            }
            if env != "aws1" {
                return Err(bad(format!(
                    "environment_id {env:?} is not supported (aws1 is)"
                )));
            }
            SubjectSource::Aws {
                region_url: src.region_url,
                credentials_url: src.url,
                verification_url: src
                    .regional_cred_verification_url
                    .ok_or_else(|| bad("aws1 needs `regional_cred_verification_url`"))?,
                imdsv2_token_url: src.imdsv2_session_token_url,
            }
        } else if let Some(exe) = src.executable {
            SubjectSource::Executable {
                command: exe
                    .command
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| bad("`executable` needs a `command`"))?,
                timeout: match exe.timeout_millis {
                    None => EXECUTABLE_TIMEOUT,
                    Some(ms @ 5_000..=120_000) => Duration::from_millis(ms),
                    Some(ms) => {
                        return Err(bad(format!(
                            "executable timeout_millis {ms} is outside 5000..=120000"
                        )));
                    }
                },
                output_file: exe.output_file,
            }
        } else if let Some(path) = src.file {
            SubjectSource::File { path, format }
        } else if let Some(url) = src.url {
            SubjectSource::Url {
                url,
                headers: src.headers,
                format,
            }
        } else {
            return Err(bad(
                "`credential_source` has no file, url, environment_id or executable",
            ));
        };
        let lifetime = r
            .service_account_impersonation
            .and_then(|i| i.token_lifetime_seconds)
            .unwrap_or(3600);
        if !(600..=43_200).contains(&lifetime) {
            return Err(bad(format!(
                "service_account_impersonation.token_lifetime_seconds {lifetime} is outside 600..=43200"
            )));
        }
        Ok(ExternalAccount {
            audience,
            subject_token_type,
            token_url: r
                .token_url
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_STS_URL.to_owned()),
            impersonation_url: r
                .service_account_impersonation_url
                .filter(|u| !u.is_empty()),
            impersonation_lifetime: lifetime,
            source,
            workforce_pool_user_project: r.workforce_pool_user_project,
            client: match (r.client_id, r.client_secret) {
                (Some(id), Some(secret)) => Some((id, secret)),
                _ => None,
            },
        })
    }

    /// The RFC 8693 token-exchange form for `subject_token`.
    pub fn exchange_form(&self, subject_token: &str) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
            ("audience", self.audience.clone()),
            ("scope", CLOUD_PLATFORM_SCOPE.to_owned()),
            ("requested_token_type", ACCESS_TOKEN_TYPE.to_owned()),
            ("subject_token", subject_token.to_owned()),
            ("subject_token_type", self.subject_token_type.clone()),
        ];
        if let Some(p) = &self.workforce_pool_user_project
            && self.client.is_none()
        {
            form.push((
                "options",
                serde_json::json!({ "userProject": p }).to_string(),
            ));
        }
        form
    }

    /// A Google access token and its lifetime.
    pub async fn token(
        &self,
        client: &reqwest::Client,
        env: &ExternalAccountEnv,
    ) -> Result<(Secret, Duration), AuthError> {
        let subject = self.subject_token(client, env).await?;
        let mut req = client
            .post(&self.token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_urlencode(&self.exchange_form(subject.expose())));
        if let Some((id, secret)) = &self.client {
            req = req.basic_auth(id, Some(secret));
        }
        let body = send(req, "Google STS token exchange").await?;
        let (sts_token, lifetime) = crate::google_auth::parse_token_reply(&body)?;
        let Some(url) = &self.impersonation_url else {
            return Ok((sts_token, lifetime));
        };
        let req = client
            .post(url)
            .bearer_auth(sts_token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                serde_json::json!({
                    "scope": [CLOUD_PLATFORM_SCOPE],
                    "lifetime": format!("{}s", self.impersonation_lifetime),
                })
                .to_string(),
            );
        let body = send(req, "service account impersonation").await?;
        parse_impersonated(&body)
    }

    async fn subject_token(
        &self,
        client: &reqwest::Client,
        env: &ExternalAccountEnv,
    ) -> Result<Secret, AuthError> {
        let token = match &self.source {
            SubjectSource::File { path, format } => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    bad(format!(
                        "cannot read the subject token file {path}: {}",
                        e.kind()
                    ))
                })?;
                extract(&text, format, "the subject token file")?
            }
            SubjectSource::Url {
                url,
                headers,
                format,
            } => {
                let mut req = client.get(url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let body = send(req, "the subject token URL").await?;
                extract(
                    &String::from_utf8_lossy(&body),
                    format,
                    "the subject token URL",
                )?
            }
            SubjectSource::Aws {
                region_url,
                credentials_url,
                verification_url,
                imdsv2_token_url,
            } => {
                aws_subject_token(
                    client,
                    env,
                    &self.audience,
                    region_url.as_deref(),
                    credentials_url.as_deref(),
                    verification_url,
                    imdsv2_token_url.as_deref(),
                )
                .await?
            }
            SubjectSource::Executable {
                command,
                timeout,
                output_file,
            } => {
                if !env.allow_executables {
                    return Err(bad("executable-sourced credentials run a command: set \
                         GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 to allow it"));
                }
                self.executable_token(command, *timeout, output_file.as_deref())
                    .await?
            }
        };
        Ok(Secret::new(token))
    }

    async fn executable_token(
        &self,
        command: &str,
        timeout: Duration,
        output_file: Option<&str>,
    ) -> Result<String, AuthError> {
        // A still-valid answer cached in the output file is used as is.
        if let Some(file) = output_file
            && let Ok(text) = tokio::fs::read(file).await
            && let Ok(token) = parse_executable_output(&text, &self.subject_token_type, now())
        {
            return Ok(token);
        }
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", &self.audience)
            .env(
                "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE",
                &self.subject_token_type,
            )
            .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(url) = &self.impersonation_url
            && let Some(email) = impersonated_email(url)
        {
            cmd.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
        }
        if let Some(file) = output_file {
            cmd.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", file);
        }
        let out = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| {
                bad(format!(
                    "the executable ran longer than {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| bad(format!("the executable could not run: {}", e.kind())))?;
        if !out.status.success() {
            return Err(bad(format!("the executable failed ({})", out.status)));
        }
        parse_executable_output(&out.stdout, &self.subject_token_type, now())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The service account's email in an impersonation URL
/// (`.../serviceAccounts/{email}:generateAccessToken`).
fn impersonated_email(url: &str) -> Option<&str> {
    let tail = url.rsplit_once("/serviceAccounts/")?.1;
    tail.split_once(':').map(|(email, _)| email)
}

/// Sends `req` and returns the body of a 2xx answer.
async fn send(req: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, AuthError> {
    let resp = req
        .send()
        .await
        .map_err(|_| AuthError::Unavailable(format!("{what}: unreachable")))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|_| AuthError::Unavailable(format!("{what}: reply lost")))?;
    if !(200..300).contains(&status) {
        // Google's STS explains itself in `error_description`; it names no secret.
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["error_description"]
                    .as_str()
                    .or(v["error"]["message"].as_str())
                    .map(|s| s.chars().take(200).collect::<String>())
            })
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(AuthError::Refused {
            status: Some(status),
            message: format!("{what} refused (HTTP {status}){detail}"),
        });
    }
    Ok(body.to_vec())
}

/// The subject token in `text`, as `format` says.
pub fn extract(text: &str, format: &Format, what: &str) -> Result<String, AuthError> {
    let token = match format {
        Format::Text => text.trim().to_owned(),
        Format::Json(field) => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v[field.as_str()].as_str().map(str::to_owned))
            .ok_or_else(|| bad(format!("{what} has no string field {field:?}")))?,
    };
    if token.is_empty() {
        return Err(bad(format!("{what} is empty")));
    }
    Ok(token)
}

/// The impersonation endpoint's answer: `accessToken` and `expireTime`.
pub fn parse_impersonated(body: &[u8]) -> Result<(Secret, Duration), AuthError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Reply {
        access_token: String,
        expire_time: String,
    }
    let r: Reply = serde_json::from_slice(body).map_err(|_| AuthError::Refused {
        status: None,
        message: "service account impersonation answered without accessToken/expireTime".into(),
    })?;
    let expires = modelgate_core::time::parse_rfc3339_ms(&r.expire_time)
        .and_then(|ms| u64::try_from(ms / 1000).ok())
        .ok_or_else(|| AuthError::Refused {
            status: None,
            message: "service account impersonation: expireTime is not an RFC 3339 time".into(),
        })?;
    Ok((
        Secret::new(r.access_token),
        Duration::from_secs(expires.saturating_sub(now())),
    ))
}

/// An executable's answer (AIP-4117): the token when it succeeded, is of
/// the expected type and has not expired at `now`.
pub fn parse_executable_output(
    out: &[u8],
    expected_type: &str,
    now: u64,
) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Out {
        version: Option<u64>,
        success: Option<bool>,
        token_type: Option<String>,
        id_token: Option<String>,
        saml_response: Option<String>,
        expiration_time: Option<u64>,
        code: Option<String>,
        message: Option<String>,
    }
    let o: Out = serde_json::from_slice(out)
        .map_err(|_| bad("the executable did not print a JSON response"))?;
    if o.version != Some(1) {
        return Err(bad("the executable's response has no `version: 1`"));
    }
    match o.success {
        Some(true) => {}
        Some(false) => {
            return Err(bad(format!(
                "the executable reported failure: {} {}",
                o.code.unwrap_or_default(),
                o.message
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        None => return Err(bad("the executable's response has no `success`")),
    }
    if o.token_type.as_deref() != Some(expected_type) {
        return Err(bad(format!(
            "the executable's token_type is {:?}, the file's subject_token_type {expected_type:?}",
            o.token_type.unwrap_or_default()
        )));
    }
    if o.expiration_time.is_some_and(|t| t <= now) {
        return Err(bad("the executable's token has expired"));
    }
    o.id_token
        .or(o.saml_response)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("the executable's response has no id_token or saml_response"))
}

/// AWS-sourced subject token: a `GetCallerIdentity` request signed with the
/// workload's AWS credentials, serialised as JSON and URL-encoded. Google's
/// STS replays it to AWS to learn who the caller is.
#[allow(clippy::too_many_arguments)]
async fn aws_subject_token(
    client: &reqwest::Client,
    env: &ExternalAccountEnv,
    audience: &str,
    region_url: Option<&str>,
    credentials_url: Option<&str>,
    verification_url: &str,
    imdsv2_token_url: Option<&str>,
) -> Result<String, AuthError> {
    // IMDSv2 needs a session token, but only when the metadata service is asked.
    let needs_metadata = env.aws_region.is_none() || env.aws_credentials.is_none();
    let session = match imdsv2_token_url {
        Some(url) if needs_metadata => Some(
            String::from_utf8_lossy(
                &send(
                    client
                        .put(url)
                        .header("x-aws-ec2-metadata-token-ttl-seconds", "300"),
                    "the AWS metadata session token URL",
                )
                .await?,
            )
            .trim()
            .to_owned(),
        ),
        _ => None,
    };
    let metadata = |url: &str| {
        let mut req = client.get(url);
        if let Some(t) = &session {
            req = req.header("x-aws-ec2-metadata-token", t);
        }
        req
    };
    let region = match &env.aws_region {
        Some(r) => r.clone(),
        None => {
            let url = region_url.ok_or_else(|| {
                bad("aws1: no AWS_REGION and no `region_url` to ask for the region")
            })?;
            // The availability zone (`us-east-1b`) minus its last letter.
            let zone = send(metadata(url), "the AWS region URL").await?;
            let zone = String::from_utf8_lossy(&zone).trim().to_owned();
            let mut region = zone;
            region.pop();
            region
        }
    };
    let creds: AwsCredentials = match &env.aws_credentials {
        Some(c) => c.clone(),
        None => {
            let url = credentials_url
                .ok_or_else(|| bad("aws1: no AWS credentials in the environment and no `url`"))?
                .trim_end_matches('/');
            let roles = send(metadata(&format!("{url}/")), "the AWS credentials URL").await?;
            let roles = String::from_utf8_lossy(&roles);
            let role = roles
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .ok_or_else(|| bad("aws1: the instance has no role"))?;
            let body = send(
                metadata(&format!("{url}/{role}")),
                "the AWS credentials URL",
            )
            .await?;
            parse_json_credentials(&body, "the AWS credentials URL")?.creds
        }
    };
    let url = verification_url.replace("{region}", &region);
    signed_caller_identity(&url, &region, audience, &creds, &sigv4::amz_date(now()))
}

/// The serialised, URL-encoded, signed `GetCallerIdentity` request.
pub fn signed_caller_identity(
    url: &str,
    region: &str,
    audience: &str,
    creds: &AwsCredentials,
    amz_date: &str,
) -> Result<String, AuthError> {
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split(['/', '?']).next().unwrap_or(""))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad(format!("aws1: {url:?} is not a URL")))?;
    let signed = sigv4::sign(
        &sigv4::SignableRequest {
            method: "POST",
            url,
            headers: &[("x-goog-cloud-target-resource", audience)],
            body_sha256_hex: sigv4::EMPTY_SHA256,
        },
        &sigv4::Credentials {
            access_key_id: creds.access_key_id.expose(),
            secret_access_key: creds.secret_access_key.expose(),
            session_token: creds.session_token.as_ref().map(Secret::expose),
        },
        &sigv4::SigningParams {
            region,
            service: "sts",
            amz_date,
            content_sha256_header: false,
        },
    )
    .map_err(|e| bad(format!("aws1: cannot sign: {e}")))?;
    let mut headers: Vec<serde_json::Value> = Vec::new();
    let header = |k: &str, v: &str| serde_json::json!({ "key": k, "value": v });
    let find = |name: &str| {
        signed
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    headers.push(header("Authorization", find("authorization").unwrap_or("")));
    headers.push(header("host", host));
    headers.push(header("x-amz-date", find("x-amz-date").unwrap_or(amz_date)));
    headers.push(header("x-goog-cloud-target-resource", audience));
    if let Some(t) = find("x-amz-security-token") {
        headers.push(header("x-amz-security-token", t));
    }
    let request = serde_json::json!({ "url": url, "method": "POST", "headers": headers });
    Ok(percent_encode(&request.to_string()))
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn file(source: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/gw@p.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": source,
        })
    }

    #[test]
    fn sources_parse() {
        let f = ExternalAccount::parse(
            file(serde_json::json!({"file": "/var/run/token"}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            f.source,
            SubjectSource::File {
                path: "/var/run/token".into(),
                format: Format::Text
            }
        );
        assert_eq!(f.impersonation_lifetime, 3600);
        assert_eq!(
            impersonated_email(f.impersonation_url.as_deref().unwrap()),
            Some("gw@p.iam.gserviceaccount.com")
        );
        let u = ExternalAccount::parse(
            file(
                serde_json::json!({"url": "http://169.254.169.254/metadata/identity/oauth2/token",
                "headers": {"Metadata": "True"},
                "format": {"type": "json", "subject_token_field_name": "access_token"}}),
            )
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(
            matches!(u.source, SubjectSource::Url { format: Format::Json(ref f), .. } if f == "access_token")
        );
        let a = ExternalAccount::parse(
            file(serde_json::json!({"environment_id": "aws1",
                "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}))
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(matches!(a.source, SubjectSource::Aws { .. }));
        for (source, needle) in [
            (serde_json::json!({}), "no file, url"),
            (
                serde_json::json!({"environment_id": "aws2", "regional_cred_verification_url": "x"}),
                "aws2",
            ),
            (
                serde_json::json!({"file": "f", "format": {"type": "json"}}),
                "subject_token_field_name",
            ),
            (
                serde_json::json!({"executable": {"command": "x", "timeout_millis": 10}}),
                "timeout_millis",
            ),
        ] {
            let e = ExternalAccount::parse(file(source).to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_exchange_form_follows_rfc_8693() {
        let mut f = ExternalAccount::parse(
            file(serde_json::json!({"file": "/t"}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        f.workforce_pool_user_project = Some("billing-proj".into());
        let form = f.exchange_form("subject");
        let get = |k: &str| form.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some(TOKEN_EXCHANGE_GRANT));
        assert_eq!(get("requested_token_type"), Some(ACCESS_TOKEN_TYPE));
        assert_eq!(
            get("subject_token_type"),
            Some("urn:ietf:params:oauth:token-type:jwt")
        );
        assert_eq!(get("scope"), Some(CLOUD_PLATFORM_SCOPE));
        assert_eq!(get("options"), Some(r#"{"userProject":"billing-proj"}"#));
    }

    #[test]
    fn executable_output() {
        let jwt = "urn:ietf:params:oauth:token-type:jwt";
        let ok = br#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"eyJ","expiration_time":2000}"#;
        assert_eq!(parse_executable_output(ok, jwt, 1000).unwrap(), "eyJ");
        assert!(parse_executable_output(ok, jwt, 2000).is_err(), "expired");
        assert!(
            parse_executable_output(ok, "urn:ietf:params:oauth:token-type:saml2", 1000).is_err()
        );
        let failed = br#"{"version":1,"success":false,"code":"401","message":"denied"}"#;
        let e = parse_executable_output(failed, jwt, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("401 denied"), "{e}");
    }

    #[test]
    fn aws_subject_tokens_are_signed_get_caller_identity_requests() {
        let creds = AwsCredentials {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("tok")),
        };
        let t = signed_caller_identity(
            "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            "eu-west-1",
            "//iam.googleapis.com/aud",
            &creds,
            "20261204T120000Z",
        )
        .unwrap();
        let decoded: String = {
            let b = t.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&t[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        let v: serde_json::Value = serde_json::from_str(&decoded).unwrap();
        assert_eq!(v["method"], "POST");
        let headers: Vec<(&str, &str)> = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["key"].as_str().unwrap(), h["value"].as_str().unwrap()))
            .collect();
        assert_eq!(headers[1], ("host", "sts.eu-west-1.amazonaws.com"));
        assert_eq!(headers[2], ("x-amz-date", "20261204T120000Z"));
        assert_eq!(
            headers[3],
            ("x-goog-cloud-target-resource", "//iam.googleapis.com/aud")
        );
        assert_eq!(headers[4], ("x-amz-security-token", "tok"));
        assert!(headers[0].1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/eu-west-1/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, Signature="
        ), "{}", headers[0].1);
    }
}
