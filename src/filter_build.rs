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
mod tests;
