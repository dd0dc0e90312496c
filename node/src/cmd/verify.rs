//! `cairn verify`: every check with ✓ or ✗, exit 0 only for a valid license.

use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_anchoring::{PresentationFile, verify};
use cairn_devnet::client::Api;
use cairn_genesis::Timestamp;

use crate::cli::VerifyArgs;

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.presentation)
        .with_context(|| format!("cannot read {}", args.presentation.display()))?;
    let file = PresentationFile::parse(&text)
        .with_context(|| format!("{} is not a presentation file", args.presentation.display()))?;
    let (trust, warning) = super::trust(args.genesis.as_deref(), args.node.as_deref())?;
    if let Some(w) = &warning
        && !args.json
    {
        eprintln!("note: {w}");
    }
    let bundle = match &args.node {
        Some(url) => {
            let commitment = file
                .presentation
                .check()
                .context("the presentation's disclosed fields do not add up to a commitment")?;
            Api::new(url.as_str())
                .bundle(&commitment.to_string())
                .with_context(|| format!("cannot fetch a bundle from {url}"))?
        }
        None => match file.bundle()? {
            Some(bundle) => bundle,
            None => bail!(
                "{} carries no proof bundle; pass --node URL to verify online",
                args.presentation.display()
            ),
        },
    };
    let verdict = verify(
        &file.presentation,
        &bundle,
        &trust,
        Timestamp::now(),
        args.max_age,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        for check in &verdict.checks {
            let mark = if check.passed { "✓" } else { "✗" };
            println!("{mark} {:<14} {}", check.name.label(), check.detail);
        }
        println!(
            "{}",
            if verdict.valid {
                "VALID: the license is authentic, finalized, issued by an accredited issuer and in force"
            } else {
                "NOT VALID"
            }
        );
    }
    Ok(if verdict.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
