//! `tidings`: the server (`tidings serve`) and the operator's commands.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use tidings::admin::{self, AdminCommand};
use tidings::config::Config;

/// mimalloc instead of glibc's malloc: articles are allocated on the
/// sessions' threads and freed on the writer's, which glibc's per-thread
/// arenas handle poorly (malloc/free were ~17% of a streaming session's
/// time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "A federated Usenet news server on SQLite"
)]
struct Cli {
    /// Configuration file (TOML; see etc/tidings.toml). Without it, the
    /// built-in defaults are used.
    #[arg(long, short, global = true, env = "TIDINGS_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the news server until interrupted (Ctrl-C or SIGTERM).
    Serve,
    #[command(flatten)]
    Admin(AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tidings: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve => {
            // rustls warns of what clients send that it ignores (an IP
            // address as the TLS server name, from tin or slrn given
            // 127.0.0.1): nothing an operator can act on, at every
            // connection. Failed handshakes are logged by the server.
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| EnvFilter::new("info,rustls=error")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            runtime.block_on(serve(config, cli.config.clone()))
        }
        Command::Admin(command) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            runtime.block_on(admin::run(&config, command))
        }
    }
}

async fn serve(config: Config, path: Option<PathBuf>) -> ExitCode {
    let pid_file = admin::pid_file(&config);
    // Signals are caught from before the server says it listens, so a
    // SIGTERM or SIGHUP sent as soon as it does is never fatal.
    let mut signals = Signals::new();
    let mut server = match tidings::server::start(config).await {
        Ok(s) => s,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        error!("cannot write {}: {e}", pid_file.display());
    }
    // Said once everything is up, the pid file for `tidings reload`
    // included: a script that waits for this line may use the server.
    for addr in server.local_addrs() {
        info!("listening on {addr}");
    }
    for addr in server.tls_addrs() {
        info!("NNTPS (TLS) listening at {addr}");
    }
    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload => match &path {
                Some(p) => match Config::load(p) {
                    Ok(c) => server.reload(c),
                    Err(e) => error!("reload refused, keeping the running configuration: {e}"),
                },
                None => info!("reload: no --config file; nothing to reload"),
            },
        }
    }
    info!("shutting down");
    server.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_file(&pid_file);
    ExitCode::SUCCESS
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM, SIGHUP and Ctrl-C, caught from the moment this is made.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(hup)) => Some((term, hup)),
                _ => None,
            };
            Signals { unix }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some((term, hup)) = &mut self.unix {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}
