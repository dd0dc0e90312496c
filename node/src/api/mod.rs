//! The HTTP API: JSON in and out, hashes and keys in lowercase hex, times
//! in RFC 3339. Every error is `{"error": {"code", "message"}}` with a
//! fitting status: 400 for input that can never be valid (malformed,
//! badly signed, another chain), 422 for a transaction the ledger refuses
//! (unknown issuer, illegal transition, replay), 404 for what is not
//! there, 413 for a body over the limit, 503 when the mempool is full.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_anchoring::{AnchoringError, Commitment, CredentialRecord, SignedTransaction, StateKey};
use cairn_consensus::{CommitCertificate, Evidence};
use cairn_genesis::{CredentialType, Hash, Issuer, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

mod explore;
mod web;

use crate::NodeError;
use crate::chain::Chain;
use crate::mempool::{Admission, lock, read};
use crate::node::Shared;

/// The API's routes over the node's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    let limit = usize::try_from(shared.config.api.max_body_bytes).unwrap_or(usize::MAX);
    let mut router = Router::new();
    if shared.config.api.admin {
        router = router
            .route("/admin/peers/block", post(block_peers))
            .route("/admin/peers/unblock", post(unblock_peers));
    }
    router
        .route("/v1/status", get(status))
        .route("/v1/txs", post(submit))
        .route("/v1/txs/batch", post(submit_batch))
        .route("/v1/txs/{hash}", get(transaction))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/credentials/{commitment}", get(credential))
        .route("/v1/credentials/{commitment}/bundle", get(bundle))
        .route(
            "/v1/credentials/{commitment}/trace",
            get(explore::credential_trace),
        )
        .route("/v1/genesis", get(explore::genesis))
        .route("/v1/blocks", get(explore::blocks))
        .route("/v1/events", get(explore::events))
        .route("/v1/verify", post(explore::verify_presentation))
        .route("/v1/issuers", get(issuers))
        .route("/v1/types", get(types))
        .route("/v1/evidence", get(evidence))
        .route("/metrics", get(metrics))
        .merge(web::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// An API error: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// `SomeVariant { .. }` → `some_variant`.
fn variant_code(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut code = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> ApiError {
        let message = e.to_string();
        match e {
            NodeError::Anchoring(a) => {
                let status = match a {
                    AnchoringError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    AnchoringError::Decode { .. }
                    | AnchoringError::Malformed { .. }
                    | AnchoringError::WrongChain { .. }
                    | AnchoringError::BadSignature { .. } => StatusCode::BAD_REQUEST,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, &variant_code(&format!("{a:?}")), message)
            }
            NodeError::MempoolFull { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "mempool_full", message)
            }
            NodeError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                &variant_code(&format!("{other:?}")),
                message,
            ),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such endpoint; see /v1/status, /v1/txs, /v1/blocks, /v1/credentials/{commitment}, /v1/events, /v1/verify",
    )
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

/// Runs `f`, a short read of the committed chain (a bundle is some tens of
/// microseconds of memtable and block-cache reads, less than handing it to
/// another thread costs), on this worker when no commit holds the chain's
/// lock, and on the blocking pool when one does, so that a worker never
/// waits for a block to be written. A read that misses RocksDB's caches
/// and the page cache reads the disk on the worker: a bundle is at most a
/// few dozen point reads, milliseconds on a cold disk, well inside
/// consensus timeouts.
async fn read_chain<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Chain) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, ApiError> {
    if let Ok(chain) = shared.chain.try_read() {
        return Ok(f(&chain)?);
    }
    let shared = shared.clone();
    blocking(move || Ok(f(&read(&shared.chain))?)).await
}

fn parse_hash(what: &str, text: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(text).map_err(|e| {
        ApiError::bad_request(
            &format!("invalid_{what}"),
            format!("{what} {text:?} is not 64 lowercase hex digits: {e}"),
        )
    })
}

async fn status(State(s): State<Arc<Shared>>) -> ApiResult {
    let chain = read(&s.chain);
    let height = chain.height();
    let state = json!({
        "layout": cairn_anchoring::STATE_KEY_LAYOUT,
        "oldest_version": chain.store().oldest_state_version(),
        "replayed_at_start": chain.replayed(),
        "kept_versions": match chain.store().kept_state_versions() {
            0 => Value::Null,
            n => json!(n),
        },
    });
    let last = chain
        .last_header()
        .map(|h| json!({"hash": h.hash(), "time": h.time.to_rfc3339(), "height": h.height}));
    let validators: Vec<Value> = s
        .genesis
        .validators
        .iter()
        .map(|v| {
            json!({"name": v.name, "agency_id": v.agency_id, "region": v.region,
                   "public_key": v.public_key, "peer_id": v.peer_id.to_string(),
                   "voting_power": v.voting_power})
        })
        .collect();
    let m = &s.metrics;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let peer_height = load(&m.peer_height);
    let (pending, bytes) = {
        let pool = lock(&s.mempool);
        (pool.len(), pool.bytes())
    };
    ok(json!({
        "chain_id": s.genesis.chain_id,
        "genesis_hash": chain.id(),
        "height": height,
        "round": load(&m.round),
        "last_block": last,
        "role": if s.validator { "validator" } else { "observer" },
        "peer_id": s.peer_id,
        "peers": load(&m.peers),
        "syncing": peer_height > height + 1,
        "peer_height": peer_height,
        "mempool": {"transactions": pending, "bytes": bytes},
        "state": state,
        "validators": validators,
    }))
}

async fn submit(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = read_body(&s, body)?;
    let bytes = if is_binary(&headers) {
        body.to_vec()
    } else {
        let tx: SignedTransaction = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not a signed transaction in JSON: {e}"),
            )
        })?;
        tx.encode()
    };
    let shared = s.clone();
    let (_, id, admission) = blocking(move || Ok(shared.submit(&bytes)?)).await?;
    let (status, body) = admission_json(id, admission);
    Ok((status, Json(body)).into_response())
}

/// Most transactions one `POST /v1/txs/batch` may carry.
pub const MAX_SUBMIT_BATCH: usize = 10_000;

/// `POST /v1/txs/batch`: many transactions in one request (a JSON array,
/// or with `Content-Type: application/octet-stream` their borsh encoding
/// as one `Vec`), admitted with their signatures checked in batches. The
/// answer is `{"results": [...]}`, one entry per transaction in order:
/// what `POST /v1/txs` would have said, with the error object in place of
/// a refused one's status.
async fn submit_batch(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = read_body(&s, body)?;
    let txs: Vec<SignedTransaction> = if is_binary(&headers) {
        borsh::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_batch",
                format!("the body is not a borsh list of signed transactions: {e}"),
            )
        })?
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not a JSON array of signed transactions: {e}"),
            )
        })?
    };
    if txs.is_empty() || txs.len() > MAX_SUBMIT_BATCH {
        return Err(ApiError::bad_request(
            "batch_size",
            format!(
                "{} transactions; a batch holds 1 to {MAX_SUBMIT_BATCH}",
                txs.len()
            ),
        ));
    }
    let shared = s.clone();
    let results = blocking(move || Ok(shared.submit_batch(txs))).await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok((_, id, admission)) => admission_json(id, admission).1,
            Err(e) => {
                let e = ApiError::from(e);
                json!({"error": {"code": e.code, "message": e.message}})
            }
        })
        .collect();
    ok(json!({ "results": results }))
}

/// The status and body `POST /v1/txs` answers for an admitted transaction.
fn admission_json(id: Hash, admission: Admission) -> (StatusCode, Value) {
    match admission {
        Admission::Added => (
            StatusCode::ACCEPTED,
            json!({"hash": id, "status": "pending"}),
        ),
        Admission::AlreadyPending => (StatusCode::OK, json!({"hash": id, "status": "pending"})),
        Admission::AlreadyCommitted(height, index) => (
            StatusCode::OK,
            json!({"hash": id, "status": "committed", "height": height, "index": index}),
        ),
    }
}

/// The request body, or the error for one over the limit or unreadable.
fn read_body(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than {} bytes",
                    s.config.api.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request("unreadable_body", e.body_text())
        }
    })
}

/// Whether the request says its body is binary (borsh).
fn is_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"))
}

async fn transaction(State(s): State<Arc<Shared>>, Path(hash): Path<String>) -> ApiResult {
    let id = parse_hash("transaction_hash", &hash)?;
    if let Some((height, index)) = s.store.transaction_location(&id)? {
        return ok(json!({"hash": id, "status": "committed", "height": height, "index": index}));
    }
    let pool = lock(&s.mempool);
    if pool.contains(&id) {
        return ok(json!({"hash": id, "status": "pending"}));
    }
    if let Some(reason) = pool.rejection(&id) {
        return ok(json!({"hash": id, "status": "rejected", "error": reason}));
    }
    Err(ApiError::not_found(format!(
        "transaction {id} is neither committed, pending nor recently rejected here"
    )))
}

/// A commit certificate in JSON.
pub fn certificate_json(c: &CommitCertificate) -> Value {
    json!({
        "chain": c.chain,
        "height": c.height.0,
        "round": c.round.0,
        "block_hash": c.value.0,
        "signatures": c.signatures.iter().map(|s| json!({
            "validator": s.validator,
            "signature": hex::encode(s.signature.0),
        })).collect::<Vec<_>>(),
    })
}

async fn block(State(s): State<Arc<Shared>>, Path(height): Path<String>) -> ApiResult {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_height",
            format!("height {height:?} is not a number"),
        )
    })?;
    let shared = s.clone();
    let found = blocking(move || Ok(read(&shared.chain).certified_block(height)?)).await?;
    let Some((block, cert)) = found else {
        let committed = read(&s.chain).height();
        return Err(ApiError::not_found(format!(
            "no block at height {height}; the committed height is {committed}"
        )));
    };
    ok(json!({
        "hash": block.header.hash(),
        "header": block.header,
        "transactions": block.transactions.iter().map(SignedTransaction::id).collect::<Vec<_>>(),
        "certificate": certificate_json(&cert),
    }))
}

fn parse_commitment(text: &str) -> Result<Commitment, ApiError> {
    parse_hash("commitment", text).map(Commitment)
}

fn record_json(record: &CredentialRecord, now: Timestamp) -> Value {
    json!({
        "commitment": record.commitment,
        "credential_type": record.credential_type,
        "issuer": record.issuer,
        "valid_until": record.valid_until.map(|t| t.to_rfc3339()),
        "status": record.status_at(now),
        "status_text": record.status_at(now).to_string(),
        "since": record.since().map(|t| t.to_rfc3339()),
        "events": record.events.iter().map(|e| json!({
            "event": e.kind,
            "height": e.height,
            "time": e.time.to_rfc3339(),
            "transaction": e.tx,
            "index": e.tx_index,
            "actor": e.actor,
        })).collect::<Vec<_>>(),
    })
}

async fn credential(State(s): State<Arc<Shared>>, Path(c): Path<String>) -> ApiResult {
    let commitment = parse_commitment(&c)?;
    let record: Option<CredentialRecord> =
        read(&s.chain).read(&StateKey::Credential(commitment))?;
    match record {
        Some(r) => ok(record_json(&r, Timestamp::now())),
        None => Err(ApiError::not_found(format!(
            "credential {commitment} was never anchored on this chain"
        ))),
    }
}

#[derive(Deserialize)]
struct BundleQuery {
    #[serde(default)]
    events: bool,
}

async fn bundle(
    State(s): State<Arc<Shared>>,
    Path(c): Path<String>,
    q: Result<Query<BundleQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let commitment = parse_commitment(&c)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let found = if q.events {
        // Each event's proof reads its whole block: the blocking pool's work.
        let shared = s.clone();
        blocking(move || Ok(read(&shared.chain).bundle(&commitment, true)?)).await?
    } else {
        read_chain(&s, move |chain| chain.bundle(&commitment, false)).await?
    };
    let Some(bundle) = found else {
        return Err(ApiError::not_found(format!(
            "credential {commitment} was never anchored on this chain"
        )));
    };
    let bytes = bundle.encode();
    let binary = headers
        .get(header::ACCEPT)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    if binary {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response());
    }
    ok(json!({
        "commitment": commitment,
        "height": bundle.header.height,
        "time": bundle.header.time.to_rfc3339(),
        "status": bundle.record.status_at(bundle.header.time),
        "bytes": bytes.len(),
        "bundle": hex::encode(&bytes),
    }))
}

async fn issuers(State(s): State<Arc<Shared>>) -> ApiResult {
    let chain = read(&s.chain);
    let mut out = Vec::new();
    for i in &s.genesis.issuers {
        if let Some(issuer) = chain.read::<Issuer>(&StateKey::Issuer(i.id.clone()))? {
            out.push(serde_json::to_value(issuer).unwrap_or(Value::Null));
        }
    }
    ok(json!({"issuers": out}))
}

async fn types(State(s): State<Arc<Shared>>) -> ApiResult {
    let chain = read(&s.chain);
    let mut out = Vec::new();
    for t in &s.genesis.credential_types {
        if let Some(ty) = chain.read::<CredentialType>(&StateKey::CredentialType(t.code.clone()))? {
            out.push(serde_json::to_value(ty).unwrap_or(Value::Null));
        }
    }
    ok(json!({"types": out}))
}

async fn evidence(State(s): State<Arc<Shared>>) -> ApiResult {
    let list: Vec<Value> = s
        .store
        .evidence()?
        .iter()
        .map(|e| match e {
            Evidence::ConflictingVotes {
                first: a,
                second: b,
            } => json!({
                "kind": "conflicting_votes",
                "validator": a.vote.validator,
                "height": a.vote.height.0,
                "round": a.vote.round.0,
                "votes": [vote_json(a), vote_json(b)],
            }),
            Evidence::ConflictingProposals {
                first: a,
                second: b,
            } => json!({
                "kind": "conflicting_proposals",
                "validator": a.proposal.proposer,
                "height": a.proposal.height.0,
                "round": a.proposal.round.0,
                "proposals": [a.proposal.value.0, b.proposal.value.0],
                "signatures": [hex::encode(a.signature.0), hex::encode(b.signature.0)],
            }),
        })
        .collect();
    ok(json!({"evidence": list}))
}

fn vote_json(v: &cairn_consensus::SignedVote) -> Value {
    json!({
        "kind": format!("{:?}", v.vote.kind).to_lowercase(),
        "value": v.vote.value.map(|x| x.0),
        "signature": hex::encode(v.signature.0),
    })
}

#[derive(Deserialize)]
struct Peers {
    peers: Vec<String>,
}

fn peers_body(body: Result<Json<Peers>, JsonRejection>) -> Result<Peers, ApiError> {
    body.map(|Json(p)| p).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("expected {{\"peers\": [PEER_ID, …]}}: {}", e.body_text()),
        )
    })
}

fn peer_ids(peers: &Peers) -> Result<Vec<libp2p::PeerId>, ApiError> {
    peers
        .peers
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e| ApiError::bad_request("invalid_peer_id", format!("{p}: {e}")))
        })
        .collect()
}

async fn block_peers(
    State(s): State<Arc<Shared>>,
    peers: Result<Json<Peers>, JsonRejection>,
) -> ApiResult {
    let peers = peers_body(peers)?;
    let ids = peer_ids(&peers)?;
    let _ = s.net.send(crate::net::NetCommand::Block(ids)).await;
    ok(json!({"blocked": peers.peers}))
}

async fn unblock_peers(
    State(s): State<Arc<Shared>>,
    peers: Result<Json<Peers>, JsonRejection>,
) -> ApiResult {
    let peers = peers_body(peers)?;
    let ids = peer_ids(&peers)?;
    let _ = s.net.send(crate::net::NetCommand::Unblock(ids)).await;
    ok(json!({"unblocked": peers.peers}))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let (txs, bytes) = {
        let pool = lock(&s.mempool);
        (pool.len(), pool.bytes())
    };
    let syncs = s.store.log_syncs();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(txs, bytes, syncs),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::variant_code;

    #[test]
    fn codes_are_snake_case_variant_names() {
        assert_eq!(
            variant_code("UnknownIssuer { issuer: \"x\" }"),
            "unknown_issuer"
        );
        assert_eq!(variant_code("MempoolFull"), "mempool_full");
        assert_eq!(variant_code("Storage(\"x\")"), "storage");
    }
}
