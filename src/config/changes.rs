//! What a reload cannot apply: the keys whose new value only a restart
//! takes (listeners, TLS files, connection settings, the upstream client,
//! the state backend, the filter files, the log format). A reload applies
//! everything else and names these.

use std::fmt::Debug;

use super::Config;

/// `(key, old value, new value)` for each `section` or `section.field`.
macro_rules! values {
    ($old:ident, $new:ident: $($section:ident $(. $field:ident)?),* $(,)?) => {
        [$((
            concat!(stringify!($section) $(, ".", stringify!($field))?),
            &$old.$section $(.$field)? as &dyn Debug,
            &$new.$section $(.$field)? as &dyn Debug,
        )),*]
    };
}

/// The keys (`section.key`, or a whole `section`) that differ between the
/// running `old` and the reloaded `new` but need a restart, in file order.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let values = values!(old, new:
        server.listen, server.listen_plain, server.admin_listen,
        server.tls_cert, server.tls_key, server.admin_token_file,
        server.max_connections, server.tls_handshake_timeout,
        server.header_read_timeout, server.idle_timeout, server.shutdown_grace,
        server.max_header_size, server.max_headers,
        server.h2_max_concurrent_streams, server.strip_client_headers,
        upstream,
        leaked.pairs_filter, leaked.passwords_filter,
        leaked.username_normalization, leaked.default_region,
        leaked.watch_interval, leaked.allow_empty_reload, leaked.max_filter_age,
        state.backend, state.redis_url, state.redis_urls, state.key_prefix,
        state.redis_timeout, state.on_backend_error, state.max_tracked_clients,
        suspicion.ipv6_prefix,
        log.format, log.access_format,
    );
    // Compared by their `Debug` form: every value here prints all of
    // itself, and not every type has `PartialEq`.
    values
        .into_iter()
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
        new.suspicion.ipv6_prefix = 56;
        assert_eq!(
            restart_needed(&old, &new),
            [
                "server.listen",
                "upstream",
                "state.backend",
                "suspicion.ipv6_prefix"
            ]
        );
    }
}
