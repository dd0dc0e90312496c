//! A valid four-agency genesis built from fixed seeds, for tests to break one way at a time.

use cairn_genesis::{
    CredentialType, GenesisDocument, Issuer, IssuerKey, KeyPair, Timestamp, Validator, credit_code,
};

/// An 18-character credit code: `body` (17 characters) and its check character.
pub fn code(body: &str) -> String {
    let check = credit_code::check_character(body).expect("17 characters of the code alphabet");
    format!("{body}{check}")
}

/// The key with seed `[n; 32]`.
pub fn key(n: u8) -> KeyPair {
    KeyPair::from_seed([n; 32])
}

/// Four validator agencies (Shanghai, Jiangsu, Zhejiang, Anhui), two
/// credential types and two issuers, all valid.
pub fn sample() -> GenesisDocument {
    let mut doc = GenesisDocument::new(
        "cairn-vector",
        Timestamp::parse_rfc3339("2026-11-25T08:00:00Z").unwrap(),
    );
    let agencies = [
        ("11310000MB0000001", "上海市公安局交通警察总队", "310000"),
        ("11320000MB0000002", "江苏省公安厅交通警察总队", "320000"),
        ("11330000MB0000003", "浙江省公安厅交通警察总队", "330000"),
        ("11340000MB0000004", "安徽省公安厅交通警察总队", "340000"),
    ];
    for (i, (body, name, region)) in agencies.iter().enumerate() {
        let pair = key(i as u8 + 1);
        doc.validators.push(Validator {
            agency_id: code(body),
            name: (*name).to_owned(),
            region: (*region).to_owned(),
            public_key: pair.public_key(),
            peer_id: pair.peer_id(),
            voting_power: 10,
            address: format!("/ip4/127.0.0.1/tcp/{}", 26656 + i),
        });
    }
    let police = code("11310000MB0000001");
    let market = code("11320000MB0000009");
    doc.credential_types.push(CredentialType {
        code: "driver-license".into(),
        name: "机动车驾驶证".into(),
        fields: [
            "holder_name",
            "id_number",
            "license_number",
            "class",
            "valid_from",
            "valid_until",
        ]
        .map(String::from)
        .to_vec(),
        issuers: vec![police.clone()],
    });
    doc.credential_types.push(CredentialType {
        code: "business-license".into(),
        name: "营业执照".into(),
        fields: [
            "entity_name",
            "credit_code",
            "legal_representative",
            "registered_at",
        ]
        .map(String::from)
        .to_vec(),
        issuers: vec![market.clone()],
    });
    doc.issuers.push(Issuer {
        id: police,
        name: "上海市公安局交通警察总队".into(),
        region: "310000".into(),
        keys: vec![IssuerKey {
            public_key: key(11).public_key(),
            valid_from: Timestamp::parse_rfc3339("2026-01-01T00:00:00+08:00").unwrap(),
            valid_until: Some(Timestamp::parse_rfc3339("2031-01-01T00:00:00+08:00").unwrap()),
        }],
        accredited_types: vec!["driver-license".into()],
    });
    doc.issuers.push(Issuer {
        id: market,
        name: "江苏省市场监督管理局".into(),
        region: "320000".into(),
        keys: vec![IssuerKey {
            public_key: key(12).public_key(),
            valid_from: Timestamp::parse_rfc3339("2026-01-01T00:00:00+08:00").unwrap(),
            valid_until: None,
        }],
        accredited_types: vec!["business-license".into()],
    });
    doc
}
