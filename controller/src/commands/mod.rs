//! The subcommands of `gitseal-agent` (`run`, `sync`, `crds`), and what every one needs first:
//! structured logs.

mod run;
mod sync;

use std::process::ExitCode;

use crate::args::{Cli, Command};

/// Sets up logs and runs one subcommand; the process's exit code. Errors are printed with
/// their whole chain.
pub async fn main(cli: Cli) -> ExitCode {
    init_logs(&cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Crds => match gitseal_api::crds_yaml() {
            Ok(y) => {
                print!("{y}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.into()),
        },
        Command::Sync(args) => sync::sync(args).await,
        Command::Run(args) => run::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr: JSON or text, at `level` unless `GITSEAL_LOG` says otherwise, and in
/// colour only on a terminal (never when `NO_COLOR` is set), so files and log collectors
/// get no escape codes.
fn init_logs(format: &str, level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
