//! `cairn trace`: a regulator's view of one credential, every event proven.

use std::process::ExitCode;

use anyhow::{Context, bail};
use cairn_anchoring::{EventKind, ProofBundle, trace};
use cairn_devnet::client::{Api, error_text};
use cairn_genesis::Timestamp;

use crate::cli::TraceArgs;

pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let commitment = super::tx::parse(&args.commitment)?;
    let (trust, warning) = super::trust(args.genesis.as_deref(), Some(&args.node))?;
    let api = Api::new(args.node.as_str());
    let path = format!("/v1/credentials/{commitment}/bundle?events=true");
    let (status, body) = api
        .get(&path)
        .with_context(|| format!("is a node running at {}?", args.node))?;
    if status != 200 {
        bail!("{} answered {status}: {}", args.node, error_text(&body));
    }
    let bytes = hex::decode(body["bundle"].as_str().unwrap_or_default())
        .context("the node's bundle is not hex")?;
    let bundle = ProofBundle::decode(&bytes)?;
    let t = trace(commitment, &bundle, &trust, Timestamp::now());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&t)?);
    } else {
        if let Some(w) = &warning {
            eprintln!("note: {w}");
        }
        let r = &t.record;
        println!("credential {commitment}");
        println!(
            "  type {}, issuer {}, status {} (at height {})",
            r.credential_type, r.issuer, t.status, t.height
        );
        for c in &t.checks {
            let mark = if c.passed { "✓" } else { "✗" };
            println!("{mark} {:<11} {}", c.name.label(), c.detail);
        }
        println!("events:");
        for e in &t.events {
            let mark = if e.proven { "✓" } else { "✗" };
            let what = match e.event.kind {
                EventKind::Revoked { reason } => format!("revoked ({reason:?})"),
                EventKind::Superseded { by } => format!("superseded by {by}"),
                EventKind::Anchored { renews: Some(old) } => format!("anchored, renewing {old}"),
                kind => kind.name().to_owned(),
            };
            println!(
                "{mark} height {:>7}  {}  {:<40} by {}",
                e.event.height, e.event.time, what, e.event.actor
            );
            println!("    {}", e.detail);
        }
        println!(
            "{}",
            if t.verified {
                "TRACE VERIFIED: every event is in a finalized block"
            } else {
                "TRACE NOT VERIFIED"
            }
        );
    }
    Ok(if t.verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
