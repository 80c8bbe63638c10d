//! AWS credentials for Bedrock at run time: fixed keys, the AWS SDKs'
//! default credential chain, and roles assumed on top of either.
//!
//! The chain, in the SDKs' order
//! (<https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html>),
//! after the environment's keys (which the config already turned into fixed
//! credentials):
//! 1. the profile in the shared files (`~/.aws/credentials`, `~/.aws/config`):
//!    static keys, `credential_process`, or `role_arn` with `source_profile`,
//!    `credential_source` or `web_identity_token_file`. IAM Identity Center
//!    (SSO) profiles are refused with the way around it;
//! 2. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`): STS
//!    `AssumeRoleWithWebIdentity` with the token file's contents;
//! 3. the container endpoint (ECS task roles, EKS Pod Identity);
//! 4. the EC2 instance metadata service (IMDSv2: a session token first).
//!
//! A role (`aws_role_arn`) is assumed with STS `AssumeRole`, signed with
//! SigV4 by the credentials the steps above produced.
//!
//! Resolved credentials are cached ([`Refreshing`]) until five minutes
//! before they expire; keys that do not expire are re-read every fifteen
//! minutes, so a rotated file is picked up. One resolution runs at a time;
//! it never overlaps an upstream call. Credentials Bedrock refuses are
//! forgotten. Errors name the source, never a key or a token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use modelgate_codec::sigv4;
use modelgate_config::{
    AssumeRole, AwsAuth, AwsChain, AwsCredentials, BedrockConfig, ContainerEndpoint, Secret,
    WebIdentity,
};
use serde::Deserialize;

use crate::credentials::{AuthError, Refreshing, form_urlencode};

/// Temporary credentials are replaced this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Credentials that do not expire are re-read this often.
pub const REREAD_AFTER: Duration = Duration::from_secs(900);
/// The instance metadata service answers at once or is not there.
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime asked for assumed roles (the STS default, and the most a role
/// chained from another role may have).
const ROLE_SECONDS: &str = "3600";
/// How long a failed resolution (nothing found, endpoint unreachable) is
/// answered from memory.
pub const FAILURE_HOLD: Duration = Duration::from_secs(5);
/// How deep `source_profile` may chain.
const MAX_PROFILE_DEPTH: usize = 4;

/// Credentials and when they stop working (Unix seconds), if they do.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub creds: AwsCredentials,
    pub expires_unix: Option<u64>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------
// Pure parts: shared files, STS XML, credential JSON
// ---------------------------------------------------------------------------

/// Profiles of the shared files: name → lowercase key → value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profiles(HashMap<String, HashMap<String, String>>);

impl Profiles {
    /// Parses a shared `config` file (`[default]`, `[profile NAME]`; other
    /// sections such as `[sso-session NAME]` are kept under their full
    /// name) or `credentials` file (`[NAME]`), and merges it in: keys
    /// already present win, so merge the credentials file first.
    pub fn merge(&mut self, text: &str, config_file: bool) {
        let mut section: Option<String> = None;
        let mut nested = false;
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = inner.trim();
                section = Some(if config_file {
                    match name.strip_prefix("profile ") {
                        Some(p) => p.trim().to_owned(),
                        None if name == "default" => "default".to_owned(),
                        None => format!("[{name}]"),
                    }
                } else {
                    name.to_owned()
                });
                nested = false;
                continue;
            }
            // An indented line under `key =` is a sub-property (`s3 =\n  x = y`).
            if nested && raw.starts_with([' ', '\t']) {
                continue;
            }
            let (Some(sec), Some((k, v))) = (&section, line.split_once('=')) else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            nested = v.is_empty();
            self.0
                .entry(sec.clone())
                .or_default()
                .entry(k)
                .or_insert_with(|| v.to_owned());
        }
    }

    /// A profile's settings.
    pub fn get(&self, name: &str) -> Option<&HashMap<String, String>> {
        self.0.get(name)
    }
}

/// The text of the first `<tag>` element in `xml`, entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The `Credentials` of an STS `AssumeRole*` response.
pub fn parse_sts_credentials(xml: &str) -> Result<Resolved, AuthError> {
    let creds = xml_text(xml, "Credentials").ok_or_else(|| AuthError::Refused {
        status: None,
        message: "STS answered without Credentials".into(),
    })?;
    let field = |tag: &str| {
        xml_text(&creds, tag)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AuthError::Refused {
                status: None,
                message: format!("STS credentials have no {tag}"),
            })
    };
    Ok(Resolved {
        creds: AwsCredentials {
            access_key_id: Secret::new(field("AccessKeyId")?),
            secret_access_key: Secret::new(field("SecretAccessKey")?),
            session_token: Some(Secret::new(field("SessionToken")?)),
        },
        expires_unix: xml_text(&creds, "Expiration").and_then(|e| expiry(&e)),
    })
}

/// An STS error reply's `Code: Message`.
fn sts_error(xml: &str) -> String {
    let code = xml_text(xml, "Code").unwrap_or_else(|| "error".into());
    let mut msg = xml_text(xml, "Message").unwrap_or_default();
    msg.truncate(200);
    format!("{code}: {msg}")
}

/// Unix seconds of an RFC 3339 expiry.
fn expiry(s: &str) -> Option<u64> {
    modelgate_core::time::parse_rfc3339_ms(s).and_then(|ms| u64::try_from(ms / 1000).ok())
}

/// Credentials as the container endpoint, the instance metadata service
/// (`Token`) and `credential_process` (`SessionToken`) print them.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
    /// The instance metadata service's `Code` (`Success`).
    code: Option<String>,
    /// `credential_process` output version (1).
    version: Option<u64>,
}

/// Parses credentials JSON from `source` (named in errors).
pub fn parse_json_credentials(body: &[u8], source: &str) -> Result<Resolved, AuthError> {
    let bad = |what: &str| AuthError::Refused {
        status: None,
        message: format!("{source}: {what}"),
    };
    let j: JsonCredentials =
        serde_json::from_slice(body).map_err(|_| bad("the answer is not credentials JSON"))?;
    if let Some(code) = j.code.as_deref()
        && code != "Success"
    {
        return Err(bad(&format!("answered Code {code:?}")));
    }
    if let Some(v) = j.version
        && v != 1
    {
        return Err(bad(&format!("Version {v} is not supported (1 is)")));
    }
    let id = j
        .access_key_id
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("no AccessKeyId"))?;
    let secret = j
        .secret_access_key
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("no SecretAccessKey"))?;
    let expires_unix = match j.expiration {
        Some(e) => Some(expiry(&e).ok_or_else(|| bad("Expiration is not an RFC 3339 time"))?),
        None => None,
    };
    Ok(Resolved {
        creds: AwsCredentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(secret),
            session_token: j
                .session_token
                .or(j.token)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        },
        expires_unix,
    })
}

/// The URL to POST to at an STS endpoint (the endpoint itself when it has a
/// path, else its root).
fn sts_url(endpoint: &str) -> String {
    let after_scheme = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    if after_scheme.contains('/') {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/")
    }
}

// ---------------------------------------------------------------------------
// I/O: STS, the container endpoint, IMDS, credential_process, the files
// ---------------------------------------------------------------------------

fn unreachable(what: &str) -> AuthError {
    AuthError::Unavailable(format!("{what} unreachable"))
}

async fn read_body(resp: reqwest::Response, what: &str) -> Result<(u16, Vec<u8>), AuthError> {
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|_| AuthError::Unavailable(format!("{what}: reply lost")))?;
    Ok((status, body.to_vec()))
}

/// Calls an STS action (form-encoded, XML answer), signed with `signer`
/// when the action needs it (`AssumeRole`; web identity is unsigned).
async fn sts_call(
    client: &reqwest::Client,
    endpoint: &str,
    region: &str,
    form: &[(&str, String)],
    signer: Option<&AwsCredentials>,
) -> Result<Resolved, AuthError> {
    let action = form
        .iter()
        .find(|(k, _)| *k == "Action")
        .map_or("STS", |(_, v)| v.as_str());
    let what = format!("STS {action}");
    let url = sts_url(endpoint);
    let body = form_urlencode(form);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut req = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, content_type);
    if let Some(creds) = signer {
        let amz_date = sigv4::amz_date(now_unix());
        let signed = sigv4::sign(
            &sigv4::SignableRequest {
                method: "POST",
                url: &url,
                headers: &[("content-type", content_type)],
                body_sha256_hex: &sigv4::sha256_hex(body.as_bytes()),
            },
            &sigv4::Credentials {
                access_key_id: creds.access_key_id.expose(),
                secret_access_key: creds.secret_access_key.expose(),
                session_token: creds.session_token.as_ref().map(Secret::expose),
            },
            &sigv4::SigningParams {
                region,
                service: "sts",
                amz_date: &amz_date,
                content_sha256_header: false,
            },
        )
        .map_err(|e| AuthError::Credentials(format!("{what}: cannot sign: {e}")))?;
        for (name, value) in signed {
            req = req.header(name, value);
        }
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|_| unreachable(&what))?;
    let (status, body) = read_body(resp, &what).await?;
    let text = String::from_utf8_lossy(&body);
    if !(200..300).contains(&status) {
        return Err(AuthError::Refused {
            status: Some(status),
            message: format!("{what} refused (HTTP {status}): {}", sts_error(&text)),
        });
    }
    parse_sts_credentials(&text)
}

async fn assume_role(
    client: &reqwest::Client,
    source: &AwsCredentials,
    role: &AssumeRole,
    region: &str,
) -> Result<Resolved, AuthError> {
    let mut form = vec![
        ("Action", "AssumeRole".to_owned()),
        ("Version", "2011-06-15".to_owned()),
        ("RoleArn", role.role_arn.clone()),
        ("RoleSessionName", role.session_name.clone()),
        ("DurationSeconds", ROLE_SECONDS.to_owned()),
    ];
    if let Some(ext) = &role.external_id {
        form.push(("ExternalId", ext.clone()));
    }
    sts_call(client, &role.sts_endpoint, region, &form, Some(source)).await
}

async fn web_identity(
    client: &reqwest::Client,
    sts_endpoint: &str,
    region: &str,
    w: &WebIdentity,
) -> Result<Resolved, AuthError> {
    let token = read_file(&w.token_file, "web identity token file").await?;
    let form = [
        ("Action", "AssumeRoleWithWebIdentity".to_owned()),
        ("Version", "2011-06-15".to_owned()),
        ("RoleArn", w.role_arn.clone()),
        ("RoleSessionName", w.session_name.clone()),
        ("DurationSeconds", ROLE_SECONDS.to_owned()),
        ("WebIdentityToken", token.trim().to_owned()),
    ];
    sts_call(client, sts_endpoint, region, &form, None).await
}

async fn container(client: &reqwest::Client, c: &ContainerEndpoint) -> Result<Resolved, AuthError> {
    const WHAT: &str = "container credentials endpoint";
    let mut req = client.get(&c.url);
    let token = match (&c.auth_token_file, &c.auth_token) {
        (Some(file), _) => Some(read_file(file, "container authorization token file").await?),
        (None, Some(t)) => Some(t.expose().to_owned()),
        (None, None) => None,
    };
    if let Some(t) = token {
        let mut v = reqwest::header::HeaderValue::from_str(t.trim()).map_err(|_| {
            AuthError::Credentials("the container authorization token is not a header value".into())
        })?;
        v.set_sensitive(true);
        req = req.header(reqwest::header::AUTHORIZATION, v);
    }
    let resp = req.send().await.map_err(|_| unreachable(WHAT))?;
    let (status, body) = read_body(resp, WHAT).await?;
    if !(200..300).contains(&status) {
        return Err(AuthError::Refused {
            status: Some(status),
            message: format!("{WHAT} refused (HTTP {status})"),
        });
    }
    parse_json_credentials(&body, WHAT)
}

/// IMDSv2: a session token, the instance profile's role name, its credentials.
async fn imds(client: &reqwest::Client, base: &str) -> Result<Resolved, AuthError> {
    const WHAT: &str = "EC2 instance metadata service";
    let step = |req: reqwest::RequestBuilder| async move {
        let resp = tokio::time::timeout(IMDS_TIMEOUT, req.send())
            .await
            .map_err(|_| unreachable(WHAT))?
            .map_err(|_| unreachable(WHAT))?;
        let (status, body) = read_body(resp, WHAT).await?;
        if !(200..300).contains(&status) {
            return Err(AuthError::Refused {
                status: Some(status),
                message: format!("{WHAT} refused (HTTP {status})"),
            });
        }
        Ok(body)
    };
    let token = step(
        client
            .put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
    )
    .await?;
    let token = String::from_utf8_lossy(&token).trim().to_owned();
    let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let roles = step(
        client
            .get(&roles_url)
            .header("x-aws-ec2-metadata-token", &token),
    )
    .await?;
    let roles = String::from_utf8_lossy(&roles);
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            AuthError::Credentials(format!(
                "{WHAT}: this instance has no instance profile role"
            ))
        })?;
    let creds = step(
        client
            .get(format!("{roles_url}{role}"))
            .header("x-aws-ec2-metadata-token", &token),
    )
    .await?;
    parse_json_credentials(&creds, WHAT)
}

/// Runs a profile's `credential_process` (through `sh -c`, as the AWS CLI
/// and SDKs run it on Unix) and reads its JSON. Its stderr is not read: it
/// may hold secrets.
async fn credential_process(command: &str, profile: &str) -> Result<Resolved, AuthError> {
    let what = format!("credential_process of AWS profile {profile:?}");
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| AuthError::Credentials(format!("{what} could not run: {}", e.kind())))?;
    if !out.status.success() {
        return Err(AuthError::Credentials(format!(
            "{what} failed ({})",
            out.status
        )));
    }
    parse_json_credentials(&out.stdout, &what)
}

async fn read_file(path: &Path, what: &str) -> Result<String, AuthError> {
    tokio::fs::read_to_string(path).await.map_err(|e| {
        AuthError::Credentials(format!(
            "cannot read {what} {}: {}",
            path.display(),
            e.kind()
        ))
    })
}

/// Both shared files, credentials first (its keys win). A missing file is
/// no error.
async fn load_profiles(chain: &AwsChain) -> Result<Profiles, AuthError> {
    let mut profiles = Profiles::default();
    for (path, config_file) in [(&chain.credentials_file, false), (&chain.config_file, true)] {
        let Some(path) = path else { continue };
        match tokio::fs::read_to_string(path).await {
            Ok(text) => profiles.merge(&text, config_file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AuthError::Credentials(format!(
                    "cannot read AWS shared file {}: {}",
                    path.display(),
                    e.kind()
                )));
            }
        }
    }
    Ok(profiles)
}

/// The credentials of profile `name`.
async fn profile_credentials(
    client: &reqwest::Client,
    chain: &AwsChain,
    region: &str,
    profiles: &Profiles,
    name: &str,
    depth: usize,
) -> Result<Resolved, AuthError> {
    let cred_err = |m: String| Err(AuthError::Credentials(m));
    if depth > MAX_PROFILE_DEPTH {
        return cred_err(format!(
            "AWS profile {name:?}: source_profile chains deeper than {MAX_PROFILE_DEPTH} (a loop?)"
        ));
    }
    let Some(p) = profiles.get(name) else {
        return cred_err(format!("AWS profile {name:?} is not in the shared files"));
    };
    if p.contains_key("sso_session") || p.contains_key("sso_start_url") {
        return cred_err(format!(
            "AWS profile {name:?} uses IAM Identity Center (SSO), which the gateway does not read; \
             set `credential_process = aws configure export-credentials --profile {name} --format process` \
             in another profile and use that one"
        ));
    }
    let static_keys = || match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(Resolved {
            creds: AwsCredentials {
                access_key_id: Secret::new(id.clone()),
                secret_access_key: Secret::new(secret.clone()),
                session_token: p
                    .get("aws_session_token")
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .map(Secret::new),
            },
            expires_unix: None,
        }),
        _ => None,
    };
    if let Some(role_arn) = p.get("role_arn") {
        let session_name = p
            .get("role_session_name")
            .cloned()
            .unwrap_or_else(|| "modelgate".to_owned());
        if let Some(token_file) = p.get("web_identity_token_file") {
            let w = WebIdentity {
                token_file: token_file.into(),
                role_arn: role_arn.clone(),
                session_name,
            };
            return web_identity(client, &chain.sts_endpoint, region, &w).await;
        }
        let source = if let Some(src) = p.get("source_profile") {
            if src == name {
                match static_keys() {
                    Some(r) => r,
                    None => {
                        return cred_err(format!(
                            "AWS profile {name:?} is its own source_profile but has no keys"
                        ));
                    }
                }
            } else {
                Box::pin(profile_credentials(
                    client,
                    chain,
                    region,
                    profiles,
                    src,
                    depth + 1,
                ))
                .await?
            }
        } else if let Some(cs) = p.get("credential_source") {
            match cs.as_str() {
                "Ec2InstanceMetadata" => match &chain.imds {
                    Some(base) => imds(client, base).await?,
                    None => {
                        return cred_err(format!(
                            "AWS profile {name:?}: credential_source Ec2InstanceMetadata, but AWS_EC2_METADATA_DISABLED is set"
                        ));
                    }
                },
                "EcsContainer" => match &chain.container {
                    Some(c) => container(client, c).await?,
                    None => {
                        return cred_err(format!(
                            "AWS profile {name:?}: credential_source EcsContainer, but no AWS_CONTAINER_CREDENTIALS_* variable is set"
                        ));
                    }
                },
                other => {
                    return cred_err(format!(
                        "AWS profile {name:?}: credential_source {other:?} is not supported here \
                         (Ec2InstanceMetadata, EcsContainer; keys in the environment are used before any profile)"
                    ));
                }
            }
        } else {
            return cred_err(format!(
                "AWS profile {name:?} has role_arn but no source_profile, credential_source or web_identity_token_file"
            ));
        };
        let role = AssumeRole {
            role_arn: role_arn.clone(),
            session_name,
            external_id: p.get("external_id").cloned(),
            sts_endpoint: chain.sts_endpoint.clone(),
        };
        return assume_role(client, &source.creds, &role, region).await;
    }
    if let Some(cmd) = p.get("credential_process") {
        return credential_process(cmd, name).await;
    }
    match static_keys() {
        Some(r) => Ok(r),
        None => cred_err(format!(
            "AWS profile {name:?} has no credentials (aws_access_key_id and aws_secret_access_key, \
             credential_process, or role_arn)"
        )),
    }
}

/// Walks the chain: the first source that is configured answers (its
/// failure is the chain's failure, as in the SDKs).
async fn chain_credentials(
    client: &reqwest::Client,
    chain: &AwsChain,
    region: &str,
) -> Result<Resolved, AuthError> {
    let profiles = load_profiles(chain).await?;
    if profiles.get(&chain.profile).is_some() || chain.profile_named {
        return profile_credentials(client, chain, region, &profiles, &chain.profile, 0).await;
    }
    if let Some(w) = &chain.web_identity {
        return web_identity(client, &chain.sts_endpoint, region, w).await;
    }
    if let Some(c) = &chain.container {
        return container(client, c).await;
    }
    let tried = "no keys in the environment, no `default` profile in the shared files, \
                 no web identity token, no container credentials endpoint";
    match &chain.imds {
        Some(base) => imds(client, base).await.map_err(|e| match e {
            AuthError::Unavailable(_) => AuthError::Credentials(format!(
                "no AWS credentials found: {tried}, and the EC2 instance metadata service did not answer"
            )),
            other => other,
        }),
        None => Err(AuthError::Credentials(format!(
            "no AWS credentials found: {tried}; the instance metadata service is disabled"
        ))),
    }
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

/// Credentials for one Bedrock credential configuration, cached and
/// refreshed.
pub struct AwsCredentialSource {
    auth: AwsAuth,
    role: Option<AssumeRole>,
    region: String,
    cache: Refreshing<Arc<AwsCredentials>>,
    /// The last resolution that found no credentials, and when.
    failed: Mutex<Option<(tokio::time::Instant, AuthError)>>,
}

impl std::fmt::Debug for AwsCredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentialSource")
            .field("region", &self.region)
            .field("role", &self.role.as_ref().map(|r| &r.role_arn))
            .finish_non_exhaustive()
    }
}

impl AwsCredentialSource {
    fn new(b: &BedrockConfig) -> Option<AwsCredentialSource> {
        Some(AwsCredentialSource {
            auth: b.aws.clone()?,
            role: b.assume_role.clone(),
            region: b.region.clone(),
            cache: Refreshing::new(),
            failed: Mutex::new(None),
        })
    }

    /// How many resolutions ran.
    pub fn fetches(&self) -> u64 {
        self.cache.fetches()
    }

    /// Valid credentials: the cached ones, else freshly resolved within
    /// `timeout`.
    pub async fn credentials(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Arc<AwsCredentials>, AuthError> {
        // A chain that found nothing (or a credential endpoint that did not
        // answer) is not walked again for every request: without it, each
        // one would wait out the instance metadata service's timeout.
        if let Ok(failed) = self.failed.lock()
            && let Some((at, e)) = failed.as_ref()
            && at.elapsed() < FAILURE_HOLD
        {
            return Err(e.clone());
        }
        let r = self
            .cache
            .get(|| async {
                let r = tokio::time::timeout(timeout, self.resolve(client))
                    .await
                    .map_err(|_| {
                        AuthError::Unavailable(format!(
                            "AWS credentials were not resolved within {} ms",
                            timeout.as_millis()
                        ))
                    })??;
                let usable = match r.expires_unix {
                    Some(at) => Duration::from_secs(at.saturating_sub(now_unix()))
                        .saturating_sub(REFRESH_MARGIN),
                    None => REREAD_AFTER,
                };
                Ok((Arc::new(r.creds), usable))
            })
            .await;
        if let Err(e @ (AuthError::Credentials(_) | AuthError::Unavailable(_))) = &r
            && let Ok(mut failed) = self.failed.lock()
        {
            *failed = Some((tokio::time::Instant::now(), e.clone()));
        }
        r
    }

    /// Forgets `creds` if they are the cached ones (Bedrock refused them).
    pub fn invalidate(&self, creds: &Arc<AwsCredentials>) {
        self.cache.invalidate_if(|c| Arc::ptr_eq(c, creds));
    }

    async fn resolve(&self, client: &reqwest::Client) -> Result<Resolved, AuthError> {
        let base = match &self.auth {
            AwsAuth::Static(c) => Resolved {
                creds: c.clone(),
                expires_unix: None,
            },
            AwsAuth::Chain(chain) => chain_credentials(client, chain, &self.region).await?,
        };
        match &self.role {
            None => Ok(base),
            Some(role) => assume_role(client, &base.creds, role, &self.region).await,
        }
    }
}

/// One [`AwsCredentialSource`] per distinct credential configuration.
#[derive(Debug, Default)]
pub struct AwsCredentialSources {
    sources: Mutex<Vec<Arc<AwsCredentialSource>>>,
}

impl AwsCredentialSources {
    /// The source for `b`'s credentials (`None` for a Bedrock API key),
    /// created on first use.
    pub fn get(&self, b: &BedrockConfig) -> Option<Arc<AwsCredentialSource>> {
        let same = |s: &AwsCredentialSource| {
            Some(&s.auth) == b.aws.as_ref() && s.role == b.assume_role && s.region == b.region
        };
        let Ok(mut sources) = self.sources.lock() else {
            // A poisoned list only loses the cache.
            return AwsCredentialSource::new(b).map(Arc::new);
        };
        if let Some(s) = sources.iter().find(|s| same(s)) {
            return Some(s.clone());
        }
        let s = Arc::new(AwsCredentialSource::new(b)?);
        sources.push(s.clone());
        Some(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn shared_files_parse_like_the_sdks() {
        let creds = "\
# comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key=secret/with+chars=
[prod]
AWS_ACCESS_KEY_ID = AKIAPROD
aws_secret_access_key = s2
";
        let config = "\
[default]
region = us-east-1
aws_access_key_id = AKIA-IGNORED
[profile prod]
region = eu-west-1
s3 =
  max_concurrent_requests = 10
role_arn = arn:aws:iam::1:role/r
[profile sso]
sso_session = corp
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
; trailing comment
";
        let mut p = Profiles::default();
        p.merge(creds, false);
        p.merge(config, true);
        let d = p.get("default").unwrap();
        assert_eq!(
            d["aws_access_key_id"], "AKIADEFAULT",
            "credentials file wins"
        );
        assert_eq!(d["aws_secret_access_key"], "secret/with+chars=");
        assert_eq!(d["region"], "us-east-1");
        let prod = p.get("prod").unwrap();
        assert_eq!(
            prod["aws_access_key_id"], "AKIAPROD",
            "keys are case-insensitive"
        );
        assert_eq!(prod["role_arn"], "arn:aws:iam::1:role/r");
        assert!(
            !prod.contains_key("max_concurrent_requests"),
            "nested keys stay nested"
        );
        assert!(p.get("sso").unwrap().contains_key("sso_session"));
        assert!(p.get("[sso-session corp]").is_some());
        assert!(p.get("corp").is_none());
    }

    #[test]
    fn sts_replies() {
        let ok = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>FwoG&amp;token</SessionToken>
      <SecretAccessKey>wJalr/K7MDENG</SecretAccessKey>
      <Expiration>2026-12-04T18:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let r = parse_sts_credentials(ok).unwrap();
        assert_eq!(r.creds.access_key_id.expose(), "ASIAEXAMPLE");
        assert_eq!(r.creds.secret_access_key.expose(), "wJalr/K7MDENG");
        assert_eq!(r.creds.session_token.unwrap().expose(), "FwoG&token");
        assert_eq!(r.expires_unix, Some(1_796_407_200));
        let err = r#"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>
<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>"#;
        assert!(parse_sts_credentials(err).is_err());
        assert_eq!(
            sts_error(err),
            "AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"
        );
        assert_eq!(
            sts_url("https://sts.us-east-1.amazonaws.com"),
            "https://sts.us-east-1.amazonaws.com/"
        );
        assert_eq!(sts_url("http://127.0.0.1:9/sts"), "http://127.0.0.1:9/sts");
    }

    #[test]
    fn credential_json_from_each_source() {
        let imds = br#"{"Code":"Success","LastUpdated":"2026-12-04T12:00:00Z","Type":"AWS-HMAC",
            "AccessKeyId":"ASIAIMDS","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-04T18:00:00Z"}"#;
        let r = parse_json_credentials(imds, "imds").unwrap();
        assert_eq!(r.creds.session_token.unwrap().expose(), "t");
        assert_eq!(r.expires_unix, Some(1_796_407_200));
        let process = br#"{"Version":1,"AccessKeyId":"AKIAPROC","SecretAccessKey":"s"}"#;
        let r = parse_json_credentials(process, "p").unwrap();
        assert!(r.creds.session_token.is_none() && r.expires_unix.is_none());
        for bad in [
            &br#"{"Version":2,"AccessKeyId":"a","SecretAccessKey":"s"}"#[..],
            br#"{"Code":"Failure","AccessKeyId":"a","SecretAccessKey":"s"}"#,
            br#"{"AccessKeyId":"a"}"#,
            br#"{"AccessKeyId":"a","SecretAccessKey":"s","Expiration":"soon"}"#,
            b"not json",
        ] {
            let e = parse_json_credentials(bad, "src").unwrap_err().to_string();
            assert!(e.starts_with("src: "), "{e}");
        }
    }
}
