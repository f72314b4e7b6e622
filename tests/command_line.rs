//! The command line: `check-config`, `demo`, and the dependency policy.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::binary::{credgate, run};
use crate::support::*;

fn check(toml: &str) -> (bool, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credgate.toml");
    std::fs::write(&path, toml).unwrap();
    let (status, out, err) = run(&["check-config", "--config", path.to_str().unwrap()]);
    (
        status.success(),
        status.code().unwrap_or(-1),
        format!("{out}{err}"),
    )
}

#[test]
fn check_config_accepts_a_valid_file() {
    let cert = TestCert::generate();
    let (ok, _, output) = check(&config_toml(&cert, closed_port().addr, "", ""));
    assert!(ok, "{output}");
    assert!(
        output.ends_with("credgate.toml: configuration is valid\n"),
        "{output}"
    );
}

#[test]
fn check_config_names_the_file_key_and_reason() {
    let cert = TestCert::generate();
    let good = config_toml(&cert, closed_port().addr, "", "");
    let cases = [
        (
            "unknown key",
            good.replace("[upstream]", "[upstream]\nretries = 3"),
            "retries",
        ),
        (
            "bad address",
            good.replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:99999\""),
            "server.listen",
        ),
        (
            "bad duration",
            good.replace("[server]", "[server]\nidle_timeout = \"soon\""),
            "server.idle_timeout",
        ),
        (
            "missing certificate",
            good.replace(cert.cert_path().to_str().unwrap(), "/nonexistent/cert.pem"),
            "/nonexistent/cert.pem",
        ),
    ];
    for (case, toml, needle) in cases {
        let (ok, code, output) = check(&toml);
        assert!(!ok, "{case}: accepted");
        assert_eq!(code, 64, "{case}: exit code");
        assert!(
            output.contains("credgate.toml"),
            "{case}: file not named: {output}"
        );
        assert!(
            output.contains(needle),
            "{case}: {needle} not named: {output}"
        );
    }
}

/// Like `nginx -t`: a type error is shown where it is, with its line and a
/// caret under the value.
#[test]
fn check_config_shows_the_line_and_column_of_a_type_error() {
    let cert = TestCert::generate();
    let good = config_toml(&cert, closed_port().addr, "", "");
    let bad = good.replace("[server]", "[server]\nmax_connections = \"many\"");
    let line = bad
        .lines()
        .position(|l| l.starts_with("max_connections"))
        .unwrap()
        + 1;
    let (ok, code, output) = check(&bad);
    assert!(!ok && code == 64, "{output}");
    assert!(
        output.contains(&format!(
            "credgate.toml:{line}:19: key `server.max_connections`"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!("{line} | max_connections = \"many\"\n")),
        "{output}"
    );
    assert!(
        output.contains(&format!("| {}^\n", " ".repeat(18))),
        "{output}"
    );
}

/// Every validation error at once, not the first: two sections, two errors.
#[test]
fn check_config_reports_every_validation_error() {
    let cert = TestCert::generate();
    let good = config_toml(&cert, closed_port().addr, "max_connections = 0", "");
    let bad = format!("{good}\n[suspicion]\nfailure_ratio = 7.0\n");
    let (ok, code, output) = check(&bad);
    assert!(!ok && code == 64, "{output}");
    for key in ["server.max_connections", "suspicion.failure_ratio"] {
        assert!(
            output.contains(&format!("credgate.toml: key `{key}`")),
            "{key} not reported: {output}"
        );
    }
    assert_eq!(output.matches("error:").count(), 2, "{output}");
}

#[test]
fn check_config_suggests_a_close_key() {
    let cert = TestCert::generate();
    let good = config_toml(&cert, closed_port().addr, "", "");
    let bad =
        format!("{good}\n[limits]\nsubnet = {{ rate = \"1/min\", burst = 1, ipv4_prefx = 24 }}\n");
    let (ok, code, output) = check(&bad);
    assert!(!ok && code == 64, "{output}");
    assert!(output.contains("did you mean `ipv4_prefix`?"), "{output}");
    // A key far from every known one gets no guess.
    let bad = good.replace("[upstream]", "[upstream]\nretries = 3");
    let (_, _, output) = check(&bad);
    assert!(
        output.contains("retries") && !output.contains("did you mean"),
        "{output}"
    );
}

#[test]
fn the_example_config_is_valid_apart_from_its_certificate_paths() {
    let cert = TestCert::generate();
    let example = std::fs::read_to_string("config/credgate.example.toml").unwrap();
    let toml = example
        .replace(
            "/etc/credgate/tls/cert.pem",
            cert.cert_path().to_str().unwrap(),
        )
        .replace(
            "/etc/credgate/tls/key.pem",
            cert.key_path().to_str().unwrap(),
        );
    let (ok, _, output) = check(&toml);
    assert!(ok, "{output}");
}

/// `credgate demo`, then every `curl` command it prints, as a user would.
#[test]
fn demo_prints_curl_commands_that_work() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is needed for this test; .ci/run installs it");
    }
    let mut demo = credgate()
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap());
    let mut commands = Vec::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.starts_with("Stop with") {
        if line.starts_with("curl ") {
            commands.push(line.trim().to_owned());
        }
        line.clear();
    }
    // Each printed command, in order: the status, HTTP version and a piece
    // of the body it must show on its own.
    let expected = [
        ("/", 200, "2", "Demo shop"),
        ("/headers", 200, "2", "x-forwarded-for"),
        ("right password", 200, "2", "welcome"),
        ("wrong password", 401, "2", "wrong username or password"),
        ("leaked pair", 403, "2", "Please reset your password"),
        ("leaked password", 200, "2", "known from a breach"),
        ("JSON over HTTP/2", 200, "2", "welcome"),
        ("metrics", 200, "1.1", "credgate_requests_total"),
    ];
    assert_eq!(commands.len(), expected.len(), "{commands:?}");
    for (command, (what, status, version, body)) in commands.iter().zip(expected) {
        // -f: a 4xx or 5xx the command did not expect fails it.
        let fail = if status < 400 { " -f" } else { "" };
        let run = format!("{command}{fail} -w '\n%{{http_code}} %{{http_version}}'");
        let out = std::process::Command::new("sh")
            .args(["-c", &run])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: {command}: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (shown, trailer) = stdout.rsplit_once('\n').unwrap();
        assert_eq!(trailer, format!("{status} {version}"), "{what}: {command}");
        assert!(shown.contains(body), "{what}: {command}: {shown}");
    }
    let _ = demo.kill();
    let _ = demo.wait();
}

/// One crypto provider: rustls with ring. A second one (aws-lc-rs) creeping
/// in through a dependency's default features would double the TLS code and
/// make the provider choice ambiguous.
#[test]
fn only_one_crypto_provider_is_in_the_dependency_tree() {
    let lock = std::fs::read_to_string("Cargo.lock").unwrap();
    for forbidden in ["aws-lc-rs", "aws-lc-sys", "openssl-sys"] {
        assert!(
            !lock.contains(&format!("name = \"{forbidden}\"")),
            "{forbidden} is in Cargo.lock"
        );
    }
    assert!(lock.contains("name = \"ring\""));
}

#[test]
fn build_filter_refuses_garbage_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("empty.txt"), "\n").unwrap();
    let junk: String = (0..10)
        .map(|i| match i % 2 {
            0 => format!("user{i}@example.com:pw{i}\n"),
            _ => "junk\n".to_owned(),
        })
        .collect();
    std::fs::write(path("junk.txt"), junk).unwrap();
    let cases = [
        (
            "passwords",
            path("empty.txt"),
            path("a.cgf"),
            "hold no item",
        ),
        (
            "pairs",
            path("junk.txt"),
            path("b.cgf"),
            "junk.txt:2, junk.txt:4",
        ),
        (
            "passwords",
            path("empty.txt"),
            path("no/dir/c.cgf"),
            "cannot write the filter here",
        ),
    ];
    for (kind, input, output, says) in cases {
        let args = [
            "build-filter",
            "--kind",
            kind,
            "--input",
            &input,
            "--output",
            &output,
        ];
        let (status, _, stderr) = run(&args);
        assert_eq!(status.code(), Some(1), "{kind} {input}: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!std::path::Path::new(&output).exists());
    }
}

#[test]
fn check_config_warns_about_an_expired_certificate() {
    let cert = TestCert::generate();
    let fresh = check(&config_toml(&cert, closed_port().addr, "", ""));
    assert!(!fresh.2.contains("warning"), "{}", fresh.2);

    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let expired = params.self_signed(&key).unwrap();
    std::fs::write(cert.cert_path(), expired.pem()).unwrap();
    std::fs::write(cert.key_path(), key.serialize_pem()).unwrap();
    let (ok, _, output) = check(&config_toml(&cert, closed_port().addr, "", ""));
    assert!(ok, "a warning, not an error: {output}");
    assert!(
        output.contains("warning:") && output.contains("expired on 2021-01-01"),
        "{output}"
    );
}
