//! `credgate build-filter`: breach corpora in, one filter file out.
//!
//! The filter is sized before the first item goes in, from
//! `--expected-items` or else from a first pass that counts the inputs'
//! lines (an upper bound: blank, malformed and duplicate lines count too, so
//! the filter comes out a little larger and its false-positive rate a little
//! lower than asked). Stdin cannot be read twice, so an input `-` requires
//! `--expected-items`; buffering it instead would mean holding the whole
//! plaintext corpus in memory or writing it to a temporary file.
//!
//! The second pass streams every input through a fixed line buffer into the
//! Bloom filter, which is the only large allocation. The file is written to a
//! temporary name and renamed into place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod builder;
pub mod combo;
mod decode;
mod error;
mod input;
pub mod progress;

pub use builder::FilterBuilder;
pub use combo::{Columns, Separator};
pub use decode::Encoding;
pub use error::BuildError;
pub use input::InputFormat;

use crate::leaked::{FilterKind, Header};
use crate::username::{Normalizer, UsernameNormalization};
use input::{Entry, Input, Line, Lines, Parser};
use progress::{Phase, Progress};

/// The default target false-positive rate: a false positive tells a real
/// customer that their password is leaked, so it must stay rare.
pub const DEFAULT_FP_RATE: f64 = 1e-5;

/// How often, in lines, the progress is reported.
const PROGRESS_EVERY: u64 = 1 << 16;

/// What `build-filter` was asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub kind: FilterKind,
    /// Files to read in order; `-` is stdin, `*.gz` is decompressed.
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub format: InputFormat,
    pub fp_rate: f64,
    /// Size for this many items instead of counting the inputs' lines.
    pub expected_items: Option<u64>,
    /// The username rule, recorded in the header.
    pub normalization: Normalizer,
    /// A combo list's separator; `None`: detected per input.
    pub separator: Option<Separator>,
    /// A combo list's columns, by position.
    pub columns: Columns,
    /// The inputs' text encoding.
    pub encoding: Encoding,
    /// The largest share of malformed lines (0 to 1) that a build accepts;
    /// more means the format is wrong, and the build fails.
    pub max_malformed: f64,
    /// Keeps only hibp lines counted at least this many times.
    pub min_count: u64,
}

/// The default of [`BuildOptions::max_malformed`]: a few bad lines are
/// normal in a breach corpus, one in ten is a wrong format.
pub const DEFAULT_MAX_MALFORMED: f64 = 0.10;

/// How many malformed line numbers an error or summary shows.
const MALFORMED_EXAMPLES: usize = 5;

impl BuildOptions {
    /// Options with every default: format auto, fp rate 1e-5, counted
    /// capacity, `auto` username normalisation without a default region.
    pub fn new(kind: FilterKind, inputs: Vec<PathBuf>, output: PathBuf) -> Self {
        Self {
            kind,
            inputs,
            output,
            format: InputFormat::Auto,
            fp_rate: DEFAULT_FP_RATE,
            expected_items: None,
            normalization: Normalizer::new(UsernameNormalization::Auto, None),
            separator: None,
            columns: Columns::default(),
            encoding: Encoding::Auto,
            max_malformed: DEFAULT_MAX_MALFORMED,
            min_count: 0,
        }
    }

    fn validate(&self) -> Result<(), BuildError> {
        builder::check_fp_rate(self.fp_rate)?;
        if self.inputs.is_empty() {
            return Err(BuildError::NoInput);
        }
        if !self.format.fits(self.kind) {
            return Err(BuildError::FormatForKind {
                format: self.format,
                kind: self.kind,
            });
        }
        let combo = matches!(self.format, InputFormat::Combo)
            || (self.format == InputFormat::Auto && self.kind == FilterKind::Pairs);
        if !combo && (self.separator.is_some() || self.columns != Columns::default()) {
            return Err(BuildError::ComboOptions {
                format: self.format,
            });
        }
        if self.expected_items.is_none() && self.inputs.iter().any(|p| input::is_stdin(p)) {
            return Err(BuildError::StdinNeedsExpectedItems);
        }
        if !(0.0..=1.0).contains(&self.max_malformed) {
            return Err(BuildError::MaxMalformed {
                share: self.max_malformed,
            });
        }
        check_output(&self.output)
    }
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    pub output: PathBuf,
    pub header: Header,
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Lines skipped because they did not parse.
    pub malformed: u64,
    /// Where the first malformed lines are, `file:line`.
    pub malformed_at: Vec<String>,
    /// hibp lines left out by `--min-count`.
    pub rare: u64,
    /// Items whose bits were all set already: repeated lines, and the rare
    /// new item that is a false positive of the filter so far.
    pub duplicates: u64,
    /// Raw input bytes read in the insert pass (compressed, for `.gz`).
    pub input_bytes: u64,
    pub file_bytes: u64,
    pub elapsed: Duration,
}

impl BuildSummary {
    pub fn bytes_per_item(&self) -> f64 {
        self.file_bytes as f64 / self.header.items.max(1) as f64
    }

    pub fn items_per_second(&self) -> f64 {
        self.header.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for BuildSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        let size = bytesize::ByteSize::b(self.file_bytes).display().iec();
        writeln!(f, "wrote {}", self.output.display())?;
        writeln!(
            f,
            "  kind:       {} ({} usernames)",
            h.kind, h.normalization
        )?;
        writeln!(f, "  lines:      {}", self.lines)?;
        writeln!(f, "  items:      {} (sized for {})", h.items, h.capacity)?;
        writeln!(f, "  duplicates: {}", self.duplicates)?;
        writeln!(f, "  malformed:  {} (skipped)", self.malformed)?;
        if !self.malformed_at.is_empty() {
            writeln!(f, "              at {}", self.malformed_at.join(", "))?;
        }
        if self.rare > 0 {
            writeln!(f, "  rare:       {} (below --min-count)", self.rare)?;
        }
        writeln!(
            f,
            "  fp rate:    target {:.3e}, estimated {:.3e}",
            h.fp_rate,
            h.estimated_fp_rate()
        )?;
        writeln!(
            f,
            "  file:       {size} ({} bytes, {:.2} bytes/item)",
            self.file_bytes,
            self.bytes_per_item()
        )?;
        write!(
            f,
            "  elapsed:    {:.1} s ({:.0} items/s)",
            self.elapsed.as_secs_f64(),
            self.items_per_second()
        )?;
        if h.items > h.capacity {
            write!(
                f,
                "\nwarning: {} items exceed the {} the filter was sized for; \
                 its false-positive rate is above the target (raise --expected-items)",
                h.items, h.capacity
            )?;
        }
        Ok(())
    }
}

/// Builds the filter `opts` describes and writes it to `opts.output`.
pub fn build(opts: &BuildOptions, progress: &mut dyn Progress) -> Result<BuildSummary, BuildError> {
    opts.validate()?;
    let started = Instant::now();
    let inputs = input::expand(&opts.inputs).map_err(|e| input_error(&opts.inputs[0], e))?;
    let total = total_size(&inputs);
    let capacity = match opts.expected_items {
        Some(items) => items,
        // A combo line adds a pair per identifier column.
        None => count_items(&inputs, total, progress)?.saturating_mul(per_line(opts) as u64),
    };
    let mut builder = FilterBuilder::new(opts.kind, opts.normalization, capacity, opts.fp_rate)?;
    let mut tally = Tally::default();
    progress.begin(Phase::Inserting, total);
    for path in &inputs {
        insert_input(&mut builder, path, opts, &mut tally, progress)?;
    }
    progress.update(tally.input_bytes, builder.items());
    progress.finish();
    tally.check(builder.items(), opts.max_malformed)?;
    let duplicates = builder.duplicates();
    let sources = source_names(&opts.inputs, &inputs);
    let filter = builder.finish(sources);
    progress.begin(Phase::Writing, None);
    let file_bytes = filter.save(&opts.output)?;
    progress.finish();
    Ok(BuildSummary {
        output: opts.output.clone(),
        header: filter.header().clone(),
        lines: tally.lines,
        malformed: tally.malformed,
        malformed_at: tally.malformed_at,
        rare: tally.rare,
        duplicates,
        input_bytes: tally.input_bytes,
        file_bytes,
        elapsed: started.elapsed(),
    })
}

#[derive(Default)]
struct Tally {
    lines: u64,
    malformed: u64,
    malformed_at: Vec<String>,
    rare: u64,
    /// Raw bytes of the inputs already finished.
    input_bytes: u64,
}

impl Tally {
    /// Refuses a build that would write garbage: no item at all, or more
    /// malformed lines than `max_share` of all lines.
    fn check(&self, items: u64, max_share: f64) -> Result<(), BuildError> {
        let at = self.malformed_at.join(", ");
        if items == 0 {
            return Err(BuildError::Empty {
                lines: self.lines,
                malformed: self.malformed,
                at,
            });
        }
        if self.malformed as f64 > max_share * self.lines as f64 {
            return Err(BuildError::TooMalformed {
                malformed: self.malformed,
                lines: self.lines,
                max_share,
                at,
            });
        }
        Ok(())
    }
}

/// Fails unless a file can be created beside `output`: checked before a
/// build that may take an hour, not after.
fn check_output(output: &Path) -> Result<(), BuildError> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let probe = tempfile::Builder::new()
        .prefix(".credgate-probe")
        .tempfile_in(dir);
    let error = |source| BuildError::OutputPath {
        path: output.to_owned(),
        source,
    };
    if output.is_dir() {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "is a directory",
        )));
    }
    probe.map(drop).map_err(error)
}

/// The sources a filter records: a directory of range files is recorded
/// once, as the directory's name.
fn source_names(asked: &[PathBuf], read: &[PathBuf]) -> Vec<String> {
    match asked.iter().any(|p| p.is_dir()) {
        true => asked.iter().map(|p| input::source_name(p)).collect(),
        false => read.iter().map(|p| input::source_name(p)).collect(),
    }
}

/// The most items one line adds.
fn per_line(opts: &BuildOptions) -> usize {
    match opts.kind {
        FilterKind::Pairs => opts.columns.identifiers(),
        FilterKind::Passwords => 1,
    }
}

/// The inputs' total size, if every input is a file whose size is known.
fn total_size(inputs: &[PathBuf]) -> Option<u64> {
    inputs
        .iter()
        .map(|p| {
            let file = (!input::is_stdin(p)).then(|| std::fs::metadata(p).ok())?;
            file.map(|m| m.len())
        })
        .sum()
}

/// The first pass: the inputs' lines, an upper bound of their items.
fn count_items(
    inputs: &[PathBuf],
    total: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<u64, BuildError> {
    progress.begin(Phase::Counting, total);
    let (mut lines, mut done) = (0, 0);
    for path in inputs {
        let input = Input::open(path).map_err(|e| input_error(path, e))?;
        let read = input.counter();
        let before = lines;
        lines += input::count_lines(input, |n| progress.update(done + read.get(), before + n))
            .map_err(|e| input_error(path, e))?;
        done += read.get();
    }
    progress.finish();
    Ok(lines)
}

fn insert_input(
    builder: &mut FilterBuilder,
    path: &Path,
    opts: &BuildOptions,
    tally: &mut Tally,
    progress: &mut dyn Progress,
) -> Result<(), BuildError> {
    let input = Input::open(path)
        .and_then(|input| input.decoded(opts.encoding))
        .map_err(|e| input_error(path, e))?;
    let read = input.counter();
    let mut lines = Lines::new(input);
    let hibp = opts.kind == FilterKind::Passwords
        && matches!(opts.format, InputFormat::Auto | InputFormat::Hibp);
    let mut parser = Parser::new(opts.format, opts.kind, opts.separator, opts.columns)
        .range(input::range_prefix(path).filter(|_| hibp))
        .min_count(opts.min_count);
    let mut number = 0u64;
    while let Some(line) = lines.next_line().map_err(|e| input_error(path, e))? {
        tally.lines += 1;
        number += 1;
        let entry = match line {
            Line::Text(text) => parser.parse(text),
            Line::TooLong => Entry::Malformed,
        };
        if entry == Entry::Rare {
            tally.rare += 1;
        } else if !builder.insert_entry(entry, opts.normalization) {
            tally.malformed += 1;
            if tally.malformed_at.len() < MALFORMED_EXAMPLES {
                let name = input::source_name(path);
                tally.malformed_at.push(format!("{name}:{number}"));
            }
        }
        if tally.lines % PROGRESS_EVERY == 0 {
            progress.update(tally.input_bytes + read.get(), builder.items());
        }
    }
    tally.input_bytes += read.get();
    Ok(())
}

fn input_error(path: &Path, source: std::io::Error) -> BuildError {
    BuildError::Input {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
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
            let opts =
                BuildOptions::new(FilterKind::Passwords, vec![missing_input.clone()], output);
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
            normalization: Normalizer::new(
                UsernameNormalization::Auto,
                Some("CN".parse().unwrap()),
            ),
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
}
