//! credgate: a TLS reverse proxy that stops credential stuffing in front of
//! an online shop.
//!
//! # The pipeline
//!
//! Every request crosses these stages, each in its own module, in this order:
//!
//! ```text
//! accept, connection cap    server        permit before accept; handshake, header and idle deadlines
//! ClientHello              fingerprint   read before rustls (bounded), JA4, then replayed
//! TLS (h2, http/1.1)        tls           rustls, one crypto provider, reloadable certificate
//! HTTP                      server        hyper auto (HTTP/1.1 and HTTP/2), graceful drain
//! target host               authority     exactly one host, or 400 and the connection closed
//! client IP                 client_ip     the peer, or the forwarded chain of trusted proxies
//! fingerprint               fingerprint   the connection's JA4, or a trusted peer's header;
//!                                         the HTTP fingerprint of its first bytes (server)
//! route                     route         login route (normalised path + method) or pass-through;
//!                                         control bytes, GET bodies, other methods on login paths refused
//! screen                    state         deny list, bans, limits.all (allowlist passes);
//!                                         on login routes, the fingerprint deny list
//! ── login routes only ──
//! body                      credentials   bounded read: max_body, body_read_timeout
//! credentials               credentials   username + password from form or JSON, strictly
//! rate limits               rate_limit    ip, subnet, username, fingerprint, global (via state)
//! leaked checks             leaked        pairs and passwords filters (hot-swapped)
//! decision                  verdict       Signals + Policy → Verdict, Decision (pure)
//! risk                      risk, device  attack mode, device cookie, history → low|medium|high;
//!                                         allow, annotate (Credgate-Risk), throttle or block
//! ──
//! forward                   upstream      pooled client, hop-by-hop removed, X-Forwarded-* set
//! outcome                   outcome       the shop's answer: success, failure, unknown
//! suspicion                 reputation    sliding window per client; bans up the ladder
//! attack mode               attack        the route's answers counted; evaluated once a second
//! device trust              device        a successful login gets the device cookie
//! respond                   respond       our own responses: 400, 403, 408, 413, 415, 429, 502, 504
//! record                    metrics       typed collectors, bounded labels
//! access log                logging       one line per request (target credgate::access)
//! ```
//!
//! `Proxy::try_handle` is that list as code. [`admin`] serves
//! `/metrics`, `/healthz`, `/readyz` and the token-protected `/admin/*` on a
//! separate listener; [`reload`] re-reads the configuration file, certificate
//! and filters, and swaps the stages without dropping a request; [`demo`]
//! runs the whole thing in front of a small in-process shop; [`healthcheck`]
//! probes a running proxy's `/healthz` for container runtimes. [`leaked`]
//! holds the leaked-credential filters as the proxy uses them (file format,
//! loading, checking); [`filter_build`] is the offline `build-filter`.
//!
//! # Layers
//!
//! Modules in dependency order, lowest first. A module imports only modules
//! listed before it (tests excepted), so there is no import cycle and
//! configuration sits at the bottom; `tests/layering.rs` checks it.
//!
//! ```text
//! body          values shared by every layer
//! username
//! fieldname     credential field names as a shop's framework compares them
//! config        the file, parsed and validated; imports no stage
//! logging
//! tls           stages, each importing only config and earlier stages
//! authority
//! client_ip
//! fingerprint   JA4, the trusted header, HTTP fingerprint, fingerprint table and lists
//! outcome
//! route
//! credentials
//! rate_limit
//! reputation
//! attack        attack mode per login route: counted per request, decided per second
//! state
//! leaked
//! verdict
//! device        the signed device-trust cookie: sign, verify, rotate keys
//! risk          Signals → Level (pure); bounded memory of successes and failures
//! upstream
//! metrics       typed collectors over the stages' label enums
//! respond       our own responses, from the stages' errors
//! proxy         the pipeline
//! reload        what runs the pipeline and changes it at run time
//! admin
//! server
//! filter_build  offline tools and commands
//! demo
//! healthcheck
//! commands
//! ```
//!
//! # Invariants
//!
//! - A request whose target host is ambiguous never reaches the shop.
//! - A login path is covered on every method; a credential field name in its
//!   query never reaches the shop.
//! - A refusal sent before the body is read arrives: an unread HTTP/2 body is
//!   drained (bounded) after the answer, never reset before it.
//! - A blocked, malformed or ambiguous login never reaches the shop.
//! - The body forwarded on a login route is byte for byte the body inspected.
//! - A client cannot forge a verdict: the annotation header is ours alone.
//! - A client cannot forge a risk level: `Credgate-Risk` is removed from
//!   every request and set only by credgate.
//! - A device cookie carries only an expiry and keyed hashes, and its value
//!   is never logged.
//! - No password is ever printed: `Password` has no `Display`, its `Debug` is
//!   `<redacted>`, and its buffers are zeroed on drop.
//! - Pass-through bodies stream in both directions; only login bodies, capped
//!   by `max_body`, are held whole.
//! - A client's `X-Forwarded-For` is believed only from a trusted proxy, and
//!   an untrusted one is replaced, never passed on.
//! - No request body is ever logged; no label carries an address.
//! - Nothing is global: `main` builds every part and hands down cheap handles.

pub mod admin;
pub mod attack;
pub mod authority;
pub mod body;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod device;
pub mod fieldname;
pub mod filter_build;
pub mod fingerprint;
pub mod healthcheck;
pub mod leaked;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod proxy;
pub mod rate_limit;
pub mod reload;
pub mod reputation;
pub mod respond;
pub mod risk;
pub mod route;
pub mod server;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod username;
pub mod verdict;

pub use config::Config;
pub use server::Server;
