use std::io::Write as _;

use super::progress::Silent;
use super::*;
use crate::leaked::Filter;

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Builds whatever the share of malformed lines: these tests are about
/// parsing; the refusals have their own.
fn build_from(opts: &BuildOptions) -> (BuildSummary, Filter) {
    let mut opts = opts.clone();
    opts.max_malformed = 1.0;
    let summary = build(&opts, &mut Silent).unwrap();
    let filter = Filter::load_kind(&opts.output, opts.kind).unwrap();
    (summary, filter)
}

#[test]
fn a_build_without_items_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "empty.txt", b"\n\n");
    let output = dir.path().join("out.cgf");
    let opts = BuildOptions::new(FilterKind::Passwords, vec![input], output.clone());
    let error = build(&opts, &mut Silent).unwrap_err();
    assert!(
        matches!(error, BuildError::Empty { lines: 2, .. }),
        "{error}"
    );
    assert!(!error.is_usage());
    assert!(!output.exists());
}

#[test]
fn too_many_malformed_lines_are_refused_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut corpus = String::new();
    for i in 0..20 {
        match i % 4 {
            1 => corpus.push_str("no separator\n"),
            _ => corpus.push_str(&format!("user{i}@example.com:pw{i}\n")),
        }
    }
    let input = write(dir.path(), "combo.txt", corpus.as_bytes());
    let output = dir.path().join("out.cgf");
    let mut opts = BuildOptions::new(FilterKind::Pairs, vec![input], output.clone());
    let error = build(&opts, &mut Silent).unwrap_err();
    let BuildError::TooMalformed {
        malformed, lines, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!((*malformed, *lines), (5, 20));
    let message = error.to_string();
    assert!(
        message.contains("combo.txt:2, combo.txt:6, combo.txt:10"),
        "{message}"
    );
    assert!(!output.exists());

    opts.max_malformed = 0.25;
    let summary = build(&opts, &mut Silent).unwrap();
    assert_eq!(summary.malformed_at.len(), MALFORMED_EXAMPLES);
}

#[test]
fn the_output_path_is_checked_before_any_input_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing_input = dir.path().join("not-there.txt");
    for output in [
        dir.path().join("no/such/dir/out.cgf"),
        dir.path().to_owned(),
    ] {
        let opts = BuildOptions::new(FilterKind::Passwords, vec![missing_input.clone()], output);
        let error = build(&opts, &mut Silent).unwrap_err();
        assert!(matches!(error, BuildError::OutputPath { .. }), "{error}");
    }
}

#[test]
fn hibp_range_directories_load_with_their_prefix_and_min_count() {
    use sha1::{Digest, Sha1};
    let dir = tempfile::tempdir().unwrap();
    let ranges = dir.path().join("ranges");
    std::fs::create_dir(&ranges).unwrap();
    let hex = |password: &str, count: u64| {
        let digest = Sha1::digest(password.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        let path = ranges.join(&hex[..5]);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(file, "{}:{count}", &hex[5..]).unwrap();
    };
    hex("password", 9_000_000);
    hex("letmein", 250);
    hex("rarely-seen-7", 1);
    let output = dir.path().join("out.cgf");
    let mut opts = BuildOptions::new(FilterKind::Passwords, vec![ranges], output.clone());
    opts.min_count = 2;
    let (summary, filter) = build_from(&opts);
    assert_eq!(
        (summary.header.items, summary.rare, summary.malformed),
        (2, 1, 0)
    );
    assert_eq!(summary.header.sources, vec!["ranges".to_owned()]);
    let leaked = |p: &str| filter.contains_password(p.as_bytes());
    assert!(leaked("password") && leaked("letmein"));
    assert!(!leaked("rarely-seen-7"));
}

#[test]
fn combo_lines_are_counted_and_malformed_ones_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = b"Alice@Example.com:hunter2\r\n\
        bob@example.com;pa:ss\n\
        \n\
        carol@example.com\tx\n\
        no separator here\n\
        dave@example.com:\n\
        \xff\xfe:binary-username\n\
        \x20:blank-after-trim\n\
        alice@example.com:hunter2\n";
    let input = write(dir.path(), "combo.txt", corpus);
    let opts = BuildOptions::new(FilterKind::Pairs, vec![input], dir.path().join("p.cgf"));
    let (summary, filter) = build_from(&opts);
    assert_eq!(summary.lines, 9);
    assert_eq!(summary.malformed, 4);
    assert_eq!(summary.duplicates, 1);
    assert_eq!(filter.header().items, 3);
    assert_eq!(filter.header().capacity, 9, "sized by counting lines");
    assert_eq!(filter.header().sources, ["combo.txt"]);
    assert!(filter.contains_pair("alice@example.com", b"hunter2"));
    assert!(filter.contains_pair("bob@example.com", b"pa:ss"));
    assert!(filter.contains_pair("carol@example.com", b"x"));
    assert!(!filter.contains_pair("Alice@Example.com", b"hunter2"));
}

/// A dump as such breaches are traded: GBK, `----`, e-mail, password
/// and mobile number; every identifier of a line adds a pair, under the
/// `auto` rule.
#[test]
fn gbk_dumps_with_several_identifiers_add_a_pair_each() {
    let dir = tempfile::tempdir().unwrap();
    let dump = "Wang.Fang@Example.cn----密码888----13800138000\n\
        li@example.cn----pw2----\n\
        ----pw3----139 1234 5678\n\
        张三----pw4----12345678\n\
        nopassword@example.cn--------13700000000\n";
    let (gbk, _, _) = encoding_rs::GBK.encode(dump);
    let input = write(dir.path(), "dump.txt", &gbk);
    let opts = BuildOptions {
        normalization: Normalizer::new(UsernameNormalization::Auto, Some("CN".parse().unwrap())),
        columns: "email,pass,phone".parse().unwrap(),
        encoding: Encoding::Gbk,
        ..BuildOptions::new(FilterKind::Pairs, vec![input], dir.path().join("p.cgf"))
    };
    let (summary, filter) = build_from(&opts);
    assert_eq!(summary.malformed, 1);
    assert_eq!(filter.header().items, 6);
    assert_eq!(filter.header().capacity, 10, "two identifiers a line");
    let password = "密码888".as_bytes();
    assert!(filter.contains_pair("wang.fang@example.cn", password));
    assert!(filter.contains_pair("+8613800138000", password));
    assert!(filter.contains_pair("li@example.cn", b"pw2"));
    assert!(filter.contains_pair("+8613912345678", b"pw3"));
    assert!(filter.contains_pair("张三", b"pw4"));
    assert!(filter.contains_pair("12345678", b"pw4"));
    assert!(!filter.contains_pair("13800138000", password));
}

#[test]
fn separators_are_detected_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let pipes = write(dir.path(), "pipes.txt", b"a@example.com|p:1\n");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "b@example.com----p|2\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let dashes = write(dir.path(), "dashes.txt", &utf16);
    let classic = write(dir.path(), "classic.txt", b"c@example.com;p----3\n");
    let opts = BuildOptions::new(
        FilterKind::Pairs,
        vec![pipes, dashes, classic],
        dir.path().join("p.cgf"),
    );
    let (summary, filter) = build_from(&opts);
    assert_eq!(summary.malformed, 0);
    assert!(filter.contains_pair("a@example.com", b"p:1"));
    assert!(filter.contains_pair("b@example.com", b"p|2"));
    assert!(filter.contains_pair("c@example.com", b"p----3"));
    let forced = BuildOptions {
        separator: Some(Separator::Pipe),
        ..opts.clone()
    };
    let (summary, _) = build_from(&forced);
    assert_eq!(summary.malformed, 1, "the classic line has no |");
    let plain = BuildOptions {
        separator: Some(Separator::Pipe),
        format: InputFormat::Plain,
        ..BuildOptions::new(FilterKind::Passwords, opts.inputs.clone(), opts.output)
    };
    assert!(build(&plain, &mut Silent).unwrap_err().is_usage());
}

#[test]
fn no_normalization_keeps_usernames_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "combo.txt", b"Alice@Example.com:hunter2\n");
    let opts = BuildOptions {
        normalization: UsernameNormalization::None.into(),
        ..BuildOptions::new(FilterKind::Pairs, vec![input], dir.path().join("p.cgf"))
    };
    let (_, filter) = build_from(&opts);
    assert_eq!(
        filter.header().normalization,
        UsernameNormalization::None.into()
    );
    assert!(filter.contains_pair("Alice@Example.com", b"hunter2"));
    assert!(!filter.contains_pair("alice@example.com", b"hunter2"));
}

#[test]
fn passwords_from_hibp_plain_and_combo_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let hibp = write(
        dir.path(),
        "pwned.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\nnot a hash\n",
    );
    let plain = write(dir.path(), "plain.txt", b"letmein\ncorrect:horse\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"user@example.com:qwerty\n").unwrap();
    let combo = write(dir.path(), "combo.txt.gz", &gz.finish().unwrap());
    let output = dir.path().join("pw.cgf");
    let auto = BuildOptions::new(FilterKind::Passwords, vec![hibp, plain], output.clone());
    let (summary, filter) = build_from(&auto);
    assert_eq!(summary.malformed, 1);
    assert!(filter.contains_password(b"password"));
    assert!(filter.contains_password(b"letmein"));
    assert!(filter.contains_password(b"correct:horse"));
    assert!(!filter.contains_password(b"not a hash"));

    let combo = BuildOptions {
        format: InputFormat::Combo,
        ..BuildOptions::new(FilterKind::Passwords, vec![combo], output)
    };
    let (_, filter) = build_from(&combo);
    assert!(filter.contains_password(b"qwerty"));
}

#[test]
fn expected_items_sizes_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "combo.txt", b"a:1\nb:2\nc:3\n");
    let opts = BuildOptions {
        expected_items: Some(1000),
        ..BuildOptions::new(FilterKind::Pairs, vec![input], dir.path().join("p.cgf"))
    };
    let (summary, filter) = build_from(&opts);
    assert_eq!(filter.header().capacity, 1000);
    assert_eq!(filter.header().items, 3);
    assert!(!summary.to_string().contains("warning"));
}

#[test]
fn requests_that_cannot_work_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.cgf");
    let input = vec![write(dir.path(), "c.txt", b"a:1\n")];
    let pairs = || BuildOptions::new(FilterKind::Pairs, input.clone(), out.clone());
    let cases = [
        BuildOptions {
            fp_rate: 0.0,
            ..pairs()
        },
        BuildOptions {
            fp_rate: 1.0,
            ..pairs()
        },
        BuildOptions {
            fp_rate: f64::NAN,
            ..pairs()
        },
        BuildOptions {
            format: InputFormat::Hibp,
            ..pairs()
        },
        BuildOptions {
            format: InputFormat::Plain,
            ..pairs()
        },
        BuildOptions {
            inputs: vec![],
            ..pairs()
        },
        BuildOptions {
            inputs: vec!["-".into()],
            ..pairs()
        },
        BuildOptions {
            expected_items: Some(u64::MAX),
            ..pairs()
        },
    ];
    for opts in cases {
        let err = build(&opts, &mut Silent).unwrap_err();
        assert!(err.is_usage(), "{err}");
    }
    assert!(!out.exists());
    let missing = BuildOptions {
        inputs: vec![dir.path().join("missing.txt")],
        ..pairs()
    };
    let err = build(&missing, &mut Silent).unwrap_err();
    assert!(!err.is_usage());
    assert!(
        err.to_string()
            .ends_with("missing.txt: cannot read the input"),
        "{err}"
    );
}

#[test]
fn overfilling_warns() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "c.txt", b"a:1\nb:2\nc:3\n");
    let opts = BuildOptions {
        expected_items: Some(1),
        ..BuildOptions::new(FilterKind::Pairs, vec![input], dir.path().join("p.cgf"))
    };
    let (summary, _) = build_from(&opts);
    // A filter sized for one item is so small that the second or third
    // may already test present (counted as a duplicate): 2 or 3 items.
    let text = summary.to_string();
    assert!(
        text.contains("items exceed the 1 the filter was sized for"),
        "{text}"
    );
}
