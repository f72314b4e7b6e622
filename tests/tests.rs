//! credgate's integration tests: the real server over real sockets and real
//! TLS, in front of the demo shop.

mod support;

mod access_log;
mod admin;
mod attack;
mod bans;
mod bypass;
mod cluster_state;
mod command_line;
mod filters;
mod fingerprints;
mod hardening;
mod identifiers;
mod image;
mod layering;
mod leaked;
mod lifecycle;
mod login;
mod network_bans;
mod ops;
mod passthrough;
mod presets;
mod protection;
mod reload;
mod resting;
mod risk;
mod shared_state;
mod upgrade;
