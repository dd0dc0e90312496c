//! What the explorer, the verifier page and regulators read: the genesis,
//! the latest blocks, lifecycle events by issuer, type, kind and time, a
//! credential's proven trace, and the verification of a presentation. The
//! checks are `cairn_anchoring`'s `verify` and `trace`, the code the
//! command line runs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use cairn_anchoring::{PresentationFile, ProofBundle, Trust, trace, verify};
use cairn_genesis::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, blocking, ok, parse_commitment, record_json};
use crate::mempool::read;
use crate::node::Shared;
use crate::query::{self, EventQuery, Kind, Position};

fn trust(shared: &Shared) -> Result<Trust, ApiError> {
    Trust::from_genesis(&shared.genesis).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })
}

/// Most blocks `GET /v1/blocks` lists at once.
const MAX_BLOCK_LIST: u64 = 100;

pub(super) async fn genesis(State(s): State<Arc<Shared>>) -> ApiResult {
    ok(serde_json::to_value(&s.genesis).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BlocksQuery {
    /// How many (default 20, at most 100).
    limit: Option<u64>,
    /// Blocks below this height (default: from the top).
    before: Option<u64>,
}

/// `GET /v1/blocks`: the latest blocks, newest first, in brief.
pub(super) async fn blocks(
    State(s): State<Arc<Shared>>,
    q: Result<Query<BlocksQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_BLOCK_LIST);
    let shared = s.clone();
    let out = blocking(move || {
        let chain = read(&shared.chain);
        let top = q
            .before
            .map_or(chain.height(), |b| b.saturating_sub(1).min(chain.height()));
        let names: Vec<(cairn_genesis::PublicKey, String)> = shared
            .genesis
            .validators
            .iter()
            .map(|v| (v.public_key, v.name.clone()))
            .collect();
        let mut out = Vec::new();
        let mut h = top;
        while h >= 1 && (out.len() as u64) < limit {
            if let Some((block, cert)) = chain.certified_block(h)? {
                let proposer = names
                    .iter()
                    .find(|(k, _)| *k == block.header.proposer)
                    .map(|(_, n)| n.clone());
                out.push(json!({
                    "height": h,
                    "hash": block.header.hash(),
                    "time": block.header.time.to_rfc3339(),
                    "transactions": block.transactions.len(),
                    "proposer": proposer,
                    "signatures": cert.signatures.len(),
                    "round": cert.round.0,
                }));
            }
            h -= 1;
        }
        Ok(json!({"height": chain.height(), "blocks": out}))
    })
    .await?;
    ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    issuer: Option<String>,
    #[serde(rename = "type")]
    credential_type: Option<String>,
    /// Comma-separated kinds.
    kind: Option<String>,
    /// RFC 3339.
    from: Option<String>,
    /// RFC 3339.
    to: Option<String>,
    /// `height.index.item` from a previous page's `next`.
    after: Option<String>,
    limit: Option<usize>,
}

fn time_param(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        Timestamp::parse_rfc3339(t).map_err(|e| {
            ApiError::bad_request(
                "invalid_time",
                format!("{name}={t:?} is not an RFC 3339 time such as 2026-11-25T08:00:00Z: {e}"),
            )
        })
    })
    .transpose()
}

/// `GET /v1/events`: lifecycle events by issuer, type, kind and time range.
pub(super) async fn events(
    State(s): State<Arc<Shared>>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let kinds = match q.kind.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|k| {
                Kind::parse(k.trim()).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_kind",
                        format!(
                            "kind {k:?} is not one of anchored, suspended, reinstated, revoked, superseded"
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let after = q
        .after
        .as_deref()
        .map(|a| {
            Position::parse(a).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    format!("after={a:?} is not a position such as 120.3.0 (from a page's next)"),
                )
            })
        })
        .transpose()?;
    let query = EventQuery {
        issuer: q.issuer.filter(|i| !i.is_empty()),
        credential_type: q.credential_type.filter(|t| !t.is_empty()),
        kinds,
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        after,
        limit: q.limit.unwrap_or(100),
    };
    let shared = s.clone();
    let page = blocking(move || Ok(query::events(&read(&shared.chain), &query)?)).await?;
    ok(json!({
        "events": page.events.iter().map(|e| json!({
            "position": e.position.to_string(),
            "height": e.position.height,
            "time": e.time.to_rfc3339(),
            "transaction": e.transaction,
            "issuer": e.issuer,
            "kind": e.kind,
            "commitment": e.commitment,
            "credential_type": e.credential_type,
            "reason": e.reason,
            "related": e.related,
        })).collect::<Vec<_>>(),
        "next": page.next.map(|p| p.to_string()),
        "heights": {"from": page.heights.0, "to": page.heights.1},
    }))
}

/// `GET /v1/credentials/{commitment}/trace`: the record and every event,
/// each proof checked by `cairn_anchoring::trace` against the genesis.
pub(super) async fn credential_trace(
    State(s): State<Arc<Shared>>,
    Path(c): Path<String>,
) -> ApiResult {
    let commitment = parse_commitment(&c)?;
    let shared = s.clone();
    let out = blocking(move || {
        let bundle = read(&shared.chain).bundle(&commitment, true)?;
        let Some(bundle) = bundle else {
            return Err(ApiError::not_found(format!(
                "credential {commitment} was never anchored on this chain"
            )));
        };
        let trust = trust(&shared)?;
        let now = Timestamp::now();
        let t = trace(commitment, &bundle, &trust, now);
        let events: Vec<Value> = t
            .events
            .iter()
            // Events the bundle carries a proof of.
            .filter_map(|e| {
                let block = e.block?;
                Some(json!({
                    "event": e.event.kind,
                    "name": e.event.kind.name(),
                    "height": e.event.height,
                    "time": e.event.time.to_rfc3339(),
                    "actor": e.event.actor,
                    "transaction": e.event.tx,
                    "action": e.action,
                    "proof": {
                        "block_hash": block,
                        "included": e.proven,
                        "finalized": e.proven,
                        "signers": e.signers,
                        "detail": e.detail,
                    },
                }))
            })
            .collect();
        Ok(json!({
            "verified": t.verified,
            "height": t.height,
            "checks": t.checks,
            "record": record_json(&t.record, now),
            "events": events,
        }))
    })
    .await?;
    ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyQuery {
    /// Refuse a stapled bundle older than this many seconds.
    max_age: Option<u64>,
}

/// `POST /v1/verify`: a presentation file in, two verdicts out: against
/// this node's latest finalized state (`current`), and against the bundle
/// stapled to it, if any (`stapled`). Nothing of the presentation is kept
/// or logged.
pub(super) async fn verify_presentation(
    State(s): State<Arc<Shared>>,
    q: Result<Query<VerifyQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let body = body.map_err(|e| ApiError::new(e.status(), "body", e.body_text()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not UTF-8 text"))?;
    let file = PresentationFile::parse(text)
        .map_err(|e| ApiError::bad_request("invalid_presentation", e.to_string()))?;
    let stapled: Option<ProofBundle> = file
        .bundle()
        .map_err(|e| ApiError::bad_request("invalid_bundle", e.to_string()))?;
    let commitment = file
        .presentation
        .check()
        .map_err(|e| ApiError::bad_request("invalid_presentation", e.to_string()));
    let shared = s.clone();
    let out = blocking(move || {
        let trust = trust(&shared)?;
        let now = Timestamp::now();
        let max_age = q.max_age.map(|a| a.saturating_mul(1000));
        let current = match &commitment {
            Ok(c) => match read(&shared.chain).bundle(c, false)? {
                Some(bundle) => {
                    serde_json::to_value(verify(&file.presentation, &bundle, &trust, now, None))
                        .unwrap_or(Value::Null)
                }
                None => json!({
                    "valid": false,
                    "checks": [{"name": "inclusion", "passed": false,
                        "detail": format!("credential {c} was never anchored on this chain")}],
                }),
            },
            Err(e) => json!({
                "valid": false,
                "checks": [{"name": "commitment", "passed": false, "detail": e.message}],
            }),
        };
        let stapled = stapled.map(|b| {
            serde_json::to_value(verify(&file.presentation, &b, &trust, now, max_age))
                .unwrap_or(Value::Null)
        });
        let disclosed: Vec<Value> = file
            .presentation
            .disclosed
            .iter()
            .map(|d| json!({"name": d.name, "value": d.value}))
            .collect();
        Ok(json!({
            "credential_type": file.presentation.credential_type,
            "issuer": file.presentation.issuer,
            "field_count": file.presentation.field_count,
            "disclosed": disclosed,
            "current": current,
            "stapled": stapled,
        }))
    })
    .await?;
    ok(out)
}
