use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http_body_util::{BodyExt as _, Either, Empty};
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Mutex as AsyncMutex};

use super::*;

/// A body that sends nothing until its release fires: a response still
/// streaming while the test sends another request.
struct Held(Option<oneshot::Receiver<()>>);

impl Body for Held {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(release) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(release).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                self.0 = None;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"done")))))
            }
        }
    }
}

/// A shop on 127.0.0.1:0 that counts the connections it accepts. `/held`
/// answers with a [`Held`] body released by the next sender in `releases`;
/// `/close` answers with `Connection: close`; anything else with `ok`.
struct Shop {
    origin: Uri,
    accepted: Arc<AtomicUsize>,
    releases: Arc<AsyncMutex<Vec<oneshot::Sender<()>>>>,
}

async fn shop() -> Shop {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let releases: Arc<AsyncMutex<Vec<oneshot::Sender<()>>>> = Arc::default();
    let (count, held) = (accepted.clone(), releases.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let held = held.clone();
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let held = held.clone();
                async move {
                    let response = match req.uri().path() {
                        "/held" => {
                            let (release, wait) = oneshot::channel();
                            held.lock().await.push(release);
                            Response::new(Either::Left(Held(Some(wait))))
                        }
                        "/close" => Response::builder()
                            .header(CONNECTION, "close")
                            .body(Either::Right(Empty::new()))
                            .expect("a valid response"),
                        _ => Response::new(Either::Right(Empty::new())),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Shop {
        origin: format!("http://{addr}/").parse().expect("a valid URI"),
        accepted,
        releases,
    }
}

fn pool(origin: Uri, max: usize, idle_timeout: Duration) -> Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Pool::new(connector, origin, max, idle_timeout)
}

fn get(path: &str) -> Request<ProxyBody> {
    Request::get(path)
        .header(HOST, "shop.test")
        .body(Either::Right(http_body_util::Full::new(Bytes::new())))
        .expect("a valid request")
}

/// Sends `path` and reads the whole answer.
async fn fetch(pool: &Pool, path: &str) -> StatusCode {
    let response = pool
        .send(get(path), Instant::now())
        .await
        .expect("answered");
    let status = response.status();
    response.into_body().collect().await.expect("a body");
    status
}

/// Until hyper has seen the end of the last exchange on every kept
/// connection (it marks them ready on its own task).
async fn settle(pool: &Pool) {
    for _ in 0..100 {
        if pool.lock().iter().all(|k| k.sender.is_ready()) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("a kept connection never became ready");
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let shop = shop().await;
    let pool = pool(shop.origin.clone(), 8, Duration::from_secs(60));
    for _ in 0..5 {
        assert_eq!(fetch(&pool, "/").await, StatusCode::OK);
        settle(&pool).await;
    }
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.len(), 1);
}

#[tokio::test]
async fn a_connection_whose_answer_is_still_streaming_is_not_taken() {
    let shop = shop().await;
    let pool = pool(shop.origin.clone(), 8, Duration::from_secs(60));
    let held = pool.send(get("/held"), Instant::now()).await.expect("head");
    // The first connection is back on the list, but busy.
    assert_eq!(pool.len(), 1);
    assert_eq!(fetch(&pool, "/").await, StatusCode::OK);
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 2);

    for release in shop.releases.lock().await.drain(..) {
        let _ = release.send(());
    }
    let body = held.into_body().collect().await.expect("a body").to_bytes();
    assert_eq!(&body[..], b"done");
    settle(&pool).await;
    assert_eq!(fetch(&pool, "/").await, StatusCode::OK);
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 2, "both were reused");
}

#[tokio::test]
async fn a_connection_the_shop_closes_is_not_reused() {
    let shop = shop().await;
    let pool = pool(shop.origin.clone(), 8, Duration::from_secs(60));
    assert_eq!(fetch(&pool, "/close").await, StatusCode::OK);
    for _ in 0..100 {
        if pool.lock().iter().all(|k| k.sender.is_closed()) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(fetch(&pool, "/").await, StatusCode::OK);
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_idle_past_the_timeout_are_closed_and_not_taken() {
    let shop = shop().await;
    let pool = pool(shop.origin.clone(), 8, Duration::from_secs(60));
    assert_eq!(fetch(&pool, "/").await, StatusCode::OK);
    settle(&pool).await;
    let later = Instant::now() + Duration::from_secs(61);
    // Not taken once past the timeout: a new connection instead.
    let response = pool.send(get("/"), later).await.expect("answered");
    response.into_body().collect().await.expect("a body");
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 2);
    settle(&pool).await;
    pool.expire(Instant::now());
    assert_eq!(pool.len(), 1, "the fresh one stays");
    pool.expire(Instant::now() + Duration::from_secs(61));
    assert_eq!(pool.len(), 0);
}

#[tokio::test]
async fn no_more_than_the_cap_are_kept() {
    let shop = shop().await;
    let pool = pool(shop.origin.clone(), 1, Duration::from_secs(60));
    let first = pool.send(get("/held"), Instant::now()).await.expect("head");
    let second = pool.send(get("/held"), Instant::now()).await.expect("head");
    assert_eq!(shop.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(pool.len(), 1);
    for release in shop.releases.lock().await.drain(..) {
        let _ = release.send(());
    }
    for response in [first, second] {
        response.into_body().collect().await.expect("a body");
    }
}

#[tokio::test]
async fn a_shop_that_does_not_listen_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin: Uri = format!("http://{}/", listener.local_addr().expect("address"))
        .parse()
        .expect("a valid URI");
    drop(listener);
    let pool = pool(origin, 8, Duration::from_secs(60));
    let error = pool.send(get("/"), Instant::now()).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Connect(_)), "{error:?}");
}
