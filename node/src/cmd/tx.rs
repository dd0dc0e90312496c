//! `cairn tx …`: sign an issuer's transaction, submit it, optionally wait.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use cairn_anchoring::{Action, AnchorItem, Commitment, RevocationReason, Transaction};
use cairn_devnet::client::{Api, error_text};
use cairn_genesis::{Hash, KeyPair, Timestamp};

use crate::cli::{ReasonArg, TxCommand, TxCommon};

/// Commitments per anchoring transaction: large enough to amortise the
/// signature and the round trip, small enough to finalize in one block
/// under the default `max_block_commitments`.
const BATCH: usize = 1_000;

/// How long a transaction stays valid, in blocks.
const LIFETIME_BLOCKS: u64 = 1_000;

pub fn run(command: TxCommand) -> anyhow::Result<ExitCode> {
    let (common, action) = match command {
        TxCommand::Anchor {
            credentials,
            valid_until,
            common,
        } => return anchor(&credentials, valid_until, &common),
        TxCommand::Supersede {
            old,
            credential,
            valid_until,
            common,
        } => {
            let document = super::credential::load(&credential)?;
            (
                common,
                Action::Supersede {
                    old: parse(&old)?,
                    new: AnchorItem {
                        commitment: document.commitment(),
                        credential_type: document.credential_type,
                        valid_until,
                    },
                },
            )
        }
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

pub(super) fn parse(text: &str) -> anyhow::Result<Commitment> {
    Hash::from_hex(text)
        .map(Commitment)
        .map_err(|e| anyhow!("{text:?} is not a commitment (64 hex digits): {e}"))
}

fn submit(common: &TxCommon, action: Action) -> anyhow::Result<ExitCode> {
    let issuer = Issuer::connect(common)?;
    let id = issuer.send(action)?;
    println!("transaction {id} accepted");
    if common.wait {
        let height = issuer.wait(id)?;
        println!("finalized at height {height}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `cairn tx anchor`: the credentials' commitments, [`BATCH`] per transaction.
fn anchor(
    files: &[std::path::PathBuf],
    valid_until: Option<Timestamp>,
    common: &TxCommon,
) -> anyhow::Result<ExitCode> {
    let issuer = Issuer::connect(common)?;
    let mut items = Vec::with_capacity(files.len());
    for path in files {
        let document = super::credential::load(path)?;
        if document.issuer != issuer.id {
            bail!(
                "{} was made for issuer {}, but the key signs for {}; pass --issuer or use that issuer's key",
                path.display(),
                document.issuer,
                issuer.id
            );
        }
        items.push(AnchorItem {
            commitment: document.commitment(),
            credential_type: document.credential_type,
            valid_until,
        });
    }
    let batches: Vec<Vec<AnchorItem>> = items.chunks(BATCH).map(<[AnchorItem]>::to_vec).collect();
    let mut ids = Vec::with_capacity(batches.len());
    for (k, batch) in batches.into_iter().enumerate() {
        let n = batch.len();
        let id = issuer.send(Action::Anchor(batch))?;
        println!("transaction {id} accepted ({n} commitments)");
        if files.len() > BATCH {
            eprintln!(
                "  {} of {} credentials submitted",
                (k * BATCH) + n,
                files.len()
            );
        }
        ids.push(id);
    }
    if common.wait {
        for id in ids {
            let height = issuer.wait(id)?;
            println!("{id} finalized at height {height}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An issuer's connection to a node: what every transaction needs.
struct Issuer {
    key: KeyPair,
    api: Api,
    node: String,
    chain: Hash,
    height: u64,
    id: String,
}

impl Issuer {
    fn connect(common: &TxCommon) -> anyhow::Result<Issuer> {
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
        let id = match &common.issuer {
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
        Ok(Issuer {
            key,
            api,
            node: common.node.clone(),
            chain,
            height,
            id,
        })
    }

    /// Signs and submits one transaction; returns its id.
    fn send(&self, action: Action) -> anyhow::Result<Hash> {
        let tx = Transaction {
            chain: self.chain,
            issuer: self.id.clone(),
            key: self.key.public_key(),
            nonce: Timestamp::now().0,
            expires_at: self.height + LIFETIME_BLOCKS,
            action,
        }
        .sign(self.key.signing_key());
        match self.api.submit(&tx)? {
            (200 | 202, _) => Ok(tx.id()),
            (status, body) => bail!("{} refused it ({status}): {}", self.node, error_text(&body)),
        }
    }

    /// Waits until `id` is finalized; returns its height.
    fn wait(&self, id: Hash) -> anyhow::Result<u64> {
        let start = Instant::now();
        loop {
            let (_, body) = self.api.get(&format!("/v1/txs/{id}"))?;
            match body["status"].as_str() {
                Some("committed") => return Ok(body["height"].as_u64().unwrap_or(0)),
                Some("rejected") => bail!("rejected: {}", body["error"].as_str().unwrap_or("")),
                _ if start.elapsed() > Duration::from_secs(60) => {
                    bail!("{id} not finalized within 60 s; check later with GET /v1/txs/{id}")
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}
