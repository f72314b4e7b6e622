//! Progress of a long build: a bar on a terminal, a plain line every few
//! seconds otherwise (a log file or a CI job gets no escape codes and no
//! flood of redraws).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use indicatif::{ProgressBar, ProgressStyle};

/// The stages of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first pass, sizing the filter.
    Counting,
    /// The second pass, setting bits.
    Inserting,
    /// Writing the file.
    Writing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counting => "counting lines",
            Self::Inserting => "inserting",
            Self::Writing => "writing",
        }
    }
}

/// Receives a build's progress.
pub trait Progress {
    /// A phase starts that will read `total` input bytes, if known.
    fn begin(&mut self, phase: Phase, total: Option<u64>);
    /// `bytes` input bytes and `items` lines or items are done in this phase.
    fn update(&mut self, bytes: u64, items: u64);
    /// The phase is done.
    fn finish(&mut self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&mut self, _: Phase, _: Option<u64>) {}
    fn update(&mut self, _: u64, _: u64) {}
    fn finish(&mut self) {}
}

/// The reporter for a command's stderr: a bar on a terminal, plain lines
/// otherwise.
pub fn to_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Plain::every(Duration::from_secs(5)))
    }
}

/// An indicatif bar (a spinner when the total is unknown).
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    phase: Option<Phase>,
}

impl Progress for Bar {
    fn begin(&mut self, phase: Phase, total: Option<u64>) {
        let (bar, template) = match total {
            _ if phase == Phase::Writing => {
                (ProgressBar::new_spinner(), "{spinner} {msg} {elapsed}")
            }
            Some(total) => (
                ProgressBar::new(total),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ),
            None => (
                ProgressBar::new_spinner(),
                "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}",
            ),
        };
        let style = ProgressStyle::with_template(template)
            .expect("the template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(phase.as_str());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
        self.phase = Some(phase);
    }

    fn update(&mut self, bytes: u64, items: u64) {
        if let (Some(bar), Some(phase)) = (&self.bar, self.phase) {
            bar.set_position(bytes);
            let unit = if phase == Phase::Counting {
                "lines"
            } else {
                "items"
            };
            bar.set_message(format!("{}: {items} {unit}", phase.as_str()));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

/// A line to stderr at most every `interval`, and one per finished phase.
pub struct Plain {
    interval: Duration,
    phase: Phase,
    total: Option<u64>,
    started: Instant,
    last: Instant,
    bytes: u64,
    items: u64,
}

impl Plain {
    pub fn every(interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            interval,
            phase: Phase::Counting,
            total: None,
            started: now,
            last: now,
            bytes: 0,
            items: 0,
        }
    }

    fn report(&self, state: &str) {
        let read = ByteSize::b(self.bytes).display().iec();
        let of = match self.total {
            Some(total) if total > 0 => format!(
                " of {} ({:.0}%)",
                ByteSize::b(total).display().iec(),
                self.bytes as f64 * 100.0 / total as f64
            ),
            _ => String::new(),
        };
        eprintln!(
            "build-filter: {} {state}: {read}{of} read, {} {}, {:.1} s",
            self.phase.as_str(),
            self.items,
            if self.phase == Phase::Counting {
                "lines"
            } else {
                "items"
            },
            self.started.elapsed().as_secs_f64()
        );
    }
}

impl Progress for Plain {
    fn begin(&mut self, phase: Phase, total: Option<u64>) {
        *self = Self {
            phase,
            total,
            ..Self::every(self.interval)
        };
        if phase == Phase::Writing {
            eprintln!("build-filter: writing");
        }
    }

    fn update(&mut self, bytes: u64, items: u64) {
        (self.bytes, self.items) = (bytes, items);
        if self.last.elapsed() >= self.interval {
            self.last = Instant::now();
            self.report("in progress");
        }
    }

    fn finish(&mut self) {
        if self.phase != Phase::Writing {
            self.report("done");
        }
    }
}
