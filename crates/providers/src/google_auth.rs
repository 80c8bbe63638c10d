//! Google OAuth 2.0 access tokens for Vertex AI.
//!
//! Three credential files are understood, the ones `GOOGLE_APPLICATION_CREDENTIALS`
//! points to (<https://cloud.google.com/docs/authentication/application-default-credentials>)
//! — `external_account` files (workload identity federation) are in
//! [`crate::google_external`]:
//! - `service_account` keys: a JWT signed with the key (RS256) is exchanged at
//!   the file's `token_uri` with the `urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   grant (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>);
//! - `authorized_user` files (`gcloud auth application-default login`): the
//!   `refresh_token` grant at `https://oauth2.googleapis.com/token`.
//!
//! The pure half (parsing, JWT construction and signing, the token reply) has
//! no I/O. [`TokenSource`] caches one token per credentials file until 60 s
//! before it expires; one refresh runs at a time (a tokio mutex held only
//! around the token request, never across an upstream call) and concurrent
//! callers wait for its result. Tokens and keys never appear in errors or logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use modelgate_config::{ExternalAccountEnv, Secret};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;

use crate::credentials::{Refreshing, form_urlencode};
use crate::google_external::ExternalAccount;

/// The scope Vertex AI calls need.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint (the default `token_uri`).
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// A cached token is replaced this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime asked for in the JWT assertion (Google's maximum).
const ASSERTION_LIFETIME_SECS: u64 = 3600;

pub use crate::credentials::AuthError;

/// A parsed credentials file.
#[derive(Clone)]
pub enum Credentials {
    ServiceAccount(ServiceAccount),
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
    /// Workload identity federation ([`crate::google_external`]).
    ExternalAccount(Box<ExternalAccount>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("client_email", &sa.client_email)
                .field("token_uri", &sa.token_uri)
                .finish_non_exhaustive(),
            Credentials::AuthorizedUser { token_uri, .. } => f
                .debug_struct("AuthorizedUser")
                .field("token_uri", token_uri)
                .finish_non_exhaustive(),
            Credentials::ExternalAccount(e) => f
                .debug_struct("ExternalAccount")
                .field("audience", &e.audience)
                .field("token_url", &e.token_url)
                .finish_non_exhaustive(),
        }
    }
}

/// A service-account key.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    /// The PKCS#8 DER of the key (`private_key` is its PEM).
    key_der: Arc<Vec<u8>>,
    pub token_uri: String,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

fn missing(field: &str, kind: &str) -> AuthError {
    AuthError::Credentials(format!("{kind} credentials file has no `{field}` field"))
}

impl Credentials {
    /// Parses a credentials file's JSON.
    pub fn parse(json: &[u8]) -> Result<Credentials, AuthError> {
        let raw: RawFile = serde_json::from_slice(json)
            .map_err(|_| AuthError::Credentials("credentials file is not valid JSON".into()))?;
        let token_uri = raw
            .token_uri
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        match raw.kind.as_deref() {
            Some("service_account") => {
                let kind = "service_account";
                let client_email = raw
                    .client_email
                    .ok_or_else(|| missing("client_email", kind))?;
                let pem = raw
                    .private_key
                    .ok_or_else(|| missing("private_key", kind))?;
                let key_der = pem_to_der(&pem, "PRIVATE KEY").ok_or_else(|| {
                    AuthError::Credentials(
                        "service_account private_key is not a PKCS#8 PEM key".into(),
                    )
                })?;
                // Reject a bad key now rather than at every signature.
                RsaKeyPair::from_pkcs8(&key_der).map_err(|_| {
                    AuthError::Credentials(
                        "service_account private_key is not an RSA key ring accepts".into(),
                    )
                })?;
                Ok(Credentials::ServiceAccount(ServiceAccount {
                    client_email,
                    private_key_id: raw.private_key_id,
                    key_der: Arc::new(key_der),
                    token_uri,
                }))
            }
            Some("authorized_user") => {
                let kind = "authorized_user";
                Ok(Credentials::AuthorizedUser {
                    client_id: raw.client_id.ok_or_else(|| missing("client_id", kind))?,
                    client_secret: Secret::new(
                        raw.client_secret
                            .ok_or_else(|| missing("client_secret", kind))?,
                    ),
                    refresh_token: Secret::new(
                        raw.refresh_token
                            .ok_or_else(|| missing("refresh_token", kind))?,
                    ),
                    token_uri,
                })
            }
            Some("external_account") => Ok(Credentials::ExternalAccount(Box::new(
                ExternalAccount::parse(json)?,
            ))),
            Some(other) => Err(AuthError::Credentials(format!(
                "credentials file type {other:?} is not supported (service_account, authorized_user or external_account)"
            ))),
            None => Err(AuthError::Credentials(
                "credentials file has no `type` field".into(),
            )),
        }
    }

    /// Where tokens come from.
    pub fn token_uri(&self) -> &str {
        match self {
            Credentials::ServiceAccount(sa) => &sa.token_uri,
            Credentials::AuthorizedUser { token_uri, .. } => token_uri,
            Credentials::ExternalAccount(e) => &e.token_url,
        }
    }

    /// The form body of a token request at `now` (Unix seconds).
    pub fn token_request(&self, now: u64) -> Result<Vec<(&'static str, String)>, AuthError> {
        Ok(match self {
            Credentials::ServiceAccount(sa) => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                ),
                ("assertion", sa.assertion(now)?),
            ],
            Credentials::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().to_owned()),
                ("refresh_token", refresh_token.expose().to_owned()),
            ],
            Credentials::ExternalAccount(_) => {
                return Err(AuthError::Credentials(
                    "external_account tokens come from a token exchange, not a form".into(),
                ));
            }
        })
    }
}

impl ServiceAccount {
    /// The JWT header and claims of an assertion made at `now`.
    pub fn jwt_parts(&self, now: u64) -> (serde_json::Value, serde_json::Value) {
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.private_key_id {
            header["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": CLOUD_PLATFORM_SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        (header, claims)
    }

    /// The signed assertion (`header.claims.signature`, each base64url).
    pub fn assertion(&self, now: u64) -> Result<String, AuthError> {
        let (header, claims) = self.jwt_parts(now);
        let mut jwt = base64url(header.to_string().as_bytes());
        jwt.push('.');
        jwt.push_str(&base64url(claims.to_string().as_bytes()));
        let key = RsaKeyPair::from_pkcs8(&self.key_der)
            .map_err(|_| AuthError::Credentials("service_account key is unusable".into()))?;
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            jwt.as_bytes(),
            &mut sig,
        )
        .map_err(|_| AuthError::Credentials("signing the JWT failed".into()))?;
        jwt.push('.');
        jwt.push_str(&base64url(&sig));
        Ok(jwt)
    }
}

/// A token endpoint's successful reply.
#[derive(Debug, Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a token endpoint's 200 body into the token and its lifetime
/// (3600 s when the reply names none).
pub fn parse_token_reply(body: &[u8]) -> Result<(Secret, Duration), AuthError> {
    let r: TokenReply = serde_json::from_slice(body).map_err(|_| AuthError::Refused {
        status: None,
        message: "token endpoint reply has no access_token".into(),
    })?;
    if r.access_token.is_empty() {
        return Err(AuthError::Refused {
            status: None,
            message: "token endpoint returned an empty access_token".into(),
        });
    }
    Ok((
        Secret::new(r.access_token),
        Duration::from_secs(r.expires_in.unwrap_or(3600)),
    ))
}

/// Base64url without padding (RFC 7515 §2).
pub fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(A[idx as usize]));
        }
    }
    out
}

/// Decodes standard base64 (padding and whitespace allowed).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' | b' ' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The DER inside a PEM block labelled `label` (`-----BEGIN {label}-----`).
pub fn pem_to_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let der = base64_decode(&pem[start..stop])?;
    (!der.is_empty()).then_some(der)
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Origin {
    /// A service-account or `authorized_user` file.
    File(PathBuf),
    /// The metadata server at this base URL.
    Metadata(String),
}

/// The metadata server's token path (the default service account).
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Tokens for one credentials file (or the metadata server): cached,
/// refreshed on demand, one refresh at a time.
pub struct TokenSource {
    origin: Origin,
    cache: Refreshing<Secret>,
    /// What an `external_account` file may take from the environment.
    external: ExternalAccountEnv,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source reading `path` whenever a token is needed (a rotated key is
    /// picked up at the next refresh).
    pub fn new(path: PathBuf) -> TokenSource {
        TokenSource::with_origin(Origin::File(path))
    }

    /// [`TokenSource::new`], with the environment `external_account` files
    /// may use.
    pub fn with_env(path: PathBuf, external: ExternalAccountEnv) -> TokenSource {
        TokenSource {
            external,
            ..TokenSource::with_origin(Origin::File(path))
        }
    }

    /// A source asking the metadata server at `base` for the workload's
    /// service-account token.
    pub fn metadata(base: String) -> TokenSource {
        TokenSource::with_origin(Origin::Metadata(base))
    }

    fn with_origin(origin: Origin) -> TokenSource {
        TokenSource {
            origin,
            cache: Refreshing::new(),
            external: ExternalAccountEnv::default(),
        }
    }

    /// How many token requests were made.
    pub fn fetches(&self) -> u64 {
        self.cache.fetches()
    }

    /// Forgets `token` if it is the cached one (the upstream refused it: it
    /// was revoked, or the clock is off), so the next call fetches a new one.
    pub fn invalidate(&self, token: &Secret) {
        self.cache.invalidate_if(|t| t == token);
    }

    /// A valid token: the cached one, else a new one from the token endpoint
    /// (used until [`REFRESH_MARGIN`] before it expires).
    pub async fn token(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Secret, AuthError> {
        self.cache
            .get(|| async {
                let (token, lifetime) = self.fetch(client, timeout).await?;
                Ok((token, lifetime.saturating_sub(REFRESH_MARGIN)))
            })
            .await
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(Secret, Duration), AuthError> {
        let req = match &self.origin {
            Origin::Metadata(base) => client
                .get(format!("{base}{METADATA_TOKEN_PATH}"))
                .header("metadata-flavor", "Google"),
            Origin::File(path) => {
                let creds = load(path).await?;
                if let Credentials::ExternalAccount(ext) = &creds {
                    return match tokio::time::timeout(timeout, ext.token(client, &self.external))
                        .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(AuthError::Unavailable(format!(
                            "workload identity federation did not complete within {} ms",
                            timeout.as_millis()
                        ))),
                    };
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let form = creds.token_request(now)?;
                client
                    .post(creds.token_uri())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form_urlencode(&form))
            }
        };
        let exchange = async {
            let resp = req
                .send()
                .await
                .map_err(|_| AuthError::Unavailable("token endpoint unreachable".into()))?;
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map_err(|_| AuthError::Unavailable("token endpoint reply lost".into()))?;
            if !(200..300).contains(&status) {
                return Err(AuthError::Refused {
                    status: Some(status),
                    message: format!("token endpoint refused the credentials (HTTP {status})"),
                });
            }
            parse_token_reply(&body)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(AuthError::Unavailable(format!(
                "token endpoint did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// Reads and parses the file. A small local read, only on refresh (about
/// once an hour), so it is done in place.
async fn load(path: &Path) -> Result<Credentials, AuthError> {
    let bytes = std::fs::read(path).map_err(|e| {
        AuthError::Credentials(format!(
            "cannot read credentials file {}: {}",
            path.display(),
            e.kind()
        ))
    })?;
    Credentials::parse(&bytes)
}

/// One [`TokenSource`] per credentials file, shared by every deployment that
/// names it.
#[derive(Debug, Default)]
pub struct TokenSources {
    by_path: Mutex<HashMap<PathBuf, Arc<TokenSource>>>,
    metadata: Mutex<HashMap<String, Arc<TokenSource>>>,
}

impl TokenSources {
    /// The source for `path`, created on first use.
    pub fn get(&self, path: &Path, external: &ExternalAccountEnv) -> Arc<TokenSource> {
        let make = || Arc::new(TokenSource::with_env(path.to_owned(), external.clone()));
        match self.by_path.lock() {
            Ok(mut m) => m.entry(path.to_owned()).or_insert_with(make).clone(),
            // A poisoned map only loses the cache.
            Err(_) => make(),
        }
    }

    /// The source for the metadata server at `base`, created on first use.
    pub fn get_metadata(&self, base: &str) -> Arc<TokenSource> {
        match self.metadata.lock() {
            Ok(mut m) => m
                .entry(base.to_owned())
                .or_insert_with(|| Arc::new(TokenSource::metadata(base.to_owned())))
                .clone(),
            Err(_) => Arc::new(TokenSource::metadata(base.to_owned())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A throwaway RSA key made for these tests only
    /// (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`). It
    /// signs nothing anywhere else.
    const TEST_ONLY_KEY: &str = include_str!("../tests/fixtures/TEST_ONLY_service_account_key.pem");

    fn sa_json(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid-1",
            "private_key": TEST_ONLY_KEY,
            "client_email": "gw@p.iam.gserviceaccount.com",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn b64url_decode(s: &str) -> Vec<u8> {
        let std: String = s
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        base64_decode(&std).unwrap()
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want);
            assert_eq!(b64url_decode(want), input.as_bytes());
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn jwt_has_google_claims_and_a_verifiable_rs256_signature() {
        let creds =
            Credentials::parse(sa_json("https://oauth2.googleapis.com/token").as_bytes()).unwrap();
        let Credentials::ServiceAccount(sa) = &creds else {
            panic!("not a service account")
        };
        let jwt = sa.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&b64url_decode(parts[0])).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        let claims: serde_json::Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
        assert_eq!(claims["iss"], "gw@p.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        let key =
            RsaKeyPair::from_pkcs8(&pem_to_der(TEST_ONLY_KEY, "PRIVATE KEY").unwrap()).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &b64url_decode(parts[2]))
            .unwrap();
        assert!(
            public
                .verify(b"tampered", &b64url_decode(parts[2]))
                .is_err()
        );
        // The form: jwt-bearer grant with the assertion.
        let form = creds.token_request(1_700_000_000).unwrap();
        assert_eq!(
            form[0],
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()
            )
        );
        assert_eq!(form[1].0, "assertion");
        // Debug never shows the key.
        assert!(!format!("{creds:?}").contains("PRIVATE"));
    }

    #[test]
    fn credential_files_are_checked() {
        let user = br#"{"type":"authorized_user","client_id":"cid","client_secret":"cs","refresh_token":"rt"}"#;
        let c = Credentials::parse(user).unwrap();
        assert_eq!(c.token_uri(), DEFAULT_TOKEN_URI);
        let form = c.token_request(0).unwrap();
        assert_eq!(form[0], ("grant_type", "refresh_token".to_owned()));
        assert!(form.contains(&("refresh_token", "rt".to_owned())));
        assert!(!format!("{c:?}").contains("rt\""));
        for (bad, needle) in [
            (&br#"{"type":"external_account"}"#[..], "no `audience`"),
            (br#"{"type":"impersonated_service_account"}"#, "not supported"),
            (br#"{"client_email":"x"}"#, "no `type`"),
            (br#"{"type":"service_account","private_key":"x"}"#, "client_email"),
            (
                br#"{"type":"service_account","client_email":"e","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}"#,
                "RSA key",
            ),
            (br#"{"type":"authorized_user","client_id":"c"}"#, "client_secret"),
            (b"nope", "not valid JSON"),
        ] {
            let e = Credentials::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let (t, life) = parse_token_reply(
            br#"{"access_token":"ya29.x","expires_in":120,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!((t.expose(), life), ("ya29.x", Duration::from_secs(120)));
        assert!(parse_token_reply(b"{}").is_err());
    }

    /// A token endpoint on a local socket: answers each request with the
    /// next reply (status, expires_in) and counts requests.
    async fn token_endpoint(
        expires_in: u64,
        status: u16,
    ) -> (String, Arc<std::sync::atomic::AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut got = Vec::new();
                    // Read the head and the form body (Content-Length).
                    loop {
                        let Ok(k) = sock.read(&mut buf).await else {
                            return;
                        };
                        if k == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..k]);
                        let text = String::from_utf8_lossy(&got);
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let len = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if got.len() >= head_end + 4 + len {
                                let body = &text[head_end + 4..];
                                assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"), "{body}");
                                assert!(body.contains("assertion="), "{body}");
                                break;
                            }
                        }
                    }
                    let reply = if status == 200 {
                        format!(
                            r#"{{"access_token":"ya29.token-{n}","expires_in":{expires_in},"token_type":"Bearer"}}"#
                        )
                    } else {
                        r#"{"error":"invalid_grant","error_description":"secret-ish detail"}"#
                            .to_owned()
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}/token"), count)
    }

    fn write_sa(token_uri: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with_contents(&sa_json(token_uri))
    }

    mod tempfile_path {
        /// A file removed on drop (no tempfile dependency for one test helper).
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with_contents(s: &str) -> TempPath {
                use std::sync::atomic::{AtomicU64, Ordering};
                static N: AtomicU64 = AtomicU64::new(0);
                let p = std::env::temp_dir().join(format!(
                    "modelgate-sa-{}-{}.json",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::write(&p, s).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    #[tokio::test]
    async fn tokens_are_cached_until_the_margin_and_fetched_once_concurrently() {
        let (uri, count) = token_endpoint(3600, 200).await;
        let file = write_sa(&uri);
        let source = Arc::new(TokenSource::new(file.0.clone()));
        let client = client();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (s, c) = (source.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                s.token(&c, Duration::from_secs(5)).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "ya29.token-1");
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(source.fetches(), 1);
        // Past the refresh point (now + 3600 s - 60 s) the cache is stale.
        assert!(
            source
                .cache
                .fresh(tokio::time::Instant::now() + Duration::from_secs(3539))
                .is_some()
        );
        assert!(
            source
                .cache
                .fresh(tokio::time::Instant::now() + Duration::from_secs(3541))
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_token_within_the_margin_is_refreshed_and_refusals_are_redacted() {
        // expires_in at the margin: stale at once, so every call refreshes.
        let (uri, count) = token_endpoint(60, 200).await;
        let file = write_sa(&uri);
        let source = TokenSource::new(file.0.clone());
        let client = client();
        let t1 = source.token(&client, Duration::from_secs(5)).await.unwrap();
        let t2 = source.token(&client, Duration::from_secs(5)).await.unwrap();
        assert_eq!((t1.expose(), t2.expose()), ("ya29.token-1", "ya29.token-2"));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);

        let (uri, _) = token_endpoint(3600, 400).await;
        let file = write_sa(&uri);
        let e = TokenSource::new(file.0.clone())
            .token(&client, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            AuthError::Refused {
                status: Some(400),
                message: "token endpoint refused the credentials (HTTP 400)".into()
            }
        );
        let e = TokenSource::new("/nonexistent/sa.json".into())
            .token(&client, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::Credentials(_)), "{e:?}");
    }
}
