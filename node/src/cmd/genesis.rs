//! `cairn genesis init | add-validator | add-type | add-issuer | check | hash`.
//!
//! Every change is all or nothing: the edited document is validated, and if
//! the change introduced a problem the file is left as it was and the
//! problem is printed. Problems that were already in the file (an
//! unfinished genesis has no validators yet, say) do not block an edit.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_genesis::{
    CredentialType, GenesisDocument, GenesisError, Issuer, IssuerKey, KeyPair, PublicKey,
    Timestamp, Validator,
};

use crate::cli::{AddIssuer, AddType, AddValidator, GenesisCommand, KeySource};

pub fn run(command: GenesisCommand) -> anyhow::Result<ExitCode> {
    match command {
        GenesisCommand::Init {
            file,
            chain_id,
            genesis_time,
        } => {
            let doc = GenesisDocument::new(chain_id, genesis_time.unwrap_or_else(Timestamp::now));
            let problems: Vec<_> = doc
                .problems()
                .into_iter()
                .filter(|p| *p != GenesisError::EmptyValidatorSet)
                .collect();
            if !problems.is_empty() {
                return Err(GenesisError::Invalid(problems).into());
            }
            doc.save_new(&file)?;
            println!(
                "created {} for chain {} starting {}",
                file.display(),
                doc.chain_id,
                doc.genesis_time
            );
            println!(
                "next: cairn genesis add-validator / add-type / add-issuer, then cairn genesis check"
            );
            Ok(ExitCode::SUCCESS)
        }
        GenesisCommand::AddValidator(args) => add_validator(args),
        GenesisCommand::AddType(args) => add_type(args),
        GenesisCommand::AddIssuer(args) => add_issuer(args),
        GenesisCommand::Check { file } => check(&file),
        GenesisCommand::Hash { file } => {
            let doc = GenesisDocument::load_valid(&file)?;
            println!("{}", doc.hash());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn add_validator(args: AddValidator) -> anyhow::Result<ExitCode> {
    let public_key = resolve_key(&args.key)?;
    let peer_id = args.peer_id.unwrap_or_else(|| public_key.peer_id());
    edit(&args.file, |doc| {
        doc.validators.push(Validator {
            agency_id: args.agency_id.clone(),
            name: args.name.clone(),
            region: args.region.clone(),
            public_key,
            peer_id,
            voting_power: args.power,
            address: args.address.clone(),
        });
        format!(
            "added validator {} ({}), peer id {peer_id}",
            args.agency_id, args.name
        )
    })
}

fn add_type(args: AddType) -> anyhow::Result<ExitCode> {
    edit(&args.file, |doc| {
        doc.credential_types.push(CredentialType {
            code: args.code.clone(),
            name: args.name.clone(),
            fields: args.fields.iter().map(|f| f.trim().to_owned()).collect(),
            issuers: Vec::new(),
        });
        format!(
            "added credential type {} ({}) with {} fields",
            args.code,
            args.name,
            args.fields.len()
        )
    })
}

fn add_issuer(args: AddIssuer) -> anyhow::Result<ExitCode> {
    let public_key = resolve_key(&args.key)?;
    edit(&args.file, |doc| {
        // Accreditation is recorded on both sides; validation insists they agree.
        for code in &args.types {
            if let Some(t) = doc.credential_types.iter_mut().find(|t| t.code == *code) {
                t.issuers.push(args.id.clone());
            }
        }
        doc.issuers.push(Issuer {
            id: args.id.clone(),
            name: args.name.clone(),
            region: args.region.clone(),
            keys: vec![IssuerKey {
                public_key,
                valid_from: args.valid_from.unwrap_or(doc.genesis_time),
                valid_until: args.valid_until,
            }],
            accredited_types: args.types.clone(),
        });
        format!(
            "added issuer {} ({}) accredited for [{}]",
            args.id,
            args.name,
            args.types.join(", ")
        )
    })
}

fn resolve_key(source: &KeySource) -> anyhow::Result<PublicKey> {
    match (&source.key, source.public_key) {
        (Some(path), _) => Ok(KeyPair::load(path)?.public_key()),
        (None, Some(key)) => Ok(key),
        (None, None) => bail!("give --key KEY_FILE or --public-key HEX"),
    }
}

/// Loads `file`, applies `change`, and writes the result only if the change
/// introduced no new problem.
fn edit(
    file: &Path,
    change: impl FnOnce(&mut GenesisDocument) -> String,
) -> anyhow::Result<ExitCode> {
    let mut doc = GenesisDocument::load(file)?;
    let before = doc.problems();
    let summary = change(&mut doc);
    let introduced: Vec<GenesisError> = doc
        .problems()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if !introduced.is_empty() {
        return Err(anyhow::Error::new(GenesisError::Invalid(introduced)))
            .with_context(|| format!("{} left unchanged", file.display()));
    }
    doc.save(file)?;
    println!("{summary}");
    let remaining = doc.problems().len();
    if remaining > 0 {
        println!(
            "{} is not valid yet: {remaining} problem(s); run `cairn genesis check {}`",
            file.display(),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let doc = match GenesisDocument::load(file) {
        Ok(doc) => doc,
        Err(err) => {
            println!("✗ {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let problems = doc.problems();
    if !problems.is_empty() {
        for problem in &problems {
            println!("✗ {problem}");
        }
        println!("{}: {} problem(s)", file.display(), problems.len());
        return Ok(ExitCode::FAILURE);
    }
    println!("✓ {} is valid", file.display());
    println!("  chain id          {}", doc.chain_id);
    println!("  genesis time      {}", doc.genesis_time);
    println!(
        "  validators        {} (total voting power {}; tolerates {} faulty)",
        doc.validators.len(),
        doc.total_voting_power(),
        doc.tolerated_faults()
    );
    println!("  credential types  {}", doc.credential_types.len());
    println!("  issuers           {}", doc.issuers.len());
    println!("  genesis hash      {}", doc.hash());
    if doc.tolerated_faults() == 0 {
        println!(
            "  note: this validator set cannot tolerate a single faulty validator (use 4 or more)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
