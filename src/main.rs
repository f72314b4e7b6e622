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
        /// Print the header as one JSON object.
        #[arg(long)]
        json: bool,
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
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List, add, lift and look up bans of a running proxy through its admin
    /// API, with the admin token (like `cscli decisions`).
    Bans(BansArgs),
}

#[derive(clap::Args)]
struct BansArgs {
    /// A configuration file: the admin URL and token file default to its
    /// server.admin_listen and server.admin_token_file.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The admin listener, plain HTTP [default: from --config, else
    /// http://127.0.0.1:9090].
    #[arg(long, global = true, value_name = "URL")]
    admin_url: Option<http::Uri>,
    /// The file holding the admin bearer token [default: from --config].
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the admin API's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: BansAction,
}

#[derive(Subcommand)]
enum BansAction {
    /// The bans in force: target, origin, reason, by whom, time left.
    List,
    /// Ban an address or a network by hand.
    Add {
        /// The address or network (CIDR) to ban.
        target: String,
        /// How long, like 30m, 24h or 7d (at most a year).
        #[arg(long, default_value = "1h")]
        duration: String,
        /// Why, for the list and the log (at most 200 characters).
        #[arg(long)]
        reason: Option<String>,
        /// Who bans, for the list and the log.
        #[arg(long)]
        by: Option<String>,
    },
    /// Lift the ban on exactly an address or a network; for an address inside
    /// a banned network, names the ban that covers it.
    Remove {
        /// The address or network (CIDR) whose ban to lift.
        target: String,
    },
    /// The bans that cover an address or a network, narrowest first: exit 0
    /// if any, 1 if none.
    Lookup {
        /// The address or network (CIDR) to look up.
        target: String,
    },
}

impl From<BansAction> for commands::BansAction {
    fn from(action: BansAction) -> Self {
        match action {
            BansAction::List => Self::List,
            BansAction::Add {
                target,
                duration,
                reason,
                by,
            } => Self::Add {
                target,
                duration,
                reason,
                by,
            },
            BansAction::Remove { target } => Self::Remove { target },
            BansAction::Lookup { target } => Self::Lookup { target },
        }
    }
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
        Command::FilterInfo { file, json } => commands::filter_info(&file, json),
        Command::Check {
            filter,
            username,
            json,
        } => commands::check(&filter, username.as_deref(), json),
        Command::Bans(args) => {
            let api = commands::BansApi {
                config: args.config,
                admin_url: args.admin_url,
                token_file: args.token_file,
                json: args.json,
            };
            commands::bans(&api, &args.action.into())
        }
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
        let nested = cli.get_subcommands().flat_map(|c| c.get_subcommands());
        for command in std::iter::once(&cli)
            .chain(cli.get_subcommands())
            .chain(nested)
        {
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
