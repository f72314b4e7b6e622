//! A shop with as many accounts as a test needs: `customerN@example.com`
//! logs in with `pw-customerN@example.com`. The demo shop has three
//! accounts, too few to model a crowd of real customers, whose usernames
//! are all different.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The username of customer `n`, and their password.
pub fn customer(n: usize) -> (String, String) {
    let user = format!("customer{n}@example.com");
    let password = format!("pw-{user}");
    (user, password)
}

/// Starts the shop on a free port; it runs until the test ends.
pub async fn start_customer_shop() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http = auto::Builder::new(TokioExecutor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let http = http.clone();
            tokio::spawn(async move {
                let service = service_fn(|req| async { Ok::<_, Infallible>(login(req).await) });
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// 302 to `/account` for a right password, 401 otherwise.
async fn login(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let fields: Vec<(String, String)> = body
        .map(|b| form_urlencoded::parse(&b).into_owned().collect())
        .unwrap_or_default();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let right = match (field("username"), field("password")) {
        (Some(user), Some(password)) => *password == format!("pw-{user}"),
        _ => false,
    };
    let status = if right {
        StatusCode::FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    if right {
        response
            .headers_mut()
            .insert("location", http::HeaderValue::from_static("/account"));
    }
    response
}
