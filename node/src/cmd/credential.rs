//! `cairn credential new | present`: the issuer's and the holder's side.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_anchoring::{CredentialDocument, Presentation, PresentationFile};

use super::bundle::BundleFile;
use crate::cli::CredentialCommand;

pub fn run(command: CredentialCommand) -> anyhow::Result<ExitCode> {
    match command {
        CredentialCommand::New {
            credential_type,
            issuer,
            fields,
            out,
        } => {
            let text = std::fs::read_to_string(&fields)
                .with_context(|| format!("cannot read {}", fields.display()))?;
            let values: BTreeMap<String, String> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} must be a JSON object of field names to string values, e.g. {{\"name\": \"张三\", \"class\": \"C1\"}}",
                    fields.display()
                )
            })?;
            let document = CredentialDocument::new(&credential_type, &issuer, values)?;
            let json = serde_json::to_string_pretty(&document)?;
            write_private(&out, json.as_bytes())?;
            println!("{}", document.commitment());
            eprintln!(
                "wrote {} ({} fields, salted); anchor it with `cairn tx anchor {} --node URL --key KEY`",
                out.display(),
                document.fields.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        CredentialCommand::Present {
            credential,
            disclose,
            bundle,
            out,
        } => {
            let document = load(&credential)?;
            let names: Vec<&str> = disclose.iter().map(String::as_str).collect();
            let presentation = Presentation::disclose(&document, &names).with_context(|| {
                format!(
                    "the fields of {} are: {}",
                    credential.display(),
                    document
                        .fields
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let stapled = match &bundle {
                Some(path) => {
                    let b = BundleFile::load(path)?.decode()?;
                    let commitment = document.commitment();
                    if b.record.commitment != commitment {
                        bail!(
                            "{} is the bundle of {}, not of this credential ({commitment})",
                            path.display(),
                            b.record.commitment
                        );
                    }
                    Some(b)
                }
                None => None,
            };
            let file = PresentationFile::new(presentation, stapled.as_ref());
            std::fs::write(&out, serde_json::to_string_pretty(&file)? + "\n")
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {}: {} of {} fields disclosed{}",
                out.display(),
                file.presentation.disclosed.len(),
                document.fields.len(),
                if stapled.is_some() {
                    ", bundle stapled (verifies offline)"
                } else {
                    "; no bundle: the verifier needs --node, or staple one with --bundle"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a credential file.
pub fn load(path: &Path) -> anyhow::Result<CredentialDocument> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document: CredentialDocument = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a credential file (made by `cairn credential new`)",
            path.display()
        )
    })?;
    document
        .check()
        .with_context(|| format!("{} is not a well-formed credential", path.display()))?;
    Ok(document)
}

/// Writes a new file readable by its owner only; refuses to overwrite (a
/// credential's salts exist nowhere else).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        if path.exists() {
            format!(
                "{} exists; a credential is never overwritten, choose another --out",
                path.display()
            )
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}
