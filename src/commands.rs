//! What each `credgate` command does, once `main` has parsed the command
//! line: load, build, run, and turn the result into an exit code (64 for a
//! bad command line or configuration, 1 for anything else).

mod bans;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::ConfigError;
use crate::filter_build::{self, BuildOptions};
use crate::leaked::{self, Filter, FilterError, FilterKind, Header};
use crate::server::Signals;
use crate::{demo::Demo, healthcheck, logging, Config, Server};

pub use self::bans::{bans, Action as BansAction, Api as BansApi, DEFAULT_ADMIN_URL};

/// Exit code for a bad command line or configuration (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// The longest password `check` reads from stdin.
const MAX_PASSWORD: usize = 4096;

/// `credgate serve`: runs the proxy until SIGTERM or SIGINT.
pub fn serve(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => exit(runtime().and_then(|rt| rt.block_on(run(path, config)))),
        Err(e) => config_error(&e),
    }
}

/// `credgate demo`: the proxy on the embedded default, in front of the demo
/// shop.
pub fn demo(listen: SocketAddr, admin_listen: SocketAddr) -> ExitCode {
    exit(runtime().and_then(|rt| rt.block_on(run_demo(listen, admin_listen))))
}

/// `credgate demo-shop`: the demo shop alone, e.g. as a load test's upstream.
pub fn demo_shop(listen: SocketAddr) -> ExitCode {
    exit(runtime().and_then(|rt| rt.block_on(run_demo_shop(listen))))
}

async fn run(path: &Path, config: Config) -> anyhow::Result<()> {
    let level = logging::init(&config.log);
    let signals = Signals::install()?;
    let server = Server::bind(&config)
        .await?
        .reload_config_from(path, &config, level);
    let addrs = server.addrs();
    let runtime = tokio::runtime::Handle::current();
    tracing::info!(
        proxy = %addrs.proxy,
        admin = %addrs.admin,
        plain = ?addrs.plain,
        runtime = ?runtime.runtime_flavor(),
        workers = runtime.metrics().num_workers(),
        "listening"
    );
    server.run_until_signalled(signals).await
}

async fn run_demo(listen: SocketAddr, admin_listen: SocketAddr) -> anyhow::Result<()> {
    let demo = Demo::prepare(listen, admin_listen).await?;
    logging::init(&demo.config.log);
    let signals = Signals::install()?;
    let server = Server::bind(&demo.config).await?;
    let addrs = server.addrs();
    println!("{}", demo.banner(addrs.proxy, addrs.admin));
    server.run_until_signalled(signals).await
}

async fn run_demo_shop(listen: SocketAddr) -> anyhow::Result<()> {
    let shop = crate::demo::Shop::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("demo shop listening on http://{}", shop.addr());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// `credgate check-config`: like `nginx -t`, every error at once, each with
/// its file, key and reason (and line, column and caret for a syntax or
/// type error); then everything the file names is loaded as `serve` would.
pub fn check_config(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return config_error(&e),
    };
    match Server::check(&config).with_context(|| path.display().to_string()) {
        Ok(warnings) => {
            for warning in warnings {
                eprintln!("warning: {}: {warning}", path.display());
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
}

/// Prints each error of a refused configuration on its own line, with the
/// offending line under a syntax or type error.
fn config_error(e: &ConfigError) -> ExitCode {
    for error in e.errors() {
        eprintln!("error: {}", logging::chain(error));
        if let Some(snippet) = error.snippet() {
            eprintln!("{snippet}");
        }
    }
    ExitCode::from(EXIT_USAGE)
}

pub fn build_filter(opts: &BuildOptions) -> ExitCode {
    match filter_build::build(opts, &mut *filter_build::progress::to_stderr()) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) if e.is_usage() => usage_error(e.into()),
        Err(e) => exit(Err(e.into())),
    }
}

/// Prints the header (as one JSON object with `json`), then verifies the
/// whole file; a file that fails is reported on stderr and exits 1.
pub fn filter_info(path: &Path, json: bool) -> ExitCode {
    let header = match Header::read_file(path) {
        Ok(header) => header,
        Err(e) => return exit(Err(e.into())),
    };
    if !json {
        println!("file:            {}\n{header}", path.display());
    }
    let verified = leaked::verify(path);
    let state = match &verified {
        Ok(_) => "ok",
        Err(FilterError::BodyCorrupt { .. }) => "mismatch",
        Err(_) => "not verified",
    };
    match json {
        true => println!("{}", header_json(path, &header, state)),
        false => println!("checksum:        {state}"),
    }
    exit(verified.map(drop).map_err(Into::into))
}

/// `filter-info --json`: the header's fields, for scripts.
fn header_json(path: &Path, header: &Header, checksum: &str) -> serde_json::Value {
    serde_json::json!({
        "file": path.display().to_string(),
        "kind": header.kind.to_string(),
        "normalization": header.normalization.to_string(),
        "items": header.items,
        "capacity": header.capacity,
        "fp_rate_target": header.fp_rate,
        "fp_rate_now": header.estimated_fp_rate(),
        "size_bytes": header.file_len(),
        "bits": header.bits,
        "hashes": header.hashes,
        "built_at": header.built_at,
        "sources": header.sources,
        "format_version": header.version(),
        "checksum": checksum,
    })
}

/// Exit 0 healthy, 1 not; one line either way, for `docker inspect`.
pub fn probe(url: &http::Uri) -> ExitCode {
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
pub fn check(path: &Path, username: Option<&str>, json: bool) -> ExitCode {
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
            let username = filter.header().normalization.normalize(raw);
            filter.contains_pair(&username, &password)
        }
        None => filter.contains_password(&password),
    };
    let verdict = if leaked { "leaked" } else { "clean" };
    match json {
        true => println!(
            "{}",
            serde_json::json!({"verdict": verdict, "leaked": leaked, "kind": kind.to_string()})
        ),
        false => println!("{verdict}"),
    }
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

/// A multi-thread runtime, one worker per CPU this process may use (its
/// affinity and cgroup quota), or, on one CPU, a current-thread runtime.
/// A single worker gains nothing from the multi-thread scheduler and still
/// pays for it (atomic task states, a shared queue, parking through a
/// condition variable): 7 % of a GET's CPU and 10 % of a login's in
/// benches/load, where the proxy is pinned to one core as it is in a
/// one-CPU container.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let one_cpu = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let mut builder = match one_cpu {
        true => tokio::runtime::Builder::new_current_thread(),
        false => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn usage_error(e: anyhow::Error) -> ExitCode {
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
