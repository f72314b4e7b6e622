use super::*;

/// `username SEP password`, split at the first `:`, `;` or tab.
fn parse_combo(line: &[u8]) -> Entry<'_> {
    let mut parser = Parser::new(
        InputFormat::Combo,
        FilterKind::Pairs,
        Some(Separator::Classic),
        Columns::default(),
    );
    parser.parse(line)
}

fn lines(input: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut reader = Lines::new(input);
    let mut out = Vec::new();
    while let Some(line) = reader.next_line().unwrap() {
        out.push(match line {
            Line::Text(text) => Some(text.to_vec()),
            Line::TooLong => None,
        });
    }
    out
}

#[test]
fn combo_splits_at_the_first_separator() {
    let pair = |u, p: &'static [u8]| Entry::Pair {
        usernames: Usernames::one(u),
        password: p,
    };
    let cases: [(&[u8], Entry); 9] = [
        (b"alice:hunter2", pair("alice", b"hunter2")),
        (b"alice;hunter2", pair("alice", b"hunter2")),
        (b"alice\thunter2", pair("alice", b"hunter2")),
        (b"alice:pa:ss;wo\trd", pair("alice", b"pa:ss;wo\trd")),
        (b"alice;pa:ss", pair("alice", b"pa:ss")),
        (b"alice:\xff\xfe", pair("alice", b"\xff\xfe")),
        (b"no separator", Entry::Malformed),
        (b"alice:", Entry::Malformed),
        (b":hunter2", Entry::Malformed),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_combo(line), expected, "{:?}", line.escape_ascii());
    }
    assert_eq!(parse_combo(b"al\xffce:hunter2"), Entry::Malformed);
}

#[test]
fn hibp_lines() {
    let digest = |hex: &str| {
        let Entry::Digest(d) = parse_hibp(hex.as_bytes()) else {
            panic!("{hex} did not parse");
        };
        d
    };
    let expected = crate::leaked::password_digest(b"password");
    assert_eq!(
        digest("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824"),
        expected
    );
    assert_eq!(digest("5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"), expected);
    for bad in [
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD:12",
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FDX:12",
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:many",
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8 12",
        "password",
    ] {
        assert_eq!(parse_hibp(bad.as_bytes()), Entry::Malformed, "{bad}");
    }
}

#[test]
fn auto_resolves_on_the_first_non_blank_line() {
    let hash = b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3";
    let mut parser = Parser::new(
        InputFormat::Auto,
        FilterKind::Passwords,
        None,
        Columns::default(),
    );
    assert_eq!(parser.parse(b""), Entry::Blank);
    assert!(matches!(parser.parse(hash), Entry::Digest(_)));
    assert_eq!(parser.parse(b"password"), Entry::Malformed);

    let mut parser = Parser::new(
        InputFormat::Auto,
        FilterKind::Passwords,
        None,
        Columns::default(),
    );
    assert_eq!(parser.parse(b"a:b"), Entry::Password(b"a:b"));
    assert_eq!(parser.parse(hash), Entry::Password(hash));

    let mut parser = Parser::new(
        InputFormat::Auto,
        FilterKind::Pairs,
        None,
        Columns::default(),
    );
    assert!(matches!(parser.parse(b"a:b"), Entry::Pair { .. }));
    assert!(!InputFormat::Hibp.fits(FilterKind::Pairs));
    assert!(!InputFormat::Plain.fits(FilterKind::Pairs));
}

#[test]
fn lines_strip_endings_and_the_byte_order_mark() {
    let got = lines(b"\xEF\xBB\xBFa:1\r\nb:2\n\n\xEF\xBB\xBFc:3");
    let want: Vec<Option<Vec<u8>>> = [&b"a:1"[..], b"b:2", b"", b"\xEF\xBB\xBFc:3"]
        .iter()
        .map(|l| Some(l.to_vec()))
        .collect();
    assert_eq!(got, want);
    assert!(lines(b"").is_empty());
    assert_eq!(lines(b"x\n"), vec![Some(b"x".to_vec())]);
}

#[test]
fn overlong_lines_are_skipped_whole() {
    let mut input = b"a:1\n".to_vec();
    input.extend(vec![b'x'; MAX_LINE * 3 + 7]);
    input.extend_from_slice(b"\nb:2\n");
    input.extend(vec![b'y'; BUFFER + MAX_LINE * 2]);
    let got = lines(&input);
    assert_eq!(
        got,
        vec![Some(b"a:1".to_vec()), None, Some(b"b:2".to_vec()), None]
    );
}

#[test]
fn lines_across_buffer_refills() {
    let input: Vec<u8> = (0..300_000)
        .flat_map(|i| format!("user{i}:pass{i}\n").into_bytes())
        .collect();
    let got = lines(&input);
    assert_eq!(got.len(), 300_000);
    assert_eq!(got[123_456], Some(b"user123456:pass123456".to_vec()));
    assert_eq!(count_lines(&input[..], |_| ()).unwrap(), 300_000);
    assert_eq!(count_lines(&b"a\nb"[..], |_| ()).unwrap(), 2);
    assert_eq!(count_lines(&b""[..], |_| ()).unwrap(), 0);
}
