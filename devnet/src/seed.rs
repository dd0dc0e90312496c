//! Demo credentials in every lifecycle state, anchored through a node's
//! API, and the files a newcomer uses: the credential documents (what an
//! issuer and a holder keep) and a ready-made presentation with a stapled
//! proof bundle (what a holder shows).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_anchoring::{
    Action, AnchorItem, CredentialDocument, Presentation, PresentationFile, RevocationReason,
    SignedTransaction, Transaction,
};
use cairn_genesis::{GenesisDocument, KeyPair, Timestamp};
use serde::{Deserialize, Serialize};

use crate::client::Api;
use crate::layout::Layout;
use crate::{DevnetError, TYPE_BUSINESS_LICENSE, TYPE_DRIVER_LICENSE};

/// One demo credential and the state the seeding leaves it in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DemoCredential {
    /// A short name (also the file name).
    pub name: String,
    /// Its commitment.
    pub commitment: String,
    /// Its state after seeding: active, suspended, revoked, superseded.
    pub state: String,
    /// The credential document's path.
    pub file: PathBuf,
}

/// `demo/seeded.json`: what the seeding did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seeded {
    /// The credentials.
    pub credentials: Vec<DemoCredential>,
    /// The presentation a verifier can check (the active driver's license).
    pub presentation: PathBuf,
    /// The credential it presents.
    pub presented: String,
}

fn fields(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn time(text: &str) -> Result<Timestamp, DevnetError> {
    Timestamp::parse_rfc3339(text).map_err(DevnetError::from)
}

struct Issuing<'a> {
    genesis: &'a GenesisDocument,
    api: &'a Api,
    nonce: u64,
    expires_at: u64,
}

impl Issuing<'_> {
    fn sign(&mut self, issuer: usize, key: &KeyPair, action: Action) -> SignedTransaction {
        self.nonce += 1;
        Transaction {
            chain: self.genesis.hash(),
            issuer: self.genesis.issuers[issuer].id.clone(),
            key: key.public_key(),
            nonce: self.nonce,
            expires_at: self.expires_at,
            action,
        }
        .sign(key.signing_key())
    }

    /// Submits and waits until every transaction is committed.
    fn commit(&self, txs: &[SignedTransaction]) -> Result<(), DevnetError> {
        for tx in txs {
            self.api.submit_ok(tx)?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for tx in txs {
            loop {
                let (status, body) = self.api.get(&format!("/v1/txs/{}", tx.id()))?;
                match body["status"].as_str() {
                    Some("committed") if status == 200 => break,
                    Some("rejected") => {
                        return Err(DevnetError::Http {
                            url: format!("{}/v1/txs/{}", self.api.base(), tx.id()),
                            message: format!("rejected: {}", body["error"]),
                        });
                    }
                    _ if Instant::now() > deadline => {
                        return Err(DevnetError::Timeout(format!(
                            "transaction {} not committed within 60 s",
                            tx.id()
                        )));
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        Ok(())
    }
}

fn anchor(doc: &CredentialDocument, valid_until: &str) -> Result<AnchorItem, DevnetError> {
    Ok(AnchorItem {
        commitment: doc.commitment(),
        credential_type: doc.credential_type.clone(),
        valid_until: Some(time(valid_until)?),
    })
}

/// Anchors the demo credentials through `api` and leaves them active,
/// suspended, revoked and renewed; writes their documents and a
/// presentation of the active driver's license to `demo/`.
pub fn seed(layout: &Layout, api: &Api, out: &mut dyn Write) -> Result<Seeded, DevnetError> {
    let genesis = GenesisDocument::load_valid(&layout.genesis())?;
    let agencies = genesis.validators.len();
    let police0 = KeyPair::load(&layout.police_key(0))?;
    let market0 = KeyPair::load(&layout.market_key(0))?;
    // Agency 1's police if there is one, so that one license comes from another region.
    let other = if agencies > 1 { 1 } else { 0 };
    let police_other = KeyPair::load(&layout.police_key(other))?;
    let (p0, m0, po) = (0, 1, 2 * other);
    let issuer_id = |i: usize| genesis.issuers[i].id.clone();

    let driver = |name: &str, id: &str, serial: u32, issuer: &str, class: &str| {
        CredentialDocument::new(
            TYPE_DRIVER_LICENSE,
            issuer,
            fields(&[
                ("holder_name", name.to_owned()),
                ("id_number", id.to_owned()),
                (
                    "license_number",
                    format!("1.2.156.3005.2.11100000000013338W.{issuer}.{serial:08}.001.7"),
                ),
                ("class", class.to_owned()),
                ("valid_from", "2024-07-01".to_owned()),
                ("valid_until", "2034-07-01".to_owned()),
            ]),
        )
    };
    let zhang = driver("张三", "310101199001011234", 1, &issuer_id(p0), "C1")?;
    let wang = driver("王五", "310104198505052345", 2, &issuer_id(p0), "A2")?;
    let li = driver("李四", "320102199202023456", 3, &issuer_id(po), "C1")?;
    let business = |capital: &str, registered: &str| {
        CredentialDocument::new(
            TYPE_BUSINESS_LICENSE,
            &issuer_id(m0),
            fields(&[
                ("entity_name", "上海示例科技有限公司".to_owned()),
                ("credit_code", "91310000MA1FL8XQ3U".to_owned()),
                ("legal_representative", "赵六".to_owned()),
                ("registered_capital", capital.to_owned()),
                ("registered_at", registered.to_owned()),
            ]),
        )
    };
    let biz_old = business("人民币100万元", "2019-03-15")?;
    let biz_new = business("人民币500万元", "2019-03-15")?;

    let height = api.height().unwrap_or(0);
    let mut issuing = Issuing {
        genesis: &genesis,
        api,
        nonce: Timestamp::now().0,
        expires_at: height + 10_000,
    };
    writeln!(out, "seeding demo credentials …").ok();
    let mut first = vec![
        issuing.sign(
            p0,
            &police0,
            Action::Anchor(vec![
                anchor(&zhang, "2034-07-01T00:00:00Z")?,
                anchor(&wang, "2034-07-01T00:00:00Z")?,
            ]),
        ),
        issuing.sign(
            m0,
            &market0,
            Action::Anchor(vec![anchor(&biz_old, "2039-03-14T00:00:00Z")?]),
        ),
    ];
    if other != 0 {
        first.push(issuing.sign(
            po,
            &police_other,
            Action::Anchor(vec![anchor(&li, "2034-07-01T00:00:00Z")?]),
        ));
    } else {
        first.push(issuing.sign(
            p0,
            &police0,
            Action::Anchor(vec![anchor(&li, "2034-07-01T00:00:00Z")?]),
        ));
    }
    issuing.commit(&first)?;
    writeln!(out, "  anchored 4 licenses").ok();
    let li_key = if other != 0 { &police_other } else { &police0 };
    let second = vec![
        issuing.sign(
            po,
            li_key,
            Action::Suspend {
                commitment: li.commitment(),
            },
        ),
        issuing.sign(
            p0,
            &police0,
            Action::Revoke {
                commitment: wang.commitment(),
                reason: RevocationReason::RevokedAsPenalty,
            },
        ),
        issuing.sign(
            m0,
            &market0,
            Action::Supersede {
                old: biz_old.commitment(),
                new: anchor(&biz_new, "2039-03-14T00:00:00Z")?,
            },
        ),
    ];
    issuing.commit(&second)?;
    writeln!(out, "  suspended one, revoked one, renewed one").ok();

    let demo = layout.demo();
    let mut credentials = Vec::new();
    for (name, doc, state) in [
        ("zhangsan-driver-license", &zhang, "active"),
        ("lisi-driver-license", &li, "suspended"),
        ("wangwu-driver-license", &wang, "revoked"),
        ("business-license-2019", &biz_old, "superseded"),
        ("business-license-renewed", &biz_new, "active"),
    ] {
        let file = demo.join(format!("{name}.credential.json"));
        let text = serde_json::to_string_pretty(doc).unwrap_or_default();
        std::fs::write(&file, text).map_err(|e| DevnetError::io(&file, &e))?;
        credentials.push(DemoCredential {
            name: name.to_owned(),
            commitment: doc.commitment().to_string(),
            state: state.to_owned(),
            file,
        });
    }
    let presentation = write_presentation(layout, api, &zhang)?;
    let seeded = Seeded {
        credentials,
        presentation,
        presented: zhang.commitment().to_string(),
    };
    let path = demo.join("seeded.json");
    let text = serde_json::to_string_pretty(&seeded).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| DevnetError::io(&path, &e))?;
    Ok(seeded)
}

/// Writes the demo presentation (holder name, class and validity disclosed;
/// the ID number stays hidden) with a fresh bundle from `api` stapled.
pub fn write_presentation(
    layout: &Layout,
    api: &Api,
    doc: &CredentialDocument,
) -> Result<PathBuf, DevnetError> {
    let presentation = Presentation::disclose(doc, &["holder_name", "class", "valid_until"])?;
    let bundle = api.bundle(&doc.commitment().to_string())?;
    let file = PresentationFile::new(presentation, Some(&bundle));
    let path = layout
        .demo()
        .join("zhangsan-driver-license.presentation.json");
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| DevnetError::io(&path, &e))?;
    Ok(path)
}

/// Reads `demo/seeded.json`, if the devnet was seeded.
pub fn seeded(layout: &Layout) -> Option<Seeded> {
    let text = std::fs::read_to_string(layout.demo().join("seeded.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Refreshes the stapled bundle of the demo presentation.
pub fn refresh_presentation(
    layout: &Layout,
    api: &Api,
    seeded: &Seeded,
) -> Result<(), DevnetError> {
    let file = layout
        .demo()
        .join("zhangsan-driver-license.credential.json");
    let text = std::fs::read_to_string(&file).map_err(|e| DevnetError::io(&file, &e))?;
    let doc: CredentialDocument =
        serde_json::from_str(&text).map_err(|e| DevnetError::Corrupt {
            path: file.clone(),
            reason: e.to_string(),
        })?;
    if doc.commitment().to_string() != seeded.presented {
        return Err(DevnetError::Corrupt {
            path: file,
            reason: "the document does not match the seeded commitment".into(),
        });
    }
    write_presentation(layout, api, &doc)?;
    Ok(())
}
