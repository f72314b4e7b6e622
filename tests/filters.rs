//! Filter files through the real binary: `build-filter`, `filter-info` and
//! `check`, as an operator runs them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use crate::support::binary::{credgate, run};

/// A generated breach corpus: `pairs` good lines and a few malformed ones.
struct Corpus {
    dir: tempfile::TempDir,
    pairs: Vec<(String, String)>,
}

/// Lines that `build-filter` must count as malformed and skip.
const MALFORMED: [&str; 3] = ["no separator at all", "nobody@example.com:", ":no-username"];

impl Corpus {
    fn generate(count: usize) -> Self {
        let pairs = (0..count)
            .map(|i| {
                (
                    format!("Customer{i}@Shop.example"),
                    format!(
                        "Zq{:016x}-secret",
                        (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ),
                )
            })
            .collect();
        Self {
            dir: tempfile::tempdir().unwrap(),
            pairs,
        }
    }

    fn text(&self) -> Vec<u8> {
        let mut text = String::new();
        for (i, (username, password)) in self.pairs.iter().enumerate() {
            let separator = [':', ';', '\t'][i % 3];
            text.push_str(&format!("{username}{separator}{password}\n"));
        }
        for line in MALFORMED {
            text.push_str(line);
            text.push('\n');
        }
        text.into_bytes()
    }

    fn write_plain(&self) -> PathBuf {
        let path = self.path("combo.txt");
        std::fs::write(&path, self.text()).unwrap();
        path
    }

    fn write_gz(&self) -> PathBuf {
        let path = self.path("combo.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.text()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `credgate ARGS` with `stdin` piped in: exit status, stdout, stderr.
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> (ExitStatus, String, String) {
    let mut child = credgate()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read stdin may exit before it is written.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn build_pairs(inputs: &[&Path], output: &Path, extra: &[&str]) -> String {
    let mut args = vec!["build-filter", "--kind", "pairs", "--output", s(output)];
    args.extend(extra);
    args.push("--input");
    args.extend(inputs.iter().map(|p| s(p)));
    let (status, out, err) = run(&args);
    assert!(status.success(), "build-filter failed: {err}");
    out
}

fn check_pair(filter: &Path, username: &str, password: &str) -> i32 {
    let args = ["check", "--filter", s(filter), "--username", username];
    let (status, out, err) = run_with_stdin(&args, format!("{password}\n").as_bytes());
    assert!(!out.contains(password) && !err.contains(password));
    status.code().unwrap()
}

#[test]
fn build_filter_reads_plain_gz_and_stdin() {
    let corpus = Corpus::generate(2000);
    let plain = corpus.write_plain();
    let gz = corpus.write_gz();
    for (input, extra) in [
        (plain.clone(), vec![]),
        (gz.clone(), vec![]),
        (PathBuf::from("-"), vec!["--expected-items", "2003"]),
    ] {
        let output = corpus.path("pairs.cgf");
        let mut args = vec!["build-filter", "--kind", "pairs", "--fp-rate", "0.0001"];
        args.extend(["--input", s(&input), "--output", s(&output)]);
        args.extend(&extra);
        let (status, summary, err) = run_with_stdin(&args, &corpus.text());
        assert!(status.success(), "{}: {err}", input.display());
        // An insert that is already a false positive of the filter built so
        // far counts as a duplicate: with a fresh random seed per build, a
        // few builds in a hundred lose an item or two that way.
        let items: u64 = summary
            .lines()
            .find_map(|l| l.trim().strip_prefix("items:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no item count: {summary}"));
        assert!((1995..=2000).contains(&items), "{summary}");
        assert!(summary.contains("malformed:  3"), "{summary}");
        assert!(summary.contains("bytes/item"), "{summary}");
        assert!(err.contains("build-filter: inserting done"), "{err}");
        for (username, password) in corpus.pairs.iter().step_by(97) {
            assert_eq!(check_pair(&output, username, password), 1, "{username}");
        }
    }
}

#[test]
fn stdin_without_expected_items_is_a_usage_error() {
    let corpus = Corpus::generate(10);
    let output = corpus.path("pairs.cgf");
    let args = [
        "build-filter",
        "--kind",
        "pairs",
        "--input",
        "-",
        "--output",
        s(&output),
    ];
    let (status, _, err) = run_with_stdin(&args, &corpus.text());
    assert_eq!(status.code(), Some(64));
    assert!(err.contains("--expected-items"), "{err}");
    assert!(!output.exists());
}

#[test]
fn filter_info_prints_the_header() {
    let corpus = Corpus::generate(500);
    let output = corpus.path("pairs.cgf");
    build_pairs(&[&corpus.write_plain(), &corpus.write_gz()], &output, &[]);
    let (status, info, err) = run(&["filter-info", s(&output)]);
    assert!(status.success(), "{err}");
    for needle in [
        "kind:            pairs",
        "normalization:   auto (no default region)",
        "format version:  2",
        "items:           500",
        "capacity:        1006",
        "fp rate target:  1.000e-5",
        "fp rate now:",
        "sources:         combo.txt, combo.txt.gz",
        "built:           20",
        "checksum:        ok",
    ] {
        assert!(info.contains(needle), "{needle} missing from:\n{info}");
    }
    let size = std::fs::metadata(&output).unwrap().len();
    assert!(info.contains(&format!("({size} bytes")), "{info}");
}

#[test]
fn filter_info_and_check_print_json_with_json() {
    let corpus = Corpus::generate(200);
    let output = corpus.path("pairs.cgf");
    build_pairs(&[&corpus.write_plain()], &output, &[]);
    let (status, info, err) = run(&["filter-info", "--json", s(&output)]);
    assert!(status.success(), "{err}");
    let info: serde_json::Value = serde_json::from_str(&info).expect("filter-info --json");
    assert_eq!(info["kind"], "pairs");
    assert_eq!(info["items"], 200);
    assert_eq!(info["checksum"], "ok");
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["sources"][0], "combo.txt");

    let (username, password) = &corpus.pairs[7];
    let args = [
        "check",
        "--json",
        "--filter",
        s(&output),
        "--username",
        username,
    ];
    for (password, verdict, code) in [(password.as_str(), "leaked", 1), ("Zq-clean", "clean", 0)] {
        let (status, out, err) = run_with_stdin(&args, format!("{password}\n").as_bytes());
        assert_eq!(status.code(), Some(code), "{err}");
        let answer: serde_json::Value = serde_json::from_str(&out).expect("check --json");
        assert_eq!(answer["verdict"], verdict, "{out}");
        assert_eq!(answer["leaked"], code == 1, "{out}");
        assert!(!out.contains(password), "the password was printed");
    }
}

#[test]
fn check_answers_with_its_exit_code() {
    let corpus = Corpus::generate(300);
    let output = corpus.path("pairs.cgf");
    build_pairs(&[&corpus.write_plain()], &output, &[]);
    let (username, password) = &corpus.pairs[42];
    assert_eq!(check_pair(&output, username, password), 1, "leaked pair");
    let shouted = format!("  {}  ", username.to_uppercase());
    assert_eq!(check_pair(&output, &shouted, password), 1, "normalised");
    assert_eq!(check_pair(&output, username, "Zq-not-the-password"), 0);
    assert_eq!(check_pair(&output, "stranger@shop.example", password), 0);

    let (status, _, err) = run_with_stdin(&["check", "--filter", s(&output)], b"x\n");
    assert_eq!(status.code(), Some(64), "pairs filter without --username");
    assert!(err.contains("--username"), "{err}");
}

#[test]
fn check_a_password_against_a_passwords_filter() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pwned.txt");
    // Have I Been Pwned lines: SHA-1("password") and SHA-1("123456").
    let hibp = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\n\
                7C4A8D09CA3762AF61E59520943DC26494F8941B:37359195\n";
    std::fs::write(&input, hibp).unwrap();
    let output = dir.path().join("passwords.cgf");
    let (status, summary, err) = run(&[
        "build-filter",
        "--kind",
        "passwords",
        "--input",
        s(&input),
        "--output",
        s(&output),
        // Room for more than two items: in a filter of a few dozen bits,
        // double hashing can make the second item test present already.
        "--expected-items",
        "1000",
    ]);
    assert!(status.success(), "{err}");
    assert!(summary.contains("items:      2"), "{summary}");
    let check = |password: &[u8]| {
        let (status, out, err) = run_with_stdin(&["check", "--filter", s(&output)], password);
        let code = status.code().unwrap();
        assert!(code == 0 || code == 1, "exit {code}: {out}{err}");
        code
    };
    assert_eq!(check(b"password\n"), 1);
    assert_eq!(check(b"123456\r\n"), 1);
    assert_eq!(check(b"123456"), 1);
    assert_eq!(check(b"correct horse battery staple\n"), 0);
    let (status, _, _) = run_with_stdin(
        &["check", "--filter", s(&output), "--username", "a@b.example"],
        b"password\n",
    );
    assert_eq!(status.code(), Some(64), "--username on a passwords filter");
}

#[test]
fn corrupt_files_are_refused_with_clear_messages() {
    let corpus = Corpus::generate(200);
    let good = corpus.path("pairs.cgf");
    build_pairs(&[&corpus.write_plain()], &good, &[]);
    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x04;
    let mut foreign = bytes.clone();
    foreign[..8].copy_from_slice(b"PK\x03\x04\0\0\0\0");
    let cases = [
        (
            "truncated",
            bytes[..bytes.len() - 100].to_vec(),
            "truncated",
        ),
        ("bit flipped", flipped, "the filter body is corrupt"),
        ("wrong magic", foreign, "not a credgate filter file"),
    ];
    for (case, content, message) in cases {
        let path = corpus.path("bad.cgf");
        std::fs::write(&path, content).unwrap();
        let (status, out, err) = run(&["filter-info", s(&path)]);
        assert_eq!(status.code(), Some(1), "{case}: {out}{err}");
        assert!(err.contains(message), "{case}: {err}");
        assert!(err.contains("bad.cgf"), "{case}: {err}");
        let (status, _, err) = run_with_stdin(
            &["check", "--filter", s(&path), "--username", "u@x.example"],
            b"pw\n",
        );
        assert_eq!(status.code(), Some(64), "{case}: check must not answer");
        assert!(err.contains(message), "{case}: {err}");
    }
    let path = corpus.path("bad.cgf");
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let (_, info, _) = run(&["filter-info", s(&path)]);
    assert!(
        info.contains("kind:            pairs"),
        "header still shown: {info}"
    );
}

#[test]
fn no_credential_appears_in_the_filter_file() {
    let corpus = Corpus::generate(1000);
    let output = corpus.path("pairs.cgf");
    let summary = build_pairs(&[&corpus.write_plain()], &output, &[]);
    let bytes = std::fs::read(&output).unwrap();
    let found = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for (username, password) in &corpus.pairs {
        assert!(!found(password.as_bytes()), "a password is in the file");
        assert!(
            !found(username.to_lowercase().as_bytes()),
            "a username is in the file"
        );
        assert!(!summary.contains(password.as_str()));
    }
    // Short probes too: no 8-byte piece of any password.
    assert!(!corpus.pairs.iter().any(|(_, p)| found(&p.as_bytes()[..8])));
}

#[test]
fn bad_command_lines_exit_64() {
    for args in [
        &["build-filter", "--kind", "pairs", "--output", "x.cgf"][..],
        &[
            "build-filter",
            "--kind",
            "triples",
            "--input",
            "a",
            "--output",
            "x.cgf",
        ],
        &[
            "build-filter",
            "--kind",
            "pairs",
            "--input",
            "a",
            "--output",
            "x.cgf",
            "--fp-rate",
            "2",
        ],
        &["filter-info"],
    ] {
        let (status, _, err) = run(args);
        assert_eq!(status.code(), Some(64), "{args:?}: {err}");
    }
    let (status, help, _) = run(&["build-filter", "--help"]);
    assert!(status.success());
    assert!(help.contains("--expected-items"));
}
