use super::*;

const MINIMAL: &str = r#"
    [server]
    tls_cert = "cert.pem"
    tls_key = "key.pem"
    [upstream]
    url = "http://127.0.0.1:8080"
"#;

fn error_of(text: &str) -> String {
    Config::from_toml(text).unwrap_err().to_string()
}

#[test]
fn minimal_config_takes_documented_defaults() {
    let c = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(c.server.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.server.header_read_timeout.0, Duration::from_secs(10));
    assert_eq!(c.server.max_header_size.0, 65536);
    assert_eq!(c.upstream.url.to_string(), "http://127.0.0.1:8080");
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn unknown_key_is_named() {
    let text = MINIMAL.replace("[upstream]", "[upstream]\nretries = 3");
    let e = error_of(&text);
    assert!(e.contains("upstream"), "{e}");
    assert!(e.contains("retries"), "{e}");
}

#[test]
fn bad_address_is_named() {
    let text = MINIMAL.replace("[server]", "[server]\nlisten = \"0.0.0.0:99999\"");
    let e = error_of(&text);
    assert!(e.contains("server.listen"), "{e}");
}

#[test]
fn bad_duration_is_named() {
    let text = MINIMAL.replace("[server]", "[server]\nidle_timeout = \"ten seconds\"");
    let e = error_of(&text);
    assert!(e.contains("server.idle_timeout"), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn sizes_and_cidrs_parse() {
    let text = MINIMAL.replace(
        "[server]",
        "[server]\nmax_header_size = \"32KiB\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]",
    );
    let c = Config::from_toml(&text).unwrap();
    assert_eq!(c.server.max_header_size.0, 32 * 1024);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    let bad = MINIMAL.replace("[server]", "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]");
    assert!(error_of(&bad).contains("server.trusted_proxies"));
}

#[test]
fn upstream_url_is_checked() {
    for (url, reason) in [
        ("ftp://shop", "scheme"),
        ("http://shop/app", "path"),
        ("shop:8080", "scheme"),
        ("http://user:pw@shop", "credentials"),
    ] {
        let e = error_of(&MINIMAL.replace("http://127.0.0.1:8080", url));
        assert!(
            e.contains("upstream.url") && e.contains(reason),
            "{url}: {e}"
        );
    }
}

#[test]
fn cross_field_checks() {
    let text = MINIMAL.replace("[server]", "[server]\nmax_connections = 0");
    assert!(error_of(&text).contains("server.max_connections"));
    let text = MINIMAL.replace(
        "[server]",
        "[server]\nlisten = \"127.0.0.1:9090\"\nadmin_listen = \"127.0.0.1:9090\"",
    );
    assert!(error_of(&text).contains("two listeners"));
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credgate.toml");
    std::fs::write(&path, format!("{MINIMAL}\n[bogus]\n")).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    let missing = Config::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
}

#[test]
fn risk_defaults_and_errors() {
    let c = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(c.risk.on_medium, RiskAction::Allow);
    assert_eq!(c.risk.on_high, RiskAction::Annotate);
    assert_eq!(
        c.risk.device_cookie_max_age.0,
        Duration::from_secs(90 * 86400)
    );
    let text =
        format!("{MINIMAL}\n[risk]\non_high = \"throttle\"\ndevice_cookie_max_age = \"90d\"");
    assert_eq!(
        Config::from_toml(&text).unwrap().risk.on_high,
        RiskAction::Throttle
    );
    let e = error_of(&format!("{MINIMAL}\n[risk]\non_medium = \"shadow\""));
    assert!(e.contains("risk.on_medium"), "{e}");
    let e = error_of(&format!(
        "{MINIMAL}\n[risk]\ndevice_cookie_max_age = \"0s\""
    ));
    assert!(e.contains("risk.device_cookie_max_age"), "{e}");
    let e = error_of(&format!("{MINIMAL}\n[risk]\ndevice_key = \"k\""));
    assert!(e.contains("device_key"), "{e}");
}

#[test]
fn every_validation_error_is_reported() {
    let text = MINIMAL.replace("[server]", "[server]\nmax_connections = 0")
        + "\n[suspicion]\nfailure_ratio = 7.0\n";
    let e = Config::from_toml(&text).unwrap_err();
    let keys: Vec<String> = e
        .errors()
        .iter()
        .map(|e| match e {
            ConfigError::Invalid { key, .. } => key.clone(),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(keys, ["server.max_connections", "suspicion.failure_ratio"]);
}

#[test]
fn a_type_error_has_its_line_and_column() {
    let text = MINIMAL.replace("[server]", "[server]\nmax_connections = \"many\"");
    let e = Config::from_toml(&text).unwrap_err();
    let ConfigError::Parse { key, at, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(key, "server.max_connections");
    assert_eq!((at.line, at.column), (3, 19));
    assert!(e
        .snippet()
        .unwrap()
        .ends_with(&format!("{}^", " ".repeat(18))));
}
