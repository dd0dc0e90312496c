//! `cairn keys generate | show`.

use std::process::ExitCode;

use cairn_genesis::KeyPair;

use crate::cli::KeysCommand;

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Generate { out } => {
            let pair = KeyPair::generate();
            pair.write_new(&out)?;
            print_identity(&pair);
            println!(
                "key file   {} (mode 0600; keep a backup: a lost key cannot be recovered)",
                out.display()
            );
        }
        KeysCommand::Show { file } => print_identity(&KeyPair::load(&file)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_identity(pair: &KeyPair) {
    println!("public key {}", pair.public_key());
    println!("peer id    {}", pair.peer_id());
}
