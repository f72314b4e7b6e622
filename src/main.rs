//! The `credgate` command line: parse, load, build, run; errors become exit
//! codes (64 for a bad command line or configuration, 1 for anything else).

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use credgate::leaked::build::DEFAULT_FP_RATE;
use credgate::leaked::{self, BuildOptions, Filter, FilterError, FilterKind, Header, InputFormat};
use credgate::leaked::{normalize_username, UsernameNormalization};
use credgate::server::Signals;
use credgate::{demo::Demo, healthcheck, logging, Config, Server};

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
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Validate a configuration file and its certificate, like `nginx -t`.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Compile breach corpora into a leaked-credential filter file.
    BuildFilter(BuildFilterArgs),
    /// Print a filter file's header and verify its checksums.
    FilterInfo { file: PathBuf },
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
        #[arg(long)]
        filter: PathBuf,
        /// The username, for a pairs filter (normalised as the filter says).
        #[arg(long)]
        username: Option<String>,
    },
}

#[derive(clap::Args)]
struct BuildFilterArgs {
    #[arg(long, value_enum)]
    kind: FilterKind,
    /// Corpus files, read in order; `-` is stdin, `*.gz` is decompressed.
    #[arg(long = "input", value_name = "FILE", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    format: InputFormat,
    /// Target false-positive rate at the expected number of items.
    #[arg(long, default_value_t = DEFAULT_FP_RATE)]
    fp_rate: f64,
    /// Size the filter for this many items instead of counting the inputs'
    /// lines first (required when reading stdin).
    #[arg(long, value_name = "N")]
    expected_items: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    username_normalization: UsernameNormalization,
}

impl From<BuildFilterArgs> for BuildOptions {
    fn from(args: BuildFilterArgs) -> Self {
        BuildOptions {
            format: args.format,
            fp_rate: args.fp_rate,
            expected_items: args.expected_items,
            normalization: args.username_normalization,
            ..BuildOptions::new(args.kind, args.inputs, args.output)
        }
    }
}

/// Exit code for a bad command line or configuration (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// The longest password `check` reads from stdin.
const MAX_PASSWORD: usize = 4096;

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        // Help and version go to stdout and are a success; anything else is
        // a usage error.
        std::process::exit(if e.use_stderr() { EXIT_USAGE.into() } else { 0 })
    });
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Serve { config } => match Config::load(&config) {
            Ok(config) => exit(runtime().and_then(|rt| rt.block_on(serve(config)))),
            Err(e) => usage_error(e.into()),
        },
        Command::Demo {
            listen,
            admin_listen,
        } => exit(runtime().and_then(|rt| rt.block_on(demo(listen, admin_listen)))),
        Command::DemoShop { listen } => {
            exit(runtime().and_then(|rt| rt.block_on(demo_shop(listen))))
        }
        Command::BuildFilter(args) => build_filter(&args.into()),
        Command::FilterInfo { file } => filter_info(&file),
        Command::Check { filter, username } => check(&filter, username.as_deref()),
        Command::Healthcheck { url } => probe(&url),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    logging::init(&config.log);
    let signals = Signals::install()?;
    let server = Server::bind(&config).await?;
    let addrs = server.addrs();
    tracing::info!(proxy = %addrs.proxy, admin = %addrs.admin, plain = ?addrs.plain, "listening");
    server.run_until_signalled(signals).await
}

async fn demo(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<()> {
    let demo = Demo::prepare(listen, admin_listen).await?;
    logging::init(&demo.config.log);
    let signals = Signals::install()?;
    let server = Server::bind(&demo.config).await?;
    let addrs = server.addrs();
    println!("{}", demo.banner(addrs.proxy, addrs.admin));
    server.run_until_signalled(signals).await
}

async fn demo_shop(listen: SocketAddr) -> anyhow::Result<()> {
    let shop = credgate::demo::Shop::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("demo shop listening on http://{}", shop.addr());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let checked = Config::load(path)
        .map_err(anyhow::Error::from)
        .and_then(|config| Server::check(&config).with_context(|| path.display().to_string()));
    match checked {
        Ok(()) => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

fn build_filter(opts: &BuildOptions) -> ExitCode {
    match leaked::build(opts, &mut *leaked::progress::to_stderr()) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) if e.is_usage() => usage_error(e.into()),
        Err(e) => exit(Err(e.into())),
    }
}

/// Prints the header, then verifies the whole file; a file that fails is
/// reported on stderr and exits 1.
fn filter_info(path: &Path) -> ExitCode {
    let header = match Header::read_file(path) {
        Ok(header) => header,
        Err(e) => return exit(Err(e.into())),
    };
    println!("file:            {}\n{header}", path.display());
    let verified = leaked::verify(path);
    let state = match &verified {
        Ok(_) => "ok",
        Err(FilterError::BodyCorrupt { .. }) => "mismatch",
        Err(_) => "not verified",
    };
    println!("checksum:        {state}");
    exit(verified.map(drop).map_err(Into::into))
}

/// Exit 0 healthy, 1 not; one line either way, for `docker inspect`.
fn probe(url: &http::Uri) -> ExitCode {
    let probed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| Ok(rt.block_on(healthcheck::probe(url, healthcheck::TIMEOUT))?));
    match probed {
        Ok(()) => {
            println!("{url}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 clean, 1 leaked; a filter that cannot be used is a usage error
/// (64), so that 1 always means leaked.
fn check(path: &Path, username: Option<&str>) -> ExitCode {
    let filter = match Filter::load(path) {
        Ok(filter) => filter,
        Err(e) => return usage_error(e.into()),
    };
    let kind = filter.header().kind;
    if (kind == FilterKind::Pairs) != username.is_some() {
        let fix = match username {
            Some(_) => "checks the password alone; drop --username",
            None => "needs --username",
        };
        return usage_error(anyhow::anyhow!("{}: a {kind} filter {fix}", path.display()));
    }
    let password = match read_password() {
        Ok(password) => password,
        Err(e) => return usage_error(e),
    };
    let leaked = match username {
        Some(raw) => {
            let username = normalize_username(raw, filter.header().normalization);
            filter.contains_pair(&username, &password)
        }
        None => filter.contains_password(&password),
    };
    println!("{}", if leaked { "leaked" } else { "clean" });
    if leaked {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The password on stdin, without one trailing newline, in a buffer zeroed
/// on drop. The buffer is filled in place and never grows (growing would
/// leave copies behind), and reads of at least stdin's own 8 KiB bypass its
/// internal buffer.
fn read_password() -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 16 << 10]);
    let mut len = 0;
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context("cannot read the password from stdin"))
            }
        }
        anyhow::ensure!(
            len <= MAX_PASSWORD + 2,
            "the password on stdin is longer than {MAX_PASSWORD} bytes"
        );
    }
    let end = buf[..len].strip_suffix(b"\n").map_or(len, <[u8]>::len);
    let end = buf[..end]
        .strip_suffix(b"\r")
        .filter(|_| end < len)
        .map_or(end, <[u8]>::len);
    buf.truncate(end);
    Ok(buf)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn usage_error(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(EXIT_USAGE)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
