//! What each command does.

mod devnet;
mod genesis;
mod keys;
mod node;
mod tx;
mod verify;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs one command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keys(command) => keys::run(command),
        Command::Genesis(command) => genesis::run(command),
        Command::Node(command) => node::run(command),
        Command::Devnet(command) => devnet::run(command),
        Command::Tx(command) => tx::run(command),
        Command::Verify(args) => verify::run(args),
    }
}
