//! `cairn node init`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_genesis::{GenesisDocument, KeyPair};
use cairn_node::config::{DEFAULT_CONFIG, Home};
use cairn_node::store::Store;

use crate::cli::NodeCommand;

pub fn run(command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Init {
            home,
            genesis,
            key,
            observer,
        } => init(&Home::new(home), &genesis, key.as_deref(), observer),
        NodeCommand::Run { home } => run_node(Home::new(home)),
    }
}

/// Runs the node until SIGINT or SIGTERM; exits non-zero if it stopped on an error.
fn run_node(home: Home) -> anyhow::Result<ExitCode> {
    // Fail before starting anything if the home is unusable.
    let (config, ..) = cairn_node::node::open(&home)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.node.log_level))
        .with_context(|| format!("log_level {:?} in config.toml", config.node.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested; shutting down");
            let _ = stop.send(true);
        });
        cairn_node::node::run(home, stopped, None).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init(
    home: &Home,
    genesis_path: &Path,
    key: Option<&Path>,
    observer: bool,
) -> anyhow::Result<ExitCode> {
    if home.config().exists() {
        bail!(
            "{} is already a node home ({} exists); choose another --home",
            home.root().display(),
            home.config().display()
        );
    }
    let genesis = GenesisDocument::load_valid(genesis_path)?;
    let pair = match key {
        Some(path) => KeyPair::load(path)?,
        None => KeyPair::generate(),
    };
    let validator = genesis
        .validators
        .iter()
        .find(|v| v.public_key == pair.public_key());
    if validator.is_none() && !observer {
        bail!(
            "key {} is not a validator of chain {}; pass --observer to follow the chain without voting",
            pair.public_key(),
            genesis.chain_id
        );
    }
    std::fs::create_dir_all(home.root())
        .with_context(|| format!("cannot create {}", home.root().display()))?;
    pair.write_new(&home.key())?;
    genesis.save_new(&home.genesis())?;
    Store::open(&home.data(), genesis.hash())?;
    let config = if observer {
        DEFAULT_CONFIG.replace("observer = false", "observer = true")
    } else {
        DEFAULT_CONFIG.to_owned()
    };
    std::fs::write(home.config(), config)
        .with_context(|| format!("cannot write {}", home.config().display()))?;

    println!(
        "initialised {} for chain {} ({})",
        home.root().display(),
        genesis.chain_id,
        genesis.hash()
    );
    match validator {
        Some(v) if !observer => println!("role       validator: {} ({})", v.name, v.agency_id),
        _ => println!("role       observer"),
    }
    println!("public key {}", pair.public_key());
    println!("peer id    {}", pair.peer_id());
    println!(
        "config     {} (every field commented)",
        home.config().display()
    );
    Ok(ExitCode::SUCCESS)
}
