//! A small online shop to stand behind the proxy: a home page, a login form
//! (form or JSON bodies) with a few demo accounts, and diagnostic endpoints
//! that show what reached it (`/headers`, `/echo`, `/upload`, `/download`,
//! `/slow`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The demo accounts: username and the right password.
pub const ACCOUNTS: [(&str, &str); 3] = [
    ("alice@example.com", "wonderland-42"),
    ("bob@example.com", "correct horse battery staple"),
    ("carol@example.com", "Tr0ub4dor&3"),
];

const HOME: &str = "<!doctype html>\n<title>Demo shop</title>\n<h1>Demo shop</h1>\n\
<form method=post action=/login>\n<input name=username> <input name=password type=password>\n\
<button>Log in</button>\n</form>\n";

const MAX_LOGIN_BODY: usize = 64 * 1024;
/// credgate's default `annotate_header`.
const LEAKED_HEADER: &str = "credgate-leaked";
const DOWNLOAD_CHUNK: usize = 64 * 1024;

type ShopBody = Either<Full<Bytes>, Zeros>;

/// A running demo shop; it stops when dropped.
#[derive(Debug)]
pub struct Shop {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    requests: AtomicU64,
    uploaded: AtomicU64,
    logins: AtomicU64,
}

impl Shop {
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let task = tokio::spawn(serve(listener, state.clone()));
        Ok(Self { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes of `/upload` bodies received so far, counted as they arrive.
    pub fn uploaded_bytes(&self) -> u64 {
        self.state.uploaded.load(Ordering::SeqCst)
    }

    /// Requests of any kind that reached the shop.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Login requests that reached the shop.
    pub fn login_requests(&self) -> u64 {
        self.state.logins.load(Ordering::SeqCst)
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            let _ = http
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(req: Request<Incoming>, state: &State) -> Response<ShopBody> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/") => full(StatusCode::OK, "text/html; charset=utf-8", HOME),
        (Method::POST, "/login") => {
            state.logins.fetch_add(1, Ordering::SeqCst);
            login(req).await
        }
        (Method::GET, "/headers") => headers(&req),
        (Method::POST, "/echo") => echo(req).await,
        (Method::POST, "/upload") => upload(req, state).await,
        (Method::GET, "/download") => download(&req),
        (Method::GET, "/slow") => slow(&req).await,
        (Method::GET, "/ws") => echo_upgrade(req),
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// `GET /ws` with `Upgrade`: switches protocols and echoes every byte back
/// until the client closes, what a WebSocket echo endpoint does with frames.
fn echo_upgrade(mut req: Request<Incoming>) -> Response<ShopBody> {
    let Some(protocol) = req.headers().get(http::header::UPGRADE).cloned() else {
        return full(
            StatusCode::UPGRADE_REQUIRED,
            "text/plain",
            "upgrade required\n",
        );
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut read, &mut write).await;
    });
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let headers = response.headers_mut();
    headers.remove(CONTENT_TYPE);
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    headers.insert(http::header::UPGRADE, protocol);
    response
}

async fn login(req: Request<Incoming>) -> Response<ShopBody> {
    // What a shop does with credgate's annotation: let the customer in, and
    // ask for a new password.
    let leaked = req.headers().contains_key(LEAKED_HEADER);
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Ok(body) = Limited::new(req.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unreadable body"}),
        );
    };
    let body = body.to_bytes();
    let fields = match is_json {
        true => json_credentials(&body),
        false => form_credentials(&body),
    };
    let Some((user, password)) = fields else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "username and password required"}),
        );
    };
    match ACCOUNTS.iter().any(|(u, p)| *u == user && *p == password) {
        true if leaked => json(
            StatusCode::OK,
            serde_json::json!({
                "ok": true,
                "message": format!("welcome, {user}"),
                "password_reset_required": "this password is known from a breach: please change it",
            }),
        ),
        true => json(
            StatusCode::OK,
            serde_json::json!({"ok": true, "message": format!("welcome, {user}")}),
        ),
        false => json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"ok": false, "message": "wrong username or password"}),
        ),
    }
}

fn form_credentials(body: &[u8]) -> Option<(String, String)> {
    let mut user = None;
    let mut password = None;
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "username" => user = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((user?, password?))
}

fn json_credentials(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = |name| value.get(name)?.as_str().map(str::to_owned);
    Some((field("username")?, field("password")?))
}

fn headers<B>(req: &Request<B>) -> Response<ShopBody> {
    json(StatusCode::OK, serde_json::json!(header_map(req.headers())))
}

fn header_map(headers: &http::HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        seen.entry(name.as_str().to_owned())
            .or_default()
            .push(value);
    }
    seen
}

/// The request's headers and body as the shop received them.
async fn echo(req: Request<Incoming>) -> Response<ShopBody> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_LOGIN_BODY).collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "unreadable body"}),
        );
    };
    let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let headers = header_map(&parts.headers);
    json(
        StatusCode::OK,
        serde_json::json!({"headers": headers, "body": body}),
    )
}

async fn upload(req: Request<Incoming>, state: &State) -> Response<ShopBody> {
    let mut body = req.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "upload interrupted"}),
            );
        };
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            state
                .uploaded
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
    }
    json(StatusCode::OK, serde_json::json!({"bytes": total}))
}

fn download<B>(req: &Request<B>) -> Response<ShopBody> {
    let bytes = query_number(req, "bytes").unwrap_or(0);
    let mut response = Response::new(Either::Right(Zeros { remaining: bytes }));
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

async fn slow<B>(req: &Request<B>) -> Response<ShopBody> {
    let ms = query_number(req, "ms").unwrap_or(1000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    full(StatusCode::OK, "text/plain", "finally\n")
}

fn query_number<B>(req: &Request<B>, name: &str) -> Option<u64> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn full(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<ShopBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<ShopBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A body of `remaining` zero bytes, produced a chunk at a time so that a
/// large download never sits in memory.
#[derive(Debug)]
pub struct Zeros {
    remaining: u64,
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(DOWNLOAD_CHUNK as u64);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; n as usize])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}
