//! Regulator queries over the committed chain: lifecycle events by issuer,
//! credential type, kind and time range, in chain order, a page at a time.
//!
//! A time range becomes a height range by binary search over block times
//! (block times never decrease). With an issuer, the `issuer_events` index
//! yields only that issuer's transactions; otherwise the blocks of the range
//! are read in order. Either way one request reads a bounded amount
//! ([`MAX_SCAN_BLOCKS`], [`MAX_SCAN_TXS`]) and says where to go on.

use cairn_anchoring::{Action, Block, Commitment, CredentialRecord, RevocationReason, StateKey};
use cairn_genesis::{Hash, Timestamp};
use serde::Serialize;

use crate::NodeError;
use crate::chain::Chain;

/// Most blocks one request reads when no issuer narrows it.
pub const MAX_SCAN_BLOCKS: u64 = 10_000;
/// Most of an issuer's transactions one request reads.
pub const MAX_SCAN_TXS: usize = 100_000;
/// Most events in one page.
pub const MAX_PAGE: usize = 1_000;

/// The kinds of lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A credential anchored (also the successor of a supersession).
    Anchored,
    /// Suspended.
    Suspended,
    /// Reinstated.
    Reinstated,
    /// Revoked.
    Revoked,
    /// Replaced by a successor.
    Superseded,
}

impl Kind {
    /// Parses a kind name.
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "anchored" => Kind::Anchored,
            "suspended" => Kind::Suspended,
            "reinstated" => Kind::Reinstated,
            "revoked" => Kind::Revoked,
            "superseded" => Kind::Superseded,
            _ => return None,
        })
    }
}

/// Where an event sits: block height, transaction index, item in the
/// transaction. Pages continue after a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// Block height.
    pub height: u64,
    /// Index of the transaction in the block.
    pub index: u32,
    /// Item within the transaction (an anchor carries many).
    pub item: u32,
}

impl Position {
    /// `height.index.item`, as the `after` parameter takes it.
    pub fn parse(text: &str) -> Option<Position> {
        let mut parts = text.split('.');
        let p = Position {
            height: parts.next()?.parse().ok()?,
            index: parts.next()?.parse().ok()?,
            item: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(p)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.height, self.index, self.item)
    }
}

/// What to look for; every field narrows.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// The acting issuer.
    pub issuer: Option<String>,
    /// The credential type.
    pub credential_type: Option<String>,
    /// Event kinds (empty: all).
    pub kinds: Vec<Kind>,
    /// Blocks at or after this time.
    pub from: Option<Timestamp>,
    /// Blocks before this time.
    pub to: Option<Timestamp>,
    /// Continue after this position.
    pub after: Option<Position>,
    /// Page size (at most [`MAX_PAGE`]).
    pub limit: usize,
}

/// One lifecycle event found.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Where it is.
    pub position: Position,
    /// Block time.
    pub time: Timestamp,
    /// The transaction.
    pub transaction: Hash,
    /// The acting issuer.
    pub issuer: String,
    /// What happened.
    pub kind: Kind,
    /// To which credential.
    pub commitment: Commitment,
    /// Its type.
    pub credential_type: String,
    /// Why, for a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
    /// The other credential of a supersession (the successor of a
    /// superseded one, the predecessor of a renewal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<Commitment>,
}

/// A page of events.
#[derive(Clone, Debug, Serialize)]
pub struct EventPage {
    /// The events, in chain order.
    pub events: Vec<Event>,
    /// Pass as `after` for more; `None` when the range is exhausted.
    pub next: Option<Position>,
    /// The height range searched.
    pub heights: (u64, u64),
}

/// The first height whose block time is at or after `time` (`top + 1` if none).
fn first_at_or_after(chain: &Chain, time: Timestamp) -> Result<u64, NodeError> {
    let (mut lo, mut hi) = (1, chain.height() + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if block(chain, mid)?.header.time < time {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn block(chain: &Chain, height: u64) -> Result<Block, NodeError> {
    chain.store().block(height)?.ok_or(NodeError::Corrupt {
        what: "block",
        reason: format!("committed block {height} is missing"),
    })
}

/// Runs `query` against the committed chain.
pub fn events(chain: &Chain, query: &EventQuery) -> Result<EventPage, NodeError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let top = chain.height();
    let mut first = match query.from {
        Some(t) => first_at_or_after(chain, t)?,
        None => 1,
    };
    let last = match query.to {
        Some(t) => first_at_or_after(chain, t)?.saturating_sub(1),
        None => top,
    };
    if let Some(after) = query.after {
        first = first.max(after.height);
    }
    let mut page = EventPage {
        events: Vec::new(),
        next: None,
        heights: (first, last),
    };
    if first > last {
        return Ok(page);
    }
    // The transactions to look at, in order, as (height, index, block).
    let mut found =
        |chain: &Chain, height: u64, index: u32, block: &Block| -> Result<bool, NodeError> {
            let Some(tx) = block.transactions.get(index as usize) else {
                return Ok(true);
            };
            for event in expand(chain, height, index, block.header.time, tx)? {
                if query.after.is_some_and(|a| event.position <= a) || !wanted(query, &event) {
                    continue;
                }
                if page.events.len() == limit {
                    page.next = page.events.last().map(|e| e.position);
                    return Ok(false);
                }
                page.events.push(event);
            }
            Ok(true)
        };
    match &query.issuer {
        Some(issuer) => {
            let ids = chain
                .store()
                .issuer_transactions(issuer, first, MAX_SCAN_TXS)?;
            let capped = ids.len() == MAX_SCAN_TXS;
            let mut cached: Option<(u64, Block)> = None;
            for (height, index, _) in ids.iter().copied() {
                if height > last {
                    return Ok(page);
                }
                if cached.as_ref().is_none_or(|(h, _)| *h != height) {
                    cached = Some((height, block(chain, height)?));
                }
                let Some((_, b)) = &cached else { continue };
                if !found(chain, height, index, b)? {
                    return Ok(page);
                }
            }
            if capped && let Some(&(height, index, _)) = ids.last() {
                // Where the next request picks up: after this transaction.
                page.next = Some(Position {
                    height,
                    index,
                    item: u32::MAX,
                });
            }
        }
        None => {
            let end = last.min(first.saturating_add(MAX_SCAN_BLOCKS - 1));
            for height in first..=end {
                let b = block(chain, height)?;
                for index in 0..b.transactions.len() as u32 {
                    if !found(chain, height, index, &b)? {
                        return Ok(page);
                    }
                }
            }
            if end < last {
                page.next = Some(Position {
                    height: end,
                    index: u32::MAX,
                    item: u32::MAX,
                });
            }
        }
    }
    Ok(page)
}

fn wanted(query: &EventQuery, event: &Event) -> bool {
    (query.kinds.is_empty() || query.kinds.contains(&event.kind))
        && query
            .credential_type
            .as_ref()
            .is_none_or(|t| *t == event.credential_type)
        && query.issuer.as_ref().is_none_or(|i| *i == event.issuer)
}

/// The lifecycle events one committed transaction caused.
fn expand(
    chain: &Chain,
    height: u64,
    index: u32,
    time: Timestamp,
    tx: &cairn_anchoring::SignedTransaction,
) -> Result<Vec<Event>, NodeError> {
    let type_of = |c: &Commitment| -> Result<String, NodeError> {
        Ok(chain
            .read::<CredentialRecord>(&StateKey::Credential(*c))?
            .map(|r| r.credential_type)
            .unwrap_or_default())
    };
    let event = |item: u32, kind: Kind, commitment: Commitment, credential_type: String| Event {
        position: Position {
            height,
            index,
            item,
        },
        time,
        transaction: tx.id(),
        issuer: tx.tx.issuer.clone(),
        kind,
        commitment,
        credential_type,
        reason: None,
        related: None,
    };
    Ok(match &tx.tx.action {
        Action::Anchor(items) => items
            .iter()
            .enumerate()
            .map(|(i, a)| {
                event(
                    i as u32,
                    Kind::Anchored,
                    a.commitment,
                    a.credential_type.clone(),
                )
            })
            .collect(),
        Action::Suspend { commitment } => {
            vec![event(0, Kind::Suspended, *commitment, type_of(commitment)?)]
        }
        Action::Reinstate { commitment } => {
            vec![event(
                0,
                Kind::Reinstated,
                *commitment,
                type_of(commitment)?,
            )]
        }
        Action::Revoke { commitment, reason } => {
            let mut e = event(0, Kind::Revoked, *commitment, type_of(commitment)?);
            e.reason = Some(*reason);
            vec![e]
        }
        Action::Supersede { old, new } => {
            let mut gone = event(0, Kind::Superseded, *old, type_of(old)?);
            gone.related = Some(new.commitment);
            let mut renewed = event(
                1,
                Kind::Anchored,
                new.commitment,
                new.credential_type.clone(),
            );
            renewed.related = Some(*old);
            vec![gone, renewed]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_order() {
        let p = Position {
            height: 7,
            index: 2,
            item: 30,
        };
        assert_eq!(Position::parse(&p.to_string()), Some(p));
        assert_eq!(Position::parse("7.2"), None);
        assert_eq!(Position::parse("7.2.3.4"), None);
        assert_eq!(Position::parse("a.2.3"), None);
        let later = Position { item: 31, ..p };
        assert!(p < later);
        assert!(
            later
                < Position {
                    height: 8,
                    index: 0,
                    item: 0
                }
        );
    }

    #[test]
    fn kinds_parse_by_name_only() {
        assert_eq!(Kind::parse("revoked"), Some(Kind::Revoked));
        assert_eq!(Kind::parse("Revoked"), None);
        assert_eq!(Kind::parse(""), None);
    }
}
