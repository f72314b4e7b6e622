//! What a reload cannot apply: the keys whose new value only a restart
//! takes (listeners, TLS files, connection settings, the upstream client,
//! the state backend, the filter files, the log format). A reload applies
//! everything else and names these.

use std::fmt::Debug;

use super::Config;

/// The keys (`section.key`, or a whole `section`) that differ between the
/// running `old` and the reloaded `new` but need a restart, in file order.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (s, t) = (&old.server, &new.server);
    let (l, m) = (&old.leaked, &new.leaked);
    let (a, b) = (&old.state, &new.state);
    // Compared by their `Debug` form: every value here prints all of
    // itself, and not every type has `PartialEq`.
    let keys: [(&'static str, &dyn Debug, &dyn Debug); 32] = [
        ("server.listen", &s.listen, &t.listen),
        ("server.listen_plain", &s.listen_plain, &t.listen_plain),
        ("server.admin_listen", &s.admin_listen, &t.admin_listen),
        ("server.tls_cert", &s.tls_cert, &t.tls_cert),
        ("server.tls_key", &s.tls_key, &t.tls_key),
        (
            "server.admin_token_file",
            &s.admin_token_file,
            &t.admin_token_file,
        ),
        (
            "server.max_connections",
            &s.max_connections,
            &t.max_connections,
        ),
        (
            "server.tls_handshake_timeout",
            &s.tls_handshake_timeout,
            &t.tls_handshake_timeout,
        ),
        (
            "server.header_read_timeout",
            &s.header_read_timeout,
            &t.header_read_timeout,
        ),
        ("server.idle_timeout", &s.idle_timeout, &t.idle_timeout),
        (
            "server.shutdown_grace",
            &s.shutdown_grace,
            &t.shutdown_grace,
        ),
        (
            "server.max_header_size",
            &s.max_header_size,
            &t.max_header_size,
        ),
        ("server.max_headers", &s.max_headers, &t.max_headers),
        (
            "server.h2_max_concurrent_streams",
            &s.h2_max_concurrent_streams,
            &t.h2_max_concurrent_streams,
        ),
        (
            "server.strip_client_headers",
            &s.strip_client_headers,
            &t.strip_client_headers,
        ),
        ("upstream", &old.upstream, &new.upstream),
        ("leaked.pairs_filter", &l.pairs_filter, &m.pairs_filter),
        (
            "leaked.passwords_filter",
            &l.passwords_filter,
            &m.passwords_filter,
        ),
        (
            "leaked.username_normalization",
            &l.username_normalization,
            &m.username_normalization,
        ),
        (
            "leaked.default_region",
            &l.default_region,
            &m.default_region,
        ),
        (
            "leaked.watch_interval",
            &l.watch_interval,
            &m.watch_interval,
        ),
        (
            "leaked.allow_empty_reload",
            &l.allow_empty_reload,
            &m.allow_empty_reload,
        ),
        (
            "leaked.max_filter_age",
            &l.max_filter_age,
            &m.max_filter_age,
        ),
        ("state.backend", &a.backend, &b.backend),
        ("state.redis_url", &a.redis_url, &b.redis_url),
        ("state.redis_urls", &a.redis_urls, &b.redis_urls),
        ("state.key_prefix", &a.key_prefix, &b.key_prefix),
        ("state.redis_timeout", &a.redis_timeout, &b.redis_timeout),
        (
            "state.on_backend_error",
            &a.on_backend_error,
            &b.on_backend_error,
        ),
        (
            "state.max_tracked_clients",
            &a.max_tracked_clients,
            &b.max_tracked_clients,
        ),
        ("log.format", &old.log.format, &new.log.format),
        (
            "log.access_format",
            &old.log.access_format,
            &new.log.access_format,
        ),
    ];
    keys.into_iter()
        .filter(|(_, old, new)| format!("{old:?}") != format!("{new:?}"))
        .map(|(key, _, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_needs_a_restart_is_named() {
        let old = super::super::for_tests("");
        let new = super::super::for_tests(
            "[limits]\nip = { rate = \"1/min\", burst = 1 }\n[suspicion]\ndenylist = [\"192.0.2.0/24\"]",
        );
        assert!(restart_needed(&old, &new).is_empty());
        let mut new = new;
        new.server.listen = "127.0.0.1:1".parse().unwrap();
        new.state.backend = super::super::Backend::Redis;
        new.upstream.connect_timeout.0 *= 2;
        assert_eq!(
            restart_needed(&old, &new),
            ["server.listen", "upstream", "state.backend"]
        );
    }
}
