//! The upstream HTTP client of the request path: hyper's pooled client over
//! rustls, driven directly.
//!
//! Every model call goes through here. reqwest (still used for the rare
//! credential and webhook calls) re-parses each URL twice per request, wraps
//! the call in redirect and retry layers the gateway turns off anyway, and
//! clones its connector per request: about a tenth of the gateway's CPU per
//! request in profiles. This client keeps what matters (connection pooling,
//! HTTP/2 by ALPN, the platform's certificate roots, TCP keepalive and
//! `TCP_NODELAY`) and nothing else: no redirects are followed, no retries,
//! no proxies, no decompression.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{ACCEPT, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled HTTP/1.1 + HTTP/2 client (cheap to clone: the pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

/// Why a request got no response, or its body broke off.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not a valid absolute `http(s)://` URI.
    #[error("invalid upstream URL")]
    Url,
    /// Connecting, sending, or reading the response head failed.
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    /// The response body broke off.
    #[error("response body failed: {0}")]
    Body(#[from] hyper::Error),
}

impl HttpError {
    /// The connection could not be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, HttpError::Request(e) if e.is_connect())
    }

    /// Something timed out below the gateway's own deadlines (the connect
    /// timeout).
    pub fn is_timeout(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return true;
            }
            if let Some(h) = e.downcast_ref::<hyper::Error>()
                && h.is_timeout()
            {
                return true;
            }
            source = e.source();
        }
        false
    }

    /// The response body broke off after the head arrived.
    pub fn is_body(&self) -> bool {
        matches!(self, HttpError::Body(_))
    }
}

/// A response whose head has arrived; the body is read on demand.
#[derive(Debug)]
pub struct Response(http::Response<Incoming>);

/// A response body as a stream of chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, HttpError>> + Send>>;

impl Response {
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, HttpError> {
        Ok(self.0.into_body().collect().await?.to_bytes())
    }

    /// The body as it arrives (trailers are dropped).
    pub fn bytes_stream(self) -> BodyStream {
        Box::pin(
            self.0
                .into_body()
                .into_data_stream()
                .map(|r| r.map_err(HttpError::Body)),
        )
    }
}

impl HttpClient {
    /// A client whose connections time out after `connect`, verifying
    /// certificates against the platform's roots (as reqwest does).
    pub fn new(connect: Duration) -> Result<HttpClient, rustls::Error> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect));
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(HttpClient(client))
    }

    /// Sends `method url` with `headers` and `body`; resolves when the
    /// response head has arrived. `accept: */*` is added when absent.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, HttpError> {
        let uri: Uri = url.parse().map_err(|_| HttpError::Url)?;
        if uri.scheme().is_none() || uri.host().is_none() {
            return Err(HttpError::Url);
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(Response(self.0.request(req).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP/1.1 server: answers the first request with `reply`
    /// and hands back the request it read.
    async fn one_shot(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text[..head_end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if buf.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            sock.write_all(reply).await.unwrap();
            sock.shutdown().await.unwrap();
            String::from_utf8(buf).unwrap()
        });
        (format!("http://{addr}"), task)
    }

    #[tokio::test]
    async fn sends_the_request_as_given_and_reads_the_reply() {
        let (base, server) = one_shot(
            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-extra: 1\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
        )
        .await;
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc"));
        let resp = client
            .send(
                Method::POST,
                &format!("{base}/v1/chat?x=1"),
                h,
                Bytes::from_static(b"{\"a\":1}"),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers()["x-extra"], "1");
        assert_eq!(resp.bytes().await.unwrap(), "{\"ok\":true}");
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /v1/chat?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("x-request-id: abc\r\n"), "{req}");
        assert!(req.contains("accept: */*\r\n"), "{req}");
        assert!(req.contains("content-length: 7\r\n"), "{req}");
        assert!(req.contains("host: 127.0.0.1:"), "{req}");
        assert!(req.ends_with("\r\n\r\n{\"a\":1}"), "{req}");
    }

    #[tokio::test]
    async fn streams_a_chunked_body_and_reports_a_cut_one() {
        let (base, _server) = one_shot(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n",
        )
        .await;
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        let resp = client
            .send(Method::GET, &base, HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        let mut body = resp.bytes_stream();
        let mut got = Vec::new();
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => got.extend_from_slice(&c),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        assert_eq!(got, b"hello world");
        // The connection closed before the terminating chunk.
        assert!(failed.unwrap().is_body());
    }

    #[tokio::test]
    async fn refused_connections_and_bad_urls_are_told_apart() {
        let client = HttpClient::new(Duration::from_secs(5)).unwrap();
        // A port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = client
            .send(
                Method::POST,
                &format!("http://127.0.0.1:{port}/x"),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap_err();
        assert!(e.is_connect() && !e.is_timeout(), "{e:?}");
        for bad in ["not a url", "/relative/path", "http://bad host/x"] {
            let e = client
                .send(Method::GET, bad, HeaderMap::new(), Bytes::new())
                .await
                .unwrap_err();
            assert!(matches!(e, HttpError::Url), "{bad}: {e:?}");
        }
    }
}
