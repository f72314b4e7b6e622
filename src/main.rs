//! The `credgate` command line: parse, load, build, run; errors become exit
//! codes (64 for a bad command line or configuration, 1 for anything else).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use credgate::server::Signals;
use credgate::tls::CertStore;
use credgate::{demo::Demo, logging, Config, Server};

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
}

/// Exit code for a bad command line or configuration (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        .and_then(|config| {
            let s = &config.server;
            match CertStore::load(&s.tls_cert, &s.tls_key, credgate::tls::provider()) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let key = e.config_key();
                    Err(anyhow::Error::new(e).context(format!("{}: key `{key}`", path.display())))
                }
            }
        });
    match checked {
        Ok(()) => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(e),
    }
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
