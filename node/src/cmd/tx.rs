//! `cairn tx …`: sign an issuer's transaction, submit it, optionally wait.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use cairn_anchoring::{Action, Commitment, RevocationReason, Transaction};
use cairn_devnet::client::{Api, error_text};
use cairn_genesis::{Hash, KeyPair, Timestamp};

use crate::cli::{ReasonArg, TxCommand, TxCommon};

/// How long a transaction stays valid, in blocks.
const LIFETIME_BLOCKS: u64 = 1_000;

pub fn run(command: TxCommand) -> anyhow::Result<ExitCode> {
    let (common, action) = match command {
        TxCommand::Suspend { commitment, common } => (
            common,
            Action::Suspend {
                commitment: parse(&commitment)?,
            },
        ),
        TxCommand::Reinstate { commitment, common } => (
            common,
            Action::Reinstate {
                commitment: parse(&commitment)?,
            },
        ),
        TxCommand::Revoke {
            commitment,
            reason,
            common,
        } => (
            common,
            Action::Revoke {
                commitment: parse(&commitment)?,
                reason: match reason {
                    ReasonArg::Annulled => RevocationReason::Annulled,
                    ReasonArg::Cancelled => RevocationReason::Cancelled,
                    ReasonArg::RevokedAsPenalty => RevocationReason::RevokedAsPenalty,
                    ReasonArg::Lapsed => RevocationReason::Lapsed,
                    ReasonArg::Other => RevocationReason::Other,
                },
            },
        ),
    };
    submit(&common, action)
}

fn parse(text: &str) -> anyhow::Result<Commitment> {
    Hash::from_hex(text)
        .map(Commitment)
        .map_err(|e| anyhow!("{text:?} is not a commitment (64 hex digits): {e}"))
}

fn submit(common: &TxCommon, action: Action) -> anyhow::Result<ExitCode> {
    let key = KeyPair::load(&common.key)?;
    let api = Api::new(common.node.as_str());
    let status = api
        .get_ok("/v1/status")
        .with_context(|| format!("is a node running at {}?", common.node))?;
    let chain = status["genesis_hash"]
        .as_str()
        .and_then(|h| Hash::from_hex(h).ok())
        .ok_or_else(|| anyhow!("{} did not report its genesis hash", common.node))?;
    let height = status["height"].as_u64().unwrap_or(0);
    let issuer = match &common.issuer {
        Some(id) => id.clone(),
        None => {
            let issuers = api.get_ok("/v1/issuers")?;
            let me = key.public_key().to_string();
            issuers["issuers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| {
                    i["keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k["public_key"].as_str() == Some(me.as_str()))
                })
                .and_then(|i| i["id"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    anyhow!("no issuer on this chain holds key {me}; pass --issuer ID or use the issuer's key")
                })?
        }
    };
    let tx = Transaction {
        chain,
        issuer,
        key: key.public_key(),
        nonce: Timestamp::now().0,
        expires_at: height + LIFETIME_BLOCKS,
        action,
    }
    .sign(key.signing_key());
    let id = tx.id();
    match api.submit(&tx)? {
        (200 | 202, _) => println!("transaction {id} accepted"),
        (status, body) => bail!("refused ({status}): {}", error_text(&body)),
    }
    if !common.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let start = Instant::now();
    loop {
        let (_, body) = api.get(&format!("/v1/txs/{id}"))?;
        match body["status"].as_str() {
            Some("committed") => {
                println!("finalized at height {}", body["height"]);
                return Ok(ExitCode::SUCCESS);
            }
            Some("rejected") => bail!("rejected: {}", body["error"].as_str().unwrap_or("")),
            _ if start.elapsed() > Duration::from_secs(60) => {
                bail!("not finalized within 60 s; check later with GET /v1/txs/{id}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
