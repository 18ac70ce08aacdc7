//! `gitseal`: seal Kubernetes Secrets into SealedSecrets that are safe to commit.

mod args;
mod cluster;
mod commands;
mod io;
mod table;

use std::fmt;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command, Resolve};

/// A mistake in how the command was called (exit code 2), as opposed to bad input or a
/// failed operation (exit code 1).
#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// `check`'s and `diff`'s exit code when they could not check or compare (as opposed to 1:
/// findings, differences).
const CHECK_ERROR: u8 = 3;

/// The exit code of `check` and `diff`: 0 clean, 1 findings or differences, 3 when they could
/// not check or compare (so CI tells them apart); usage errors go on to `main` (2).
fn verdict(result: anyhow::Result<bool>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::FAILURE),
        Err(e) if e.downcast_ref::<UsageError>().is_none() => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(CHECK_ERROR))
        }
        Err(e) => Err(e),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keys(cmd) => commands::keys::run(cmd)?,
        Command::Seal(args) => commands::seal::run(args.resolved())?,
        Command::Create(args) => commands::create::run(args)?,
        Command::Unseal(args) => commands::unseal::run(args.resolved())?,
        Command::Reseal(args) => commands::reseal::run(args.resolved())?,
        Command::Check(args) => return verdict(commands::check::run(args.resolved())),
        Command::Import(args) => commands::import::run(args.resolved())?,
        Command::Edit(args) => commands::edit::run(args.resolved())?,
        Command::Get(args) => cluster::runtime()?.block_on(commands::get::run(args))?,
        Command::Diff(args::DiffCommand::GitSync(args)) => {
            return verdict(cluster::runtime()?.block_on(commands::diff::run(args)));
        }
        Command::Reconcile(args::ReconcileCommand::GitSync(args)) => {
            cluster::runtime()?.block_on(commands::reconcile::run(args))?
        }
        Command::Version(args) => cluster::runtime()?.block_on(commands::version::run(args))?,
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "gitseal",
                &mut std::io::stdout(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let started = std::time::SystemTime::now();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(note) = io::after_failed_redirect(started) {
                eprintln!("{note}");
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else if let Some(commands::edit::Interrupted(sig)) = e.downcast_ref() {
                ExitCode::from(128u8.saturating_add(u8::try_from(*sig).unwrap_or(0)))
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
