//! What each command does.

mod bench;
mod bundle;
mod credential;
mod devnet;
mod genesis;
mod keys;
mod node;
mod trace;
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
        Command::Credential(command) => credential::run(command),
        Command::Bundle(command) => bundle::run(command),
        Command::Trace(args) => trace::run(args),
        Command::Bench(command) => bench::run(command),
    }
}

/// What a verifier trusts: the genesis file given, else `./genesis.json`,
/// else the genesis the node serves (with a warning: that trusts the node).
fn trust(
    genesis: Option<&std::path::Path>,
    node: Option<&str>,
) -> anyhow::Result<(cairn_anchoring::Trust, Option<String>)> {
    use anyhow::Context;
    let local = std::path::Path::new("genesis.json");
    let (document, warning) = match (genesis, node) {
        (Some(path), _) => (cairn_genesis::GenesisDocument::load_valid(path)?, None),
        (None, _) if local.exists() => (cairn_genesis::GenesisDocument::load_valid(local)?, None),
        (None, Some(url)) => {
            let api = cairn_devnet::client::Api::new(url);
            let body = api
                .get_ok("/v1/genesis")
                .with_context(|| format!("is a node running at {url}?"))?;
            let text = serde_json::to_string(&body)?;
            let document = cairn_genesis::GenesisDocument::from_json(
                &text,
                std::path::Path::new("(served genesis)"),
            )?;
            document.validate()?;
            let warning = format!(
                "trusting the genesis {} served by {url}; pass --genesis FILE to trust your own copy",
                document.hash()
            );
            (document, Some(warning))
        }
        (None, None) => anyhow::bail!(
            "no genesis to trust: pass --genesis FILE (the chain's genesis.json), or --node URL"
        ),
    };
    Ok((cairn_anchoring::Trust::from_genesis(&document)?, warning))
}
