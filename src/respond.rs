//! Responses credgate writes itself, instead of the shop's.
//!
//! Each is small, has a JSON body, and is never cached. The one function that
//! maps a [`RequestError`] to a status is an exhaustive `match`: a new kind of
//! error cannot ship without a decision about what the client sees.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::proxy::RequestError;
use crate::upstream::UpstreamError;

/// The body of every response the proxy listener sends: the shop's, streamed,
/// or one of ours.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// The response for a request that failed, on a connection of `version`.
pub fn for_error(error: &RequestError, version: Version) -> Response<ProxyBody> {
    match error {
        RequestError::AmbiguousHost(_) => {
            let mut response = json(StatusCode::BAD_REQUEST, "ambiguous request target");
            close_connection(&mut response, version);
            response
        }
        RequestError::Upstream(UpstreamError::Connect(_) | UpstreamError::Protocol(_)) => {
            json(StatusCode::BAD_GATEWAY, "the shop could not be reached")
        }
        RequestError::Upstream(UpstreamError::Timeout { .. }) => json(
            StatusCode::GATEWAY_TIMEOUT,
            "the shop did not answer in time",
        ),
    }
}

/// A small JSON error body: `{"error": "..."}`.
pub fn json(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Asks hyper to close an HTTP/1 connection after this response: after an
/// ambiguous request, the rest of the byte stream cannot be trusted. HTTP/2
/// streams are independent, and `Connection` is not allowed there.
fn close_connection(response: &mut Response<ProxyBody>, version: Version) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}
