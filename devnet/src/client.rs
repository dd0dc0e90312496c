//! A small blocking client for a node's HTTP API.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_anchoring::{ProofBundle, SignedTransaction};
use serde_json::Value;

use crate::DevnetError;

/// A node's API at `base` (e.g. `http://127.0.0.1:8080`).
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    /// A client for the API at `base`.
    pub fn new(base: impl Into<String>) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Api {
            base: base.into().trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn fail(&self, path: &str, message: impl Into<String>) -> DevnetError {
        DevnetError::Http {
            url: format!("{}{path}", self.base),
            message: message.into(),
        }
    }

    /// `GET path` → (status, JSON).
    pub fn get(&self, path: &str) -> Result<(u16, Value), DevnetError> {
        let response = self.agent.get(&format!("{}{path}", self.base)).call();
        self.answer(path, response)
    }

    /// The status and JSON body of a response (`null` for a body that is not JSON).
    fn answer(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), DevnetError> {
        let mut response = response.map_err(|e| self.fail(path, e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_json::<Value>()
            .unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// `GET path`, insisting on 200.
    pub fn get_ok(&self, path: &str) -> Result<Value, DevnetError> {
        match self.get(path)? {
            (200, body) => Ok(body),
            (status, body) => Err(self.fail(path, format!("{status}: {}", error_text(&body)))),
        }
    }

    /// The node's committed height, if it answers.
    pub fn height(&self) -> Option<u64> {
        self.get("/v1/status")
            .ok()
            .and_then(|(s, v)| (s == 200).then(|| v["height"].as_u64()).flatten())
    }

    /// The node's metrics (`GET /metrics`), each sample's value by name.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, DevnetError> {
        let path = "/metrics";
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(|e| self.fail(path, e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.fail(path, e.to_string()))?;
        if status != 200 {
            return Err(self.fail(path, format!("{status}: {text}")));
        }
        parse_metrics(&text).map_err(|line| self.fail(path, format!("not a sample: {line:?}")))
    }

    /// Submits a transaction → (status, JSON).
    pub fn submit(&self, tx: &SignedTransaction) -> Result<(u16, Value), DevnetError> {
        let path = "/v1/txs";
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", "application/octet-stream")
            .send(&tx.encode()[..]);
        self.answer(path, response)
    }

    /// Submits many transactions in one request (`POST /v1/txs/batch`).
    pub fn submit_batch(&self, txs: &[SignedTransaction]) -> Result<(u16, Value), DevnetError> {
        let path = "/v1/txs/batch";
        let body = borsh::to_vec(txs).map_err(|e| self.fail(path, e.to_string()))?;
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", "application/octet-stream")
            .send(&body[..]);
        self.answer(path, response)
    }

    /// Submits a transaction, insisting it is accepted.
    pub fn submit_ok(&self, tx: &SignedTransaction) -> Result<(), DevnetError> {
        match self.submit(tx)? {
            (200 | 202, _) => Ok(()),
            (status, body) => Err(self.fail("/v1/txs", format!("{status}: {}", error_text(&body)))),
        }
    }

    /// The proof bundle of a commitment.
    pub fn bundle(&self, commitment: &str) -> Result<ProofBundle, DevnetError> {
        let path = format!("/v1/credentials/{commitment}/bundle");
        let body = self.get_ok(&path)?;
        let hex = body["bundle"].as_str().unwrap_or_default();
        let bytes = hex::decode(hex).map_err(|e| self.fail(&path, e.to_string()))?;
        Ok(ProofBundle::decode(&bytes)?)
    }

    /// `POST path` with a JSON body → status.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<u16, DevnetError> {
        let response = self
            .agent
            .post(&format!("{}{path}", self.base))
            .send_json(body)
            .map_err(|e| self.fail(path, e.to_string()))?;
        Ok(response.status().as_u16())
    }
}

/// The message of an API error body.
pub fn error_text(body: &Value) -> String {
    match body["error"]["message"].as_str() {
        Some(m) => format!("{} ({})", m, body["error"]["code"].as_str().unwrap_or("")),
        None => body.to_string(),
    }
}

/// The steps of a height a node counts and times, in the names of their
/// metrics: `cairn_block_{step}_total` (blocks) and
/// `cairn_block_{step}_seconds_total`.
pub const BLOCK_STEPS: [&str; 3] = ["build", "execute", "commit"];

/// Each of [`BLOCK_STEPS`]' blocks and seconds so far, from a node's
/// metrics ([`parse_metrics`]); `None` if one is missing.
pub fn block_steps(samples: &BTreeMap<String, f64>) -> Option<[(f64, f64); 3]> {
    let mut totals = [(0.0, 0.0); 3];
    for (total, step) in totals.iter_mut().zip(BLOCK_STEPS) {
        *total = (
            *samples.get(&format!("cairn_block_{step}_total"))?,
            *samples.get(&format!("cairn_block_{step}_seconds_total"))?,
        );
    }
    Some(totals)
}

/// The samples of a Prometheus text exposition without labels, as the
/// node renders it: each line that is not a comment is a name, a space and
/// a value. A line that is not is returned as the error.
pub fn parse_metrics(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value = line
            .split_once(' ')
            .and_then(|(name, value)| Some((name, value.parse::<f64>().ok()?)))
            .filter(|(name, _)| !name.is_empty());
        match value {
            Some((name, value)) => {
                samples.insert(name.to_owned(), value);
            }
            None => return Err(line.to_owned()),
        }
    }
    Ok(samples)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn metrics_parse_into_samples_and_refuse_a_line_that_is_not_one() {
        let text = "# HELP cairn_height Committed block height.\n# TYPE cairn_height gauge\n\
                    cairn_height 12\ncairn_block_commit_seconds_total 0.250000\n\n";
        let samples = parse_metrics(text).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples["cairn_height"], 12.0);
        assert_eq!(samples["cairn_block_commit_seconds_total"], 0.25);
        for bad in [
            "cairn_height",
            "cairn_height twelve",
            " 12",
            "cairn_height 1 2",
        ] {
            assert_eq!(
                parse_metrics(&format!("cairn_peers 3\n{bad}\n")),
                Err(bad.to_owned()),
                "{bad}"
            );
        }
    }

    /// The steps are read in [`BLOCK_STEPS`]' order, and not at all if one
    /// of their six samples is missing.
    #[test]
    fn block_steps_are_read_in_order_or_not_at_all() {
        let text = "cairn_block_build_total 1\ncairn_block_build_seconds_total 0.1\n\
                    cairn_block_execute_total 2\ncairn_block_execute_seconds_total 0.2\n\
                    cairn_block_commit_total 3\ncairn_block_commit_seconds_total 0.3\n";
        let mut samples = parse_metrics(text).unwrap();
        assert_eq!(
            block_steps(&samples),
            Some([(1.0, 0.1), (2.0, 0.2), (3.0, 0.3)])
        );
        samples.remove("cairn_block_commit_seconds_total");
        assert_eq!(block_steps(&samples), None);
    }
}
