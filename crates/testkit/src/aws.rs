//! The AWS credential services, mocked: STS, a container credentials
//! endpoint and the EC2 instance metadata service (IMDSv2). Credentials
//! they issue are temporary: the Bedrock routes accept them, with their
//! session token, until they are replaced.
//!
//! - `POST /sts` (point `AWS_ENDPOINT_URL_STS` at `{url}/sts`): the
//!   form-encoded Query API, answering XML like STS
//!   (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>).
//!   `AssumeRoleWithWebIdentity` is unsigned and takes any non-empty
//!   `WebIdentityToken` the test accepted ([`crate::MockUpstream::accept_web_identity_token`]);
//!   `AssumeRole` must be SigV4-signed for service `sts` by credentials the
//!   mock knows (the signature is recomputed). Both check `Version`,
//!   `RoleArn` and `RoleSessionName` as STS does.
//! - `GET /ecs-credentials`: the container endpoint; when the test set an
//!   authorization token, the `Authorization` header must equal it.
//! - IMDSv2: `PUT /latest/api/token` (with
//!   `X-aws-ec2-metadata-token-ttl-seconds`) gives a session token, which
//!   `GET /latest/meta-data/iam/security-credentials/` (the role name) and
//!   `.../{role}` (the credentials) require in `X-aws-ec2-metadata-token`.

use axum::http::{HeaderMap, Method};
use serde_json::json;

use crate::{Reply, Shared, bedrock};

/// STS's path on the mock.
pub const STS_PATH: &str = "/sts";
/// The container credentials endpoint's path.
pub const CONTAINER_PATH: &str = "/ecs-credentials";
/// The instance profile role the metadata service reports.
pub const IMDS_ROLE: &str = "modelgate-mock-role";
const IMDS_TOKEN_PATH: &str = "/latest/api/token";
const IMDS_CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
/// The instance's availability zone (`us-east-1b`).
pub const IMDS_ZONE_PATH: &str = "/latest/meta-data/placement/availability-zone";

fn sts_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::Raw {
        status,
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>mock</RequestId></ErrorResponse>"
        ),
    }
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

/// Issues temporary credentials the Bedrock routes will accept; returns
/// (access key id, secret, session token, expiration as RFC 3339).
fn issue(shared: &Shared) -> (String, String, String, String) {
    let n = fastrand::u64(..);
    let id = format!("ASIAMOCK{n:016X}");
    let secret = format!("mock-secret-{n:x}");
    let token = format!("mock-session-{n:x}");
    let mut known = shared.bedrock_known.lock().unwrap();
    known.aws.push((id.clone(), secret.clone()));
    known.sessions.push((id.clone(), token.clone()));
    let lifetime = match shared
        .aws_expires_in
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        0 => 3600,
        n => n,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d, h, mi, s) =
        modelgate_core::time::civil_from_unix(i64::try_from(now + lifetime).unwrap_or(0));
    let expiration = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
    shared.aws_issued.lock().unwrap().push(id.clone());
    (id, secret, token, expiration)
}

fn valid_role_arn(arn: &str) -> bool {
    arn.starts_with("arn:aws:iam::") && arn.contains(":role/")
}

fn sts(shared: &Shared, headers: &HeaderMap, path_and_query: &str, body: &[u8]) -> Reply {
    let form = parse_form(body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("Version") != Some("2011-06-15") {
        return sts_error(400, "InvalidAction", "Version must be 2011-06-15");
    }
    let role = get("RoleArn").unwrap_or("");
    if !valid_role_arn(role) {
        return sts_error(400, "ValidationError", "RoleArn is not a valid role ARN");
    }
    let session = get("RoleSessionName").unwrap_or("");
    if !(2..=64).contains(&session.len()) {
        return sts_error(
            400,
            "ValidationError",
            "RoleSessionName must be 2-64 characters",
        );
    }
    let action = get("Action").unwrap_or("");
    match action {
        "AssumeRoleWithWebIdentity" => {
            let token = get("WebIdentityToken").unwrap_or("");
            let accepted = shared.web_identity_tokens.lock().unwrap();
            if token.is_empty() || !accepted.iter().any(|t| t == token) {
                return sts_error(
                    400,
                    "InvalidIdentityToken",
                    "Couldn't retrieve verification key from your identity provider",
                );
            }
            if headers.contains_key("authorization") {
                return sts_error(
                    400,
                    "InvalidAction",
                    "AssumeRoleWithWebIdentity is not signed",
                );
            }
        }
        "AssumeRole" => {
            let known = shared.bedrock_known.lock().unwrap().clone();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match bedrock::authenticate_for(
                &known,
                headers,
                "POST",
                path_and_query,
                body,
                now,
                "sts",
            ) {
                Ok((_, akid)) => shared.sts_callers.lock().unwrap().push(akid),
                Err(bedrock::Denied::Reply(_) | bedrock::Denied::Bearer) => {
                    return sts_error(
                        403,
                        "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the signature you provided.",
                    );
                }
            }
            let wanted = shared.external_id.lock().unwrap().clone();
            if wanted.is_some() && get("ExternalId") != wanted.as_deref() {
                return sts_error(
                    403,
                    "AccessDenied",
                    "User is not authorized to perform: sts:AssumeRole",
                );
            }
        }
        _ => return sts_error(400, "InvalidAction", "Could not find operation"),
    }
    let (id, secret, token, expiration) = issue(shared);
    let body = format!(
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
         <AssumedRoleUser><Arn>{role}/{session}</Arn><AssumedRoleId>AROAMOCK:{session}</AssumedRoleId></AssumedRoleUser>\
         <Credentials><AccessKeyId>{id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
         <SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         </{action}Result><ResponseMetadata><RequestId>mock</RequestId></ResponseMetadata></{action}Response>"
    );
    Reply::Raw { status: 200, body }
}

fn json_creds(shared: &Shared, code: bool) -> Reply {
    let (id, secret, token, expiration) = issue(shared);
    let mut v = json!({
        "AccessKeyId": id, "SecretAccessKey": secret, "Token": token, "Expiration": expiration,
    });
    if code {
        v["Code"] = json!("Success");
        v["Type"] = json!("AWS-HMAC");
    }
    Reply::json(v)
}

/// Answers the AWS credential routes; `None` for every other path.
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Reply> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    Some(match (method.as_str(), path) {
        ("POST", STS_PATH) => sts(shared, headers, path_and_query, body),
        ("GET", CONTAINER_PATH) => {
            let wanted = shared.container_token.lock().unwrap().clone();
            if wanted.is_some() && header("authorization") != wanted.as_deref() {
                return Some(Reply::error(403, json!({"message": "unauthorized"})));
            }
            json_creds(shared, false)
        }
        ("PUT", IMDS_TOKEN_PATH) => {
            if header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                return Some(Reply::Raw {
                    status: 400,
                    body: "missing ttl".into(),
                });
            }
            let token = format!("imds-{}", fastrand::u64(..));
            shared.imds_tokens.lock().unwrap().push(token.clone());
            Reply::Raw {
                status: 200,
                body: token,
            }
        }
        ("GET", IMDS_ZONE_PATH) => {
            let ok = header("x-aws-ec2-metadata-token")
                .is_some_and(|t| shared.imds_tokens.lock().unwrap().iter().any(|k| k == t));
            if !ok {
                return Some(Reply::Raw {
                    status: 401,
                    body: String::new(),
                });
            }
            Reply::Raw {
                status: 200,
                body: "us-east-1b".into(),
            }
        }
        ("GET", p) if p.starts_with(IMDS_CREDS_PATH) => {
            let ok = header("x-aws-ec2-metadata-token")
                .is_some_and(|t| shared.imds_tokens.lock().unwrap().iter().any(|k| k == t));
            if !ok {
                return Some(Reply::Raw {
                    status: 401,
                    body: String::new(),
                });
            }
            match &p[IMDS_CREDS_PATH.len()..] {
                "" => Reply::Raw {
                    status: 200,
                    body: format!("{IMDS_ROLE}\n"),
                },
                IMDS_ROLE => json_creds(shared, true),
                _ => Reply::Raw {
                    status: 404,
                    body: String::new(),
                },
            }
        }
        _ => return None,
    })
}
