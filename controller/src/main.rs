//! `gitseal-agent`: keeps a cluster equal to a git repository, SealedSecrets included.

use std::process::ExitCode;

use clap::Parser;
use gitseal_agent::args::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    gitseal_agent::commands::main(Cli::parse()).await
}
