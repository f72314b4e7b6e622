//! Clients: a TLS HTTP client trusting the test certificate (HTTP/1.1 or
//! HTTP/2 by ALPN), a raw TLS stream for hand-written requests, and a plain
//! HTTP getter for the admin listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

/// The answer to a request, body collected.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub fn tls_config(ca_der: &[u8], alpn: &[&[u8]]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
    let mut config = ClientConfig::builder_with_provider(credgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A pooled HTTPS client of one HTTP version.
pub struct TestClient {
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl TestClient {
    pub fn new(ca_der: &[u8], version: Version) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_der, &[]))
            .https_only();
        let (connector, h2_only) = match version {
            Version::Http1 => (builder.enable_http1().build(), false),
            Version::Http2 => (builder.enable_http2().build(), true),
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2_only)
            .build(connector);
        Self { client }
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send(Request::get(url).body(empty()).unwrap()).await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        self.try_send(req).await.unwrap()
    }

    pub async fn try_send(
        &self,
        req: Request<Body>,
    ) -> Result<Answer, hyper_util::client::legacy::Error> {
        let response = self.client.request(req).await?;
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(Answer {
            status,
            version,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

pub fn empty() -> Body {
    Empty::new().boxed()
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

/// A TLS connection with nothing sent yet, for hand-written requests.
pub async fn raw_tls(addr: SocketAddr, ca_der: &[u8], alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(tls_config(ca_der, alpn)));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Reads until the peer closes (at most 10 s); returns what it sent.
pub async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was not closed");
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain-HTTP GET, for the admin listener: status and body.
pub async fn get(url: &str) -> (StatusCode, String) {
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Scrapes `/metrics` and parses it as the Prometheus text format.
pub async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics is valid Prometheus text")
}

/// The value of a sample, by name and label pairs; 0 when absent.
pub fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or(0.0)
}

/// A plain-HTTP request to the admin listener with an optional bearer token.
pub async fn admin(method: &str, url: &str, token: Option<&str>) -> (StatusCode, String) {
    admin_with_body(method, url, token, empty()).await
}

/// `POST` of a JSON body to the admin listener with a bearer token.
pub async fn admin_post(url: &str, json: &'static str, token: &str) -> StatusCode {
    admin_with_body("POST", url, Some(token), full(json))
        .await
        .0
}

/// A request with a JSON body to the admin listener with a bearer token;
/// the status and the body of the answer.
pub async fn admin_json(
    method: &str,
    url: &str,
    json: String,
    token: &str,
) -> (StatusCode, String) {
    admin_with_body(method, url, Some(token), full(json)).await
}

async fn admin_with_body(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Body,
) -> (StatusCode, String) {
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
