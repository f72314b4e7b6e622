//! credgate: a TLS reverse proxy that stops credential stuffing in front of
//! an online shop.
//!
//! # The pipeline
//!
//! Every request crosses these stages, each in its own module, in this order:
//!
//! ```text
//! accept, connection cap    server        permit before accept; handshake, header and idle deadlines
//! TLS (h2, http/1.1)        tls           rustls, one crypto provider, reloadable certificate
//! HTTP                      server        hyper auto (HTTP/1.1 and HTTP/2), graceful drain
//! target host               authority     exactly one host, or 400 and the connection closed
//! client IP                 client_ip     the peer, or the forwarded chain of trusted proxies
//! forward                   upstream      pooled client, hop-by-hop removed, X-Forwarded-* set
//! respond                   respond       our own responses: 400, 502, 504
//! record                    metrics       typed collectors, bounded labels
//! ```
//!
//! [`proxy::Proxy::try_handle`] is that list as code. [`admin`] serves
//! `/metrics`, `/healthz` and `/readyz` on a separate listener; [`demo`] runs
//! the whole thing in front of a small in-process shop. [`leaked`] holds the
//! leaked-credential filters: their file format, loading and checking, and
//! `build-filter`.
//!
//! # Invariants
//!
//! - A request whose target host is ambiguous never reaches the shop.
//! - Bodies stream in both directions; the proxy never holds a whole body.
//! - A client's `X-Forwarded-For` is believed only from a trusted proxy, and
//!   an untrusted one is replaced, never passed on.
//! - No request body is ever logged; no label carries an address.
//! - Nothing is global: `main` builds every part and hands down cheap handles.

pub mod admin;
pub mod authority;
pub mod client_ip;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod leaked;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod verdict;

pub use config::Config;
pub use server::Server;
