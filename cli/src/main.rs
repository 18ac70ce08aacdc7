//! `gitseal`: seal Kubernetes Secrets into SealedSecrets that are safe to commit.

mod args;
mod commands;
mod io;

use std::fmt;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};

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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keys(cmd) => commands::keys::run(cmd)?,
        Command::Seal(args) => commands::seal::run(args)?,
        Command::Create(args) => commands::create::run(args)?,
        Command::Unseal(args) => commands::unseal::run(args)?,
        Command::Reseal(args) => commands::reseal::run(args)?,
        Command::Check(args) => {
            if !commands::check::run(args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Import(args) => commands::import::run(args)?,
        Command::Edit(args) => commands::edit::run(args)?,
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
