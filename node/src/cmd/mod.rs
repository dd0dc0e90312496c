//! What each command does.

mod genesis;
mod keys;
mod node;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs one command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keys(command) => keys::run(command),
        Command::Genesis(command) => genesis::run(command),
        Command::Node(command) => node::run(command),
    }
}
