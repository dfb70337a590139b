//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::config::Config;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Kafka proxy for moving clients between clusters, one topic at a time"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Path to proxy.toml.
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Check a config file and print what it sets up, without running.
    Check {
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Run { config } | Command::Check { config } => config,
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check { .. } => {
            println!(
                "config ok: bootstrap {}, {} clusters ({}), default route '{}', {} topic rules",
                config.proxy.listen,
                config.clusters.len(),
                config
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                config.cluster(config.routes.default).name,
                config.routes.topics.len()
            );
            ExitCode::SUCCESS
        }
        Command::Run { .. } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(switchyard::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
