//! The `credgate` command line: parse, then dispatch to [`credgate::commands`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use credgate::commands::{self, EXIT_USAGE};
use credgate::filter_build::{
    BuildOptions, Columns, Encoding, InputFormat, Separator, DEFAULT_FP_RATE, DEFAULT_MAX_MALFORMED,
};
use credgate::healthcheck;
use credgate::leaked::FilterKind;
use credgate::username::{Normalizer, Region, UsernameNormalization};

// Per-request allocations are small and short-lived, and cross threads
// (accepted on one worker, finished on another): mimalloc serves that pattern
// with less CPU than the system allocator (see benches/load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A TLS reverse proxy that stops credential stuffing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the proxy on an embedded default in front of a demo shop.
    Demo {
        /// The TLS listener.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// The admin listener (/metrics, /healthz, /readyz).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
    },
    /// Run only the demo shop (plain HTTP), e.g. as the upstream of a load test.
    #[command(hide = true)]
    DemoShop {
        /// The shop's plain-HTTP listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Validate a configuration file and its certificate, like `nginx -t`.
    CheckConfig {
        /// The configuration file (TOML) to check.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compile breach corpora into a leaked-credential filter file.
    BuildFilter(BuildFilterArgs),
    /// Print a filter file's header and verify its checksums.
    FilterInfo {
        /// The filter file (`build-filter --output`).
        file: PathBuf,
    },
    /// Probe a running credgate's admin listener: exit 0 when `/healthz`
    /// answers 200 within 2 s, 1 otherwise (a container HEALTHCHECK).
    Healthcheck {
        /// The liveness URL (plain http).
        #[arg(long, default_value = healthcheck::DEFAULT_URL)]
        url: http::Uri,
    },
    /// Check one pair, or one password, against a filter: exit 0 clean, 1
    /// leaked. The password is read from stdin, never from the command line.
    Check {
        /// The filter file to check against.
        #[arg(long)]
        filter: PathBuf,
        /// The username, for a pairs filter (normalised as the filter says).
        #[arg(long)]
        username: Option<String>,
    },
}

#[derive(clap::Args)]
struct BuildFilterArgs {
    /// What the filter holds: username and password pairs, or passwords.
    #[arg(long, value_enum)]
    kind: FilterKind,
    /// Corpus files, read in order; `-` is stdin, `*.gz` is decompressed, a
    /// directory is its files by name (e.g. Have I Been Pwned range files).
    #[arg(long = "input", value_name = "FILE", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// The filter file to write; checked before the build starts.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// The inputs' line format; auto: combo for pairs, hibp or plain for
    /// passwords (a file named by 5 hex digits is a hibp range file).
    #[arg(long, value_enum, default_value_t)]
    format: InputFormat,
    /// Keep only hibp passwords seen at least N times.
    #[arg(long, value_name = "N", default_value_t = 0)]
    min_count: u64,
    /// Fail when more than this share (0 to 1) of the lines is malformed.
    #[arg(long, value_name = "SHARE", default_value_t = DEFAULT_MAX_MALFORMED)]
    max_malformed: f64,
    /// A combo list's separator: ----, |, :, ; or tab (default: detected per
    /// file from its first line).
    #[arg(long, value_name = "SEP")]
    separator: Option<Separator>,
    /// A combo list's columns by position, e.g. email,pass,phone: every
    /// user (email, phone, id) column adds a pair; skip ignores a column.
    #[arg(long, value_name = "LIST", default_value = "user,pass")]
    columns: Columns,
    /// The inputs' text encoding; auto reads UTF-16 by its byte-order mark,
    /// UTF-8 otherwise.
    #[arg(long, value_enum, default_value_t)]
    encoding: Encoding,
    /// Target false-positive rate at the expected number of items.
    #[arg(long, default_value_t = DEFAULT_FP_RATE)]
    fp_rate: f64,
    /// Size the filter for this many items instead of counting the inputs'
    /// lines first (required when reading stdin).
    #[arg(long, value_name = "N")]
    expected_items: Option<u64>,
    /// How usernames are normalised; the proxy's `[leaked]
    /// username_normalization` must say the same.
    #[arg(long, value_enum, default_value_t = UsernameNormalization::Auto)]
    username_normalization: UsernameNormalization,
    /// The region whose national phone numbers `auto` and `phone` read,
    /// e.g. CN (`13800138000` is `+8613800138000`); ignored by the other
    /// rules.
    #[arg(long, value_name = "REGION")]
    default_region: Option<Region>,
}

impl From<BuildFilterArgs> for BuildOptions {
    fn from(args: BuildFilterArgs) -> Self {
        BuildOptions {
            format: args.format,
            fp_rate: args.fp_rate,
            expected_items: args.expected_items,
            min_count: args.min_count,
            max_malformed: args.max_malformed,
            normalization: Normalizer::new(args.username_normalization, args.default_region),
            separator: args.separator,
            columns: args.columns,
            encoding: args.encoding,
            ..BuildOptions::new(args.kind, args.inputs, args.output)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        // Help and version go to stdout and are a success; anything else is
        // a usage error.
        std::process::exit(if e.use_stderr() { EXIT_USAGE.into() } else { 0 })
    });
    match cli.command {
        Command::Serve { config } => commands::serve(&config),
        Command::Demo {
            listen,
            admin_listen,
        } => commands::demo(listen, admin_listen),
        Command::DemoShop { listen } => commands::demo_shop(listen),
        Command::CheckConfig { config } => commands::check_config(&config),
        Command::BuildFilter(args) => commands::build_filter(&args.into()),
        Command::FilterInfo { file } => commands::filter_info(&file),
        Command::Check { filter, username } => commands::check(&filter, username.as_deref()),
        Command::Healthcheck { url } => commands::probe(&url),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// `--help` explains every argument of every subcommand.
    #[test]
    fn every_argument_has_help() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for command in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{} {}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
