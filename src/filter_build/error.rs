//! Why `build-filter` failed.

use std::path::PathBuf;

use super::InputFormat;
use crate::leaked::{FilterError, FilterKind};

/// Why a build failed. Malformed input lines are not errors: they are
/// counted in the [`BuildSummary`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the false-positive rate must lie strictly between 0 and 1, not {rate}")]
    FpRate { rate: f64 },
    #[error("no input given")]
    NoInput,
    #[error("input format {format} cannot feed a {kind} filter")]
    FormatForKind {
        format: InputFormat,
        kind: FilterKind,
    },
    #[error("--separator and --columns describe combo lists, not format {format}")]
    ComboOptions { format: InputFormat },
    #[error(
        "reading stdin (`-`) needs --expected-items: stdin cannot be read twice to count its lines"
    )]
    StdinNeedsExpectedItems,
    #[error("a filter for {items} items at rate {fp_rate} would not fit in memory")]
    TooLarge { items: u64, fp_rate: f64 },
    #[error("{}: cannot read the input", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--max-malformed must lie between 0 and 1, not {share}")]
    MaxMalformed { share: f64 },
    #[error("{}: cannot write the filter here", path.display())]
    OutputPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the inputs hold no item ({lines} lines, {malformed} malformed{})",
        at_lines(at)
    )]
    Empty {
        lines: u64,
        malformed: u64,
        at: String,
    },
    #[error(
        "{malformed} of {lines} lines are malformed, more than the {:.0}% allowed \
         (--max-malformed; wrong --format?){}",
        max_share * 100.0,
        at_lines(at)
    )]
    TooMalformed {
        malformed: u64,
        lines: u64,
        max_share: f64,
        at: String,
    },
    #[error("cannot get random bytes for the filter's hash keys")]
    Seed(#[source] std::io::Error),
    #[error(transparent)]
    Output(#[from] FilterError),
}

impl BuildError {
    /// Returns true if and only if the request itself was wrong (exit 64),
    /// rather than the build failing.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::FpRate { .. }
            | Self::NoInput
            | Self::FormatForKind { .. }
            | Self::ComboOptions { .. }
            | Self::StdinNeedsExpectedItems
            | Self::TooLarge { .. }
            | Self::MaxMalformed { .. } => true,
            Self::Input { .. }
            | Self::OutputPath { .. }
            | Self::Empty { .. }
            | Self::TooMalformed { .. }
            | Self::Seed(_)
            | Self::Output(_) => false,
        }
    }
}

/// `; first at a:1, a:7` for an error message, or nothing.
fn at_lines(at: &str) -> String {
    match at.is_empty() {
        true => String::new(),
        false => format!("; first at {at}"),
    }
}
