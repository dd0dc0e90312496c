//! `cairn bundle fetch`, and the bundle file it writes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use cairn_anchoring::{Commitment, ProofBundle};
use cairn_devnet::client::{Api, error_text};
use serde::{Deserialize, Serialize};

use crate::cli::BundleCommand;

/// `BUNDLE.json`: a proof bundle (hex of its borsh encoding) with what a
/// person wants to see before decoding it.
#[derive(Debug, Serialize, Deserialize)]
pub struct BundleFile {
    /// The credential.
    pub commitment: String,
    /// Height of the bundle's header.
    pub height: u64,
    /// Time of that header.
    pub time: String,
    /// The credential's status then.
    pub status: serde_json::Value,
    /// The bundle's size in bytes.
    pub bytes: u64,
    /// The bundle, hex.
    pub bundle: String,
}

impl BundleFile {
    pub fn load(path: &Path) -> anyhow::Result<BundleFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a bundle file (made by `cairn bundle fetch`)",
                path.display()
            )
        })
    }

    pub fn decode(&self) -> anyhow::Result<ProofBundle> {
        let bytes = hex::decode(&self.bundle).map_err(|e| anyhow!("the bundle is not hex: {e}"))?;
        Ok(ProofBundle::decode(&bytes)?)
    }
}

pub fn run(command: BundleCommand) -> anyhow::Result<ExitCode> {
    let BundleCommand::Fetch {
        commitment,
        node,
        genesis,
        out,
    } = command;
    let commitment = super::tx::parse(&commitment)?;
    let api = Api::new(node.as_str());
    let file = fetch(&api, commitment)?;
    let bundle = file.decode()?;
    if bundle.record.commitment != commitment {
        bail!(
            "{node} answered with the bundle of {}, not {commitment}",
            bundle.record.commitment
        );
    }
    if let Some(path) = genesis {
        let (trust, _) = super::trust(Some(&path), None)?;
        let trace =
            cairn_anchoring::trace(commitment, &bundle, &trust, cairn_genesis::Timestamp::now());
        if let Some(failed) = trace.checks.iter().find(|c| !c.passed) {
            bail!(
                "the bundle from {node} does not verify against {}: {}",
                path.display(),
                failed.detail
            );
        }
    }
    std::fs::write(&out, serde_json::to_string_pretty(&file)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote {}: height {}, {} bytes, status {}; staple it with `cairn credential present CRED.json --bundle {}`",
        out.display(),
        file.height,
        file.bytes,
        file.status,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks `api` for `commitment`'s bundle.
pub fn fetch(api: &Api, commitment: Commitment) -> anyhow::Result<BundleFile> {
    let path = format!("/v1/credentials/{commitment}/bundle");
    let (status, body) = api.get(&path)?;
    if status != 200 {
        bail!("the node answered {status}: {}", error_text(&body));
    }
    serde_json::from_value(body).context("the node's answer is not a bundle")
}
