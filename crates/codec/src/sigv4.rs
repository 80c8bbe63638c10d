//! AWS Signature Version 4 request signing, as a pure function.
//!
//! Reference: "Create a signed AWS API request"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>)
//! and the AWS SigV4 test suite, whose published signatures the tests below
//! reproduce.
//!
//! Steps, as implemented by [`sign`]:
//! 1. Canonical request: method, canonical URI, canonical query string,
//!    canonical headers, signed header names, hex SHA-256 of the body.
//! 2. String to sign: `AWS4-HMAC-SHA256`, the `X-Amz-Date`, the credential
//!    scope `<yyyymmdd>/<region>/<service>/aws4_request`, the hex SHA-256 of
//!    the canonical request.
//! 3. Signing key: HMAC-SHA256 chained over the date, region, service and
//!    `aws4_request`, starting from `"AWS4" + secret`.
//! 4. `Authorization: AWS4-HMAC-SHA256 Credential=<akid>/<scope>,
//!    SignedHeaders=<names>, Signature=<hex HMAC of the string to sign>`.
//!
//! The canonical URI is the request path *as sent on the wire*, URI-encoded
//! once more ("each path segment must be URI-encoded twice, except for
//! Amazon S3"). This matters for Bedrock: a model id such as
//! `anthropic.claude-3-5-sonnet-20240620-v1:0` travels as `...-v1%3A0` and is
//! signed as `...-v1%253A0`. Paths are normalised (empty and `.` segments
//! dropped, `..` resolved) as for every service but S3; S3 is not supported.
//!
//! Time comes in as an argument (`amz_date`), so signing is deterministic.
//!
//! Bedrock also accepts **API keys** (bearer tokens) instead of SigV4: such a
//! request carries `Authorization: Bearer <key>` and is not signed at all
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html>).
//! [`bearer_authorization`] builds that header.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The signing algorithm name.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The SigV4 service name for Bedrock Runtime (the host is
/// `bedrock-runtime.<region>.amazonaws.com`, the signing name `bedrock`).
pub const BEDROCK_SERVICE: &str = "bedrock";

/// Hex SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Long-term or temporary AWS credentials. `Debug` never prints the secret
/// or the session token.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// `AKIA...` / `ASIA...`.
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// The session token of temporary credentials (STS); sent, and signed,
    /// as `x-amz-security-token`.
    pub session_token: Option<&'a str>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// Where and when the request is signed.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// `us-east-1`, ...
    pub region: &'a str,
    /// The signing name of the service ([`BEDROCK_SERVICE`] for Bedrock).
    pub service: &'a str,
    /// The request time as `YYYYMMDDTHHMMSSZ` (UTC); see [`amz_date`].
    pub amz_date: &'a str,
    /// Also send (and sign) `x-amz-content-sha256`. Bedrock does not require
    /// it; the AWS test-suite vectors are computed without it.
    pub content_sha256_header: bool,
}

/// The parts of the HTTP request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    /// `GET`, `POST`, ... (upper case).
    pub method: &'a str,
    /// The full URL as it will be sent: `https://host[:port]/path?query`,
    /// path and query already percent-encoded.
    pub url: &'a str,
    /// Headers to sign besides `host` and the `x-amz-*` headers this module
    /// adds (for Bedrock: `content-type`, and `accept` on streams). They must
    /// be sent exactly as given.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body ([`sha256_hex`]); [`EMPTY_SHA256`] without one.
    pub body_sha256_hex: &'a str,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The URL is not `http(s)://host/...`.
    InvalidUrl(&'static str),
    /// `amz_date` is not `YYYYMMDDTHHMMSSZ`.
    InvalidDate,
    /// Region or service empty or with characters a scope cannot hold.
    InvalidScope,
    /// The body hash is not 64 lowercase hex digits (or `UNSIGNED-PAYLOAD`).
    InvalidBodyHash,
    /// A header name is not a token, or a value holds a line break.
    InvalidHeader(String),
    /// The caller passed a header this module sets itself.
    ReservedHeader(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::InvalidUrl(why) => write!(f, "cannot sign: invalid URL ({why})"),
            SignError::InvalidDate => write!(f, "cannot sign: amz_date must be YYYYMMDDTHHMMSSZ"),
            SignError::InvalidScope => write!(f, "cannot sign: invalid region or service"),
            SignError::InvalidBodyHash => {
                write!(f, "cannot sign: body hash must be 64 lowercase hex digits")
            }
            SignError::InvalidHeader(name) => write!(f, "cannot sign: invalid header `{name}`"),
            SignError::ReservedHeader(name) => {
                write!(f, "cannot sign: header `{name}` is set by the signer")
            }
        }
    }
}

impl std::error::Error for SignError {}

/// A signed request: the headers to add, and the intermediate strings (for
/// diagnosing a `SignatureDoesNotMatch`, whose message shows AWS's own
/// canonical request). Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to add to the request, lowercase names: `x-amz-date`,
    /// `x-amz-content-sha256` (when asked for), `x-amz-security-token` (with
    /// a session token), `authorization`. `host` is not among them: the HTTP
    /// client sets it from the URL, to the value that was signed.
    pub headers: Vec<(String, String)>,
    /// The canonical request (step 1).
    pub canonical_request: String,
    /// The string to sign (step 2).
    pub string_to_sign: String,
    /// `host;x-amz-date;...`.
    pub signed_headers: String,
    /// Hex signature.
    pub signature: String,
}

/// Signs a request; returns the headers to add to it.
pub fn sign(
    req: &SignableRequest<'_>,
    creds: &Credentials<'_>,
    params: &SigningParams<'_>,
) -> Result<Vec<(String, String)>, SignError> {
    sign_detailed(req, creds, params).map(|s| s.headers)
}

/// Signs a request; returns the headers and the intermediate strings.
pub fn sign_detailed(
    req: &SignableRequest<'_>,
    creds: &Credentials<'_>,
    params: &SigningParams<'_>,
) -> Result<Signed, SignError> {
    let date = date_stamp(params.amz_date)?;
    if !valid_scope_part(params.region) || !valid_scope_part(params.service) {
        return Err(SignError::InvalidScope);
    }
    let hash = req.body_sha256_hex;
    let hash_ok = hash == "UNSIGNED-PAYLOAD"
        || (hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if !hash_ok {
        return Err(SignError::InvalidBodyHash);
    }
    let url = parse_url(req.url)?;

    // Canonical headers: lowercase names, values trimmed with inner runs of
    // spaces collapsed, repeated names joined with commas, sorted by name.
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut has_host = false;
    for (name, value) in req.headers {
        let lower = name.to_ascii_lowercase();
        if !is_token(&lower) || value.contains(['\r', '\n']) {
            return Err(SignError::InvalidHeader((*name).to_owned()));
        }
        if matches!(
            lower.as_str(),
            "authorization" | "x-amz-date" | "x-amz-content-sha256" | "x-amz-security-token"
        ) {
            return Err(SignError::ReservedHeader(lower));
        }
        has_host |= lower == "host";
        headers.push((lower, canonical_value(value)));
    }
    if !has_host {
        headers.push(("host".into(), url.host.clone()));
    }
    let mut added = vec![("x-amz-date".to_owned(), params.amz_date.to_owned())];
    if params.content_sha256_header {
        added.push(("x-amz-content-sha256".into(), hash.to_owned()));
    }
    if let Some(token) = creds.session_token {
        if token.contains(['\r', '\n']) {
            return Err(SignError::InvalidHeader("x-amz-security-token".into()));
        }
        added.push(("x-amz-security-token".into(), token.to_owned()));
    }
    headers.extend(added.iter().cloned());
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some(last) if last.0 == name => {
                last.1.push(',');
                last.1.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(&url.path),
        canonical_query(&url.query),
        canonical_headers,
        signed_headers,
        hash
    );
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        params.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );

    let k_date = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, params.region.as_bytes());
    let k_service = hmac_sha256(&k_region, params.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));

    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    );
    let mut out = added;
    out.push(("authorization".into(), authorization));
    Ok(Signed {
        headers: out,
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    })
}

/// The header for Bedrock API-key (bearer token) authentication, which
/// replaces SigV4: `("authorization", "Bearer <key>")`.
pub fn bearer_authorization(api_key: &str) -> (String, String) {
    ("authorization".into(), format!("Bearer {api_key}"))
}

/// Hex SHA-256 of `data` (the body hash [`sign`] takes).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds (UTC).
pub fn amz_date(unix_seconds: u64) -> String {
    let (y, m, d, h, mi, s) =
        modelgate_core::time::civil_from_unix(i64::try_from(unix_seconds).unwrap_or(i64::MAX));
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (long ones are hashed first), so the
    // length error `new_from_slice` can return does not occur; an all-zero
    // result on that impossible path would only make the signature fail.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    s
}

/// The `YYYYMMDD` part of a valid `YYYYMMDDTHHMMSSZ`.
fn date_stamp(amz_date: &str) -> Result<&str, SignError> {
    let b = amz_date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && digits(0..8) && digits(9..15) {
        Ok(&amz_date[..8])
    } else {
        Err(SignError::InvalidDate)
    }
}

fn valid_scope_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// RFC 7230 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Trims and collapses runs of spaces and tabs into one space.
fn canonical_value(v: &str) -> String {
    v.split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

struct ParsedUrl {
    /// The `Host` header value: lowercase host, port only when not the
    /// scheme's default (as HTTP clients send it).
    host: String,
    path: String,
    query: String,
}

fn parse_url(url: &str) -> Result<ParsedUrl, SignError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let (rest, default_port) = if lower.starts_with("https://") {
        (&url[8..], ":443")
    } else if lower.starts_with("http://") {
        (&url[7..], ":80")
    } else {
        return Err(SignError::InvalidUrl("scheme must be http or https"));
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.is_empty() {
        return Err(SignError::InvalidUrl("no host"));
    }
    if authority.contains('@') {
        return Err(SignError::InvalidUrl("user info is not supported"));
    }
    if authority.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(SignError::InvalidUrl("invalid host"));
    }
    let mut host = authority.to_ascii_lowercase();
    if let Some(stripped) = host.strip_suffix(default_port) {
        host = stripped.to_owned();
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    if path.contains(|c: char| c.is_whitespace() || c.is_control())
        || query.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(SignError::InvalidUrl("unencoded whitespace"));
    }
    Ok(ParsedUrl {
        host,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        query: query.into(),
    })
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (and
/// `/` when `keep_slash`), with upper-case hex, as SigV4 requires.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` sequences; anything else (including malformed escapes) is
/// kept as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hi = char::from(b[i + 1]).to_digit(16);
            let lo = char::from(b[i + 2]).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The wire path, normalised (empty and `.` segments dropped, `..` resolved)
/// and URI-encoded once more.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(&normalized, true)
}

/// Parameters decoded, re-encoded strictly, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| uri_encode(&String::from_utf8_lossy(&percent_decode(s)), false);
            (enc(k), enc(v))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS SigV4 test suite's credentials and time.
    const SUITE_CREDS: Credentials<'static> = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    const SUITE_PARAMS: SigningParams<'static> = SigningParams {
        region: "us-east-1",
        service: "service",
        amz_date: "20150830T123600Z",
        content_sha256_header: false,
    };
    const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn suite(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        creds: &Credentials<'_>,
    ) -> Signed {
        let hash = sha256_hex(body);
        sign_detailed(
            &SignableRequest {
                method,
                url,
                headers,
                body_sha256_hex: &hash,
            },
            creds,
            &SUITE_PARAMS,
        )
        .unwrap()
    }

    fn authz(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    fn authorization(s: &Signed) -> &str {
        &s.headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .unwrap()
            .1
    }

    /// Method, URL, headers, body, signed header names, signature.
    type SuiteCase<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [u8],
        &'a str,
        &'a str,
    );

    /// Published results of the AWS SigV4 test suite (`aws-sig-v4-test-suite`,
    /// `<case>/<case>.authz`): get-vanilla, get-vanilla-query-order-key-case,
    /// post-vanilla, post-vanilla-query, get-header-value-trim,
    /// post-x-www-form-urlencoded.
    #[test]
    fn aws_test_suite_vectors() {
        let cases: [SuiteCase<'_>; 6] = [
            (
                "GET",
                "https://example.amazonaws.com/",
                &[],
                b"",
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                &[],
                b"",
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "POST",
                "https://example.amazonaws.com/",
                &[],
                b"",
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "POST",
                "https://example.amazonaws.com/?Param1=value1",
                &[],
                b"",
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            ),
            (
                "GET",
                "https://example.amazonaws.com/",
                &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
                b"",
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            ),
            (
                "POST",
                "https://example.amazonaws.com/",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"Param1=value1",
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
        ];
        for (method, url, headers, body, signed, sig) in cases {
            let s = suite(method, url, headers, body, &SUITE_CREDS);
            assert_eq!(authorization(&s), authz(signed, sig), "{method} {url}");
            assert_eq!(
                s.headers[0],
                ("x-amz-date".into(), "20150830T123600Z".into())
            );
        }
    }

    #[test]
    fn get_vanilla_intermediate_strings() {
        let s = suite(
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            &SUITE_CREDS,
        );
        assert_eq!(
            s.canonical_request,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    /// `post-sts-token/post-sts-header-before`: the session token is signed.
    #[test]
    fn session_token_is_signed() {
        let creds = Credentials {
            session_token: Some(SUITE_TOKEN),
            ..SUITE_CREDS
        };
        let s = suite("POST", "https://example.amazonaws.com/", &[], b"", &creds);
        assert_eq!(
            authorization(&s),
            authz(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
        assert!(
            s.headers
                .contains(&("x-amz-security-token".into(), SUITE_TOKEN.into()))
        );
    }

    #[test]
    fn bedrock_model_ids_are_encoded_twice() {
        let s = suite(
            "POST",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            &[("content-type", "application/json")],
            b"{}",
            &SUITE_CREDS,
        );
        assert!(
            s.canonical_request.starts_with(
                "POST\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n\n"
            ),
            "{}",
            s.canonical_request
        );
    }

    /// A Bedrock Converse call with temporary credentials. The expected
    /// signature was computed independently with `openssl dgst` (SHA-256 and
    /// the HMAC chain, by hand from the canonical request below).
    #[test]
    fn bedrock_converse_post() {
        let body = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}"#;
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "7421da8d1a0949a481724fee62d5886aacde03836bf58248adb73e8b61ac0d54"
        );
        let creds = Credentials {
            session_token: Some("FQoGZXIvYXdzEXAMPLE"),
            ..SUITE_CREDS
        };
        let s = sign_detailed(
            &SignableRequest {
                method: "POST",
                url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                headers: &[("Content-Type", "application/json")],
                body_sha256_hex: &hash,
            },
            &creds,
            &SigningParams {
                region: "us-east-1",
                service: BEDROCK_SERVICE,
                amz_date: "20250101T120000Z",
                content_sha256_header: true,
            },
        )
        .unwrap();
        assert_eq!(
            s.canonical_request,
            format!(
                "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\n\
                 content-type:application/json\n\
                 host:bedrock-runtime.us-east-1.amazonaws.com\n\
                 x-amz-content-sha256:{hash}\n\
                 x-amz-date:20250101T120000Z\n\
                 x-amz-security-token:FQoGZXIvYXdzEXAMPLE\n\n\
                 content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n{hash}"
            )
        );
        assert_eq!(
            s.headers,
            vec![
                ("x-amz-date".to_owned(), "20250101T120000Z".to_owned()),
                ("x-amz-content-sha256".to_owned(), hash.clone()),
                ("x-amz-security-token".to_owned(), "FQoGZXIvYXdzEXAMPLE".to_owned()),
                (
                    "authorization".to_owned(),
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
                     Signature=028337b1ab8568fc9924dde9e6105fad180f8ae12a5020c64fa9426b906fc453"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn content_sha256_header_is_added_and_signed() {
        let hash = sha256_hex(b"{}");
        let s = sign_detailed(
            &SignableRequest {
                method: "POST",
                url: "https://bedrock-runtime.us-west-2.amazonaws.com:443/model/m/converse",
                headers: &[("Content-Type", "application/json")],
                body_sha256_hex: &hash,
            },
            &SUITE_CREDS,
            &SigningParams {
                region: "us-west-2",
                service: BEDROCK_SERVICE,
                amz_date: "20250101T000000Z",
                content_sha256_header: true,
            },
        )
        .unwrap();
        assert_eq!(
            s.signed_headers,
            "content-type;host;x-amz-content-sha256;x-amz-date"
        );
        // The default port is not part of the signed host.
        assert!(
            s.canonical_request
                .contains("\nhost:bedrock-runtime.us-west-2.amazonaws.com\n")
        );
        let names: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-amz-date", "x-amz-content-sha256", "authorization"]
        );
        assert_eq!(s.headers[1].1, hash);
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(canonical_uri("/a b%2Fc"), "/a%20b%252Fc");
        assert_eq!(canonical_query("b=2&a=%41%zz&a=1&c"), "a=1&a=A%25zz&b=2&c=");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_value("  a \t  b  "), "a b");
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let ok_hash = EMPTY_SHA256;
        let try_sign = |url: &str, headers: &[(&str, &str)], hash: &str, date: &str| {
            sign(
                &SignableRequest {
                    method: "GET",
                    url,
                    headers,
                    body_sha256_hex: hash,
                },
                &SUITE_CREDS,
                &SigningParams {
                    amz_date: date,
                    ..SUITE_PARAMS
                },
            )
        };
        let url = "https://example.amazonaws.com/";
        let date = "20150830T123600Z";
        assert!(matches!(
            try_sign("ftp://x/", &[], ok_hash, date),
            Err(SignError::InvalidUrl(_))
        ));
        assert!(matches!(
            try_sign("https://u:p@x/", &[], ok_hash, date),
            Err(SignError::InvalidUrl(_))
        ));
        assert!(matches!(
            try_sign("https:///x", &[], ok_hash, date),
            Err(SignError::InvalidUrl(_))
        ));
        assert_eq!(
            try_sign(url, &[], ok_hash, "2015-08-30T12:36:00Z"),
            Err(SignError::InvalidDate)
        );
        assert_eq!(
            try_sign(url, &[], "abc", date),
            Err(SignError::InvalidBodyHash)
        );
        assert_eq!(
            try_sign(url, &[("X-Amz-Date", "x")], ok_hash, date),
            Err(SignError::ReservedHeader("x-amz-date".into()))
        );
        assert!(matches!(
            try_sign(url, &[("bad header", "x")], ok_hash, date),
            Err(SignError::InvalidHeader(_))
        ));
        assert!(matches!(
            try_sign(url, &[("x-a", "1\r\nx-b: 2")], ok_hash, date),
            Err(SignError::InvalidHeader(_))
        ));
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let creds = Credentials {
            session_token: Some("tok-secret"),
            ..SUITE_CREDS
        };
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains("EXAMPLEKEY"), "{dbg}");
        assert!(!dbg.contains("tok-secret"), "{dbg}");
        assert!(dbg.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn amz_date_from_unix_time() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        // The test suite's instant.
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
    }

    #[test]
    fn bearer_mode() {
        assert_eq!(
            bearer_authorization("ABSK-example"),
            ("authorization".into(), "Bearer ABSK-example".into())
        );
    }
}
