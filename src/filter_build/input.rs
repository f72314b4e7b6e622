//! Breach corpora, streamed: opening an input (file, `.gz`, stdin), splitting
//! it into lines in a buffer that is zeroed afterwards, and parsing a line.
//!
//! Line formats:
//!
//! - **combo**: `username:password`; `;` and tab separate too, and the first
//!   separator of any of the three splits (so a password may contain all of
//!   them). The username must be UTF-8 and the password non-empty.
//! - **plain**: the whole line is a password.
//! - **hibp**: `SHA1HEX:count` (Have I Been Pwned's downloads; the count is
//!   optional and ignored); the 40 hex digits, either case, are the digest.
//!
//! `auto` decides per input file: for a pairs filter combo, the only format
//! that yields pairs; for a passwords filter hibp if the input's first
//! non-blank line has the hibp shape, plain otherwise. It never guesses combo
//! for a passwords filter, because `:` is an ordinary character in a plain
//! password list; say `--format combo` to take the passwords of a combo list.
//!
//! Every line ending (`\n` or `\r\n`) is removed, and a UTF-8 byte-order mark
//! at the start of an input. Blank lines are skipped without counting as
//! malformed; any other line that does not parse is counted and skipped.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use zeroize::Zeroizing;

use super::combo::{Columns, Separator, Usernames};
use super::decode::Encoding;
use crate::leaked::FilterKind;

/// The input format `build-filter` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// Decide per input file (see the module documentation).
    #[default]
    Auto,
    /// `username:password` (or `;`, tab, `|`, `----`; more columns with
    /// `--columns`).
    Combo,
    /// One password per line.
    Plain,
    /// `SHA1HEX:count`, passwords filters only.
    Hibp,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Combo => "combo",
            Self::Plain => "plain",
            Self::Hibp => "hibp",
        }
    }

    /// Returns true if and only if this format can feed a filter of `kind`.
    pub fn fits(self, kind: FilterKind) -> bool {
        match kind {
            FilterKind::Pairs => matches!(self, Self::Auto | Self::Combo),
            FilterKind::Passwords => true,
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed line. The usernames are not normalised yet.
#[derive(PartialEq, Eq)]
pub enum Entry<'a> {
    /// One password and the account's identifiers (an e-mail address, a
    /// phone number...): a pair for each.
    Pair {
        usernames: Usernames<'a>,
        password: &'a [u8],
    },
    Password(&'a [u8]),
    Digest([u8; 20]),
    /// A hibp line seen fewer times than `--min-count`: well formed, left out.
    Rare,
    Blank,
    Malformed,
}

/// Never shows a password, so that a failing test or a stray `{:?}` cannot
/// print one.
impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Pair { usernames, .. } => write!(f, "Pair({usernames:?}, <redacted>)"),
            Entry::Password(_) => f.write_str("Password(<redacted>)"),
            Entry::Digest(_) => f.write_str("Digest(<redacted>)"),
            Entry::Rare => f.write_str("Rare"),
            Entry::Blank => f.write_str("Blank"),
            Entry::Malformed => f.write_str("Malformed"),
        }
    }
}

/// Parses the lines of one input, resolving `auto` on its first non-blank
/// line, and a combo list's separator on its first line that has one.
pub struct Parser {
    format: InputFormat,
    kind: FilterKind,
    separator: Option<Separator>,
    columns: Columns,
    /// A Have I Been Pwned range file's prefix (its file name): its lines
    /// hold the other 35 hex digits.
    range: Option<[u8; 5]>,
    /// hibp lines with a smaller count are left out.
    min_count: u64,
}

impl Parser {
    /// A parser of one input; `separator` `None` is detected (see
    /// [`super::combo`]).
    pub fn new(
        format: InputFormat,
        kind: FilterKind,
        separator: Option<Separator>,
        columns: Columns,
    ) -> Self {
        Self {
            format,
            kind,
            separator,
            columns,
            range: None,
            min_count: 0,
        }
    }

    /// Reads the input as a Have I Been Pwned range file of `prefix`.
    pub fn range(mut self, prefix: Option<[u8; 5]>) -> Self {
        self.range = prefix;
        self
    }

    /// Leaves out hibp lines counted fewer than `min` times.
    pub fn min_count(mut self, min: u64) -> Self {
        self.min_count = min;
        self
    }

    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Entry<'a> {
        if line.is_empty() {
            return Entry::Blank;
        }
        if let Some(prefix) = self.range {
            return self.parse_range(prefix, line);
        }
        if self.format == InputFormat::Auto {
            self.format = match self.kind {
                FilterKind::Pairs => InputFormat::Combo,
                FilterKind::Passwords if parse_hibp(line) != Entry::Malformed => InputFormat::Hibp,
                FilterKind::Passwords => InputFormat::Plain,
            };
        }
        match self.format {
            InputFormat::Combo => self.parse_combo(line),
            InputFormat::Plain => Entry::Password(line),
            InputFormat::Hibp | InputFormat::Auto => self.counted(parse_hibp(line), line),
        }
    }

    /// A range file's `SUFFIX:count` line, the prefix put back in front.
    fn parse_range<'a>(&self, prefix: [u8; 5], line: &'a [u8]) -> Entry<'a> {
        if line.len() < 35 || line.len() > 40 + 20 {
            return Entry::Malformed;
        }
        let mut full = [0u8; 65];
        full[..5].copy_from_slice(&prefix);
        full[5..5 + line.len()].copy_from_slice(line);
        let full = &full[..5 + line.len()];
        match parse_hibp(full) {
            Entry::Digest(digest) => self.counted(Entry::Digest(digest), full),
            _ => Entry::Malformed,
        }
    }

    /// `entry`, or [`Entry::Rare`] when its line's count is below the minimum.
    fn counted<'a>(&self, entry: Entry<'a>, line: &[u8]) -> Entry<'a> {
        if self.min_count <= 1 || !matches!(entry, Entry::Digest(_)) {
            return entry;
        }
        let count = line.get(41..).and_then(|c| std::str::from_utf8(c).ok());
        match count.and_then(|c| c.parse::<u64>().ok()) {
            Some(n) if n < self.min_count => Entry::Rare,
            _ => entry,
        }
    }

    fn parse_combo<'a>(&mut self, line: &'a [u8]) -> Entry<'a> {
        if self.separator.is_none() {
            self.separator = Separator::detect(line);
        }
        let Some(separator) = self.separator else {
            return Entry::Malformed;
        };
        match self.columns.split(separator, line) {
            Some((usernames, password)) => Entry::Pair {
                usernames,
                password,
            },
            None => Entry::Malformed,
        }
    }
}

/// `SHA1HEX` or `SHA1HEX:count`.
pub fn parse_hibp(line: &[u8]) -> Entry<'_> {
    let (hex, count) = match line.get(40) {
        None if line.len() == 40 => (line, &b""[..]),
        Some(b':') => (&line[..40], &line[41..]),
        _ => return Entry::Malformed,
    };
    if !count.iter().all(u8::is_ascii_digit) {
        return Entry::Malformed;
    }
    let mut digest = [0u8; 20];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return Entry::Malformed,
        }
    }
    Entry::Digest(digest)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// === opening inputs ===

/// An open input, decompressed if need be.
pub struct Input {
    reader: Box<dyn Read>,
    read: ByteCount,
}

/// The raw bytes read from an input so far (compressed bytes for `.gz`), for
/// progress against the files' sizes.
#[derive(Clone, Default)]
pub struct ByteCount(Rc<Cell<u64>>);

impl ByteCount {
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl Input {
    /// Opens `path`: `-` is stdin, a `.gz` name is decompressed (several
    /// concatenated gzip members too, as `pigz` writes), anything else is read
    /// as it is.
    pub fn open(path: &Path) -> io::Result<Input> {
        let read = ByteCount::default();
        let reader: Box<dyn Read> = if is_stdin(path) {
            Box::new(Counted::new(io::stdin().lock(), &read))
        } else {
            let file = Counted::new(File::open(path)?, &read);
            if path.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::read::MultiGzDecoder::new(file))
            } else {
                Box::new(file)
            }
        };
        Ok(Input { reader, read })
    }

    pub fn counter(&self) -> ByteCount {
        self.read.clone()
    }

    /// This input decoded from `encoding` to UTF-8; the counter still
    /// counts raw bytes.
    pub fn decoded(self, encoding: Encoding) -> io::Result<Input> {
        Ok(Input {
            reader: encoding.decode(self.reader)?,
            read: self.read,
        })
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The prefix of a Have I Been Pwned range file: a name (without
/// extension) of exactly 5 hex digits, as the downloader writes them.
pub fn range_prefix(path: &Path) -> Option<[u8; 5]> {
    let stem = path.file_name()?.to_str()?;
    let stem = stem.split('.').next()?;
    let bytes: [u8; 5] = stem.as_bytes().try_into().ok()?;
    bytes
        .iter()
        .all(u8::is_ascii_hexdigit)
        .then(|| bytes.map(|b| b.to_ascii_uppercase()))
}

/// The inputs with every directory replaced by its files, by name: a
/// directory of range files is one input to the operator.
pub fn expand(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::with_capacity(inputs.len());
    for path in inputs {
        if is_stdin(path) || !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut listed = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?;
        listed.retain(|p| p.is_file());
        listed.sort();
        files.extend(listed);
    }
    Ok(files)
}

/// The name a filter records for an input: the file name without its
/// directories (which may say more about the operator than the corpus).
pub fn source_name(path: &Path) -> String {
    if is_stdin(path) {
        return "-".to_owned();
    }
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

struct Counted<R> {
    inner: R,
    read: ByteCount,
}

impl<R> Counted<R> {
    fn new(inner: R, read: &ByteCount) -> Self {
        Self {
            inner,
            read: read.clone(),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.0.set(self.read.get() + n as u64);
        Ok(n)
    }
}

// === lines ===

/// The longest line kept; a longer one is skipped as malformed.
pub const MAX_LINE: usize = 64 << 10;
/// Reads are this big (and at least as big as stdin's own 8 KiB buffer, so a
/// read from stdin bypasses it and leaves no copy there).
const BUFFER: usize = 1 << 20;

pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong,
}

/// Splits a byte stream into lines inside one fixed buffer that is zeroed
/// when dropped: the lines of a breach corpus are passwords.
pub struct Lines<R> {
    source: R,
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
    eof: bool,
    /// Inside a line longer than [`MAX_LINE`], discarding it.
    skipping: bool,
    at_start: bool,
}

impl<R: Read> Lines<R> {
    pub fn new(source: R) -> Self {
        Self {
            source,
            buf: Zeroizing::new(vec![0; BUFFER + MAX_LINE]),
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            at_start: true,
        }
    }

    /// The next line without its line ending, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            let pending = self.start..self.end;
            if let Some(at) = memchr::memchr(b'\n', &self.buf[pending.clone()]) {
                self.start += at + 1;
                if std::mem::take(&mut self.skipping) || at > MAX_LINE {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(self.text(pending.start..pending.start + at)));
            }
            if self.eof {
                if pending.is_empty() && !self.skipping {
                    return Ok(None);
                }
                self.start = self.end;
                if std::mem::take(&mut self.skipping) || pending.len() > MAX_LINE {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(self.text(pending)));
            }
            if pending.len() > MAX_LINE {
                self.skipping = true;
                self.start = self.end;
            }
            self.fill()?;
        }
    }

    fn text(&mut self, range: std::ops::Range<usize>) -> Line<'_> {
        let mut line = &self.buf[range];
        if std::mem::take(&mut self.at_start) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        Line::Text(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Moves the partial line to the front and reads more after it.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        loop {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }
}

/// Counts the lines of a stream (an upper bound of its items: blank and
/// malformed lines are counted too), for sizing a filter.
pub fn count_lines(mut source: impl Read, mut progress: impl FnMut(u64)) -> io::Result<u64> {
    let mut buf = Zeroizing::new(vec![0u8; BUFFER]);
    let (mut lines, mut last) = (0, b'\n');
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        last = buf[n - 1];
        progress(lines);
    }
    Ok(lines + u64::from(last != b'\n'))
}

#[cfg(test)]
mod tests;
