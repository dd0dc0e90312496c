//! The people who never run a node, end to end through the `cairn` command
//! and the API of a real four-validator network: an issuer creates and
//! anchors credentials, a holder presents one with a stapled bundle, a
//! verifier checks it offline and online, the issuer revokes and renews,
//! a regulator traces and queries.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cairn_devnet::TYPE_DRIVER_LICENSE;
use cairn_genesis::Timestamp;
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cairn runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = cairn(dir, args);
    assert!(
        output.status.success(),
        "cairn {args:?} failed:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let output = cairn(dir, args);
    assert!(
        !output.status.success(),
        "cairn {args:?} succeeded:\n{}",
        text(&output)
    );
    text(&output)
}

/// The height in a `--wait` command's "finalized at height N".
fn finalized_height(out: &str) -> u64 {
    let at = out.rfind("finalized at height ").expect(out) + "finalized at height ".len();
    out[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn events(api: &str, query: &str) -> Vec<Value> {
    let (status, body) = get(&format!("{api}/v1/events?{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    body["events"].as_array().unwrap().clone()
}

#[test]
fn issuer_holder_verifier_and_regulator_flows() {
    let mut net = TestNet::new(4, 0);
    net.start_all();
    net.wait_height(&[0, 1, 2, 3], 2, T);
    let started = Timestamp::now().to_rfc3339();
    let dir = net.dir.path().to_path_buf();
    let genesis = dir.join("genesis.json");
    let genesis = genesis.to_str().unwrap();
    let key = dir.join("police1.key");
    net.police_keys[1].write_new(&key).unwrap();
    let key = key.to_str().unwrap();
    let issuer = net.genesis.issuers[2].id.clone();
    let (api0, api1, api2, api3) = (
        net.api(0).to_owned(),
        net.api(1).to_owned(),
        net.api(2).to_owned(),
        net.api(3).to_owned(),
    );

    // The issuer: five credentials, each with its own salts.
    let mut commitments = Vec::new();
    for k in 0..5 {
        let fields = dir.join(format!("fields{k}.json"));
        std::fs::write(
            &fields,
            format!(
                r#"{{"holder_name": "李四", "class": "C1", "id_number": "31010119900101{k:04}"}}"#
            ),
        )
        .unwrap();
        let out = ok(
            &dir,
            &[
                "credential",
                "new",
                "--type",
                TYPE_DRIVER_LICENSE,
                "--issuer",
                &issuer,
                "--fields",
                fields.to_str().unwrap(),
                "--out",
                &format!("cred{k}.json"),
            ],
        );
        let commitment = out.trim().to_owned();
        assert_eq!(commitment.len(), 64, "{out}");
        commitments.push(commitment);
    }
    let mode = std::fs::metadata(dir.join("cred0.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a credential's salts are private");
    let refused = fails(
        &dir,
        &[
            "credential",
            "new",
            "--type",
            TYPE_DRIVER_LICENSE,
            "--issuer",
            &issuer,
            "--fields",
            "fields0.json",
            "--out",
            "cred0.json",
        ],
    );
    assert!(refused.contains("never overwritten"), "{refused}");
    std::fs::write(dir.join("bad.json"), "[1, 2]").unwrap();
    let refused = fails(
        &dir,
        &[
            "credential",
            "new",
            "--type",
            TYPE_DRIVER_LICENSE,
            "--issuer",
            &issuer,
            "--fields",
            "bad.json",
            "--out",
            "bad-cred.json",
        ],
    );
    assert!(refused.contains("JSON object"), "{refused}");

    // Four anchored in one transaction, finalized.
    let out = ok(
        &dir,
        &[
            "tx",
            "anchor",
            "cred0.json",
            "cred1.json",
            "cred2.json",
            "cred3.json",
            "--node",
            &api0,
            "--key",
            key,
            "--wait",
        ],
    );
    assert!(out.contains("(4 commitments)"), "{out}");
    assert!(out.contains("finalized at height"), "{out}");
    // Every node has it before anyone asks another node.
    net.wait_height(&[0, 1, 2, 3], finalized_height(&out), T);
    // Another issuer's key cannot anchor them.
    let other = dir.join("police2.key");
    net.police_keys[2].write_new(&other).unwrap();
    let refused = fails(
        &dir,
        &[
            "tx",
            "anchor",
            "cred4.json",
            "--node",
            &api0,
            "--key",
            other.to_str().unwrap(),
        ],
    );
    assert!(refused.contains("was made for issuer"), "{refused}");

    // The holder: a bundle from another node, stapled to a presentation
    // that discloses the class only.
    let c0 = &commitments[0];
    ok(
        &dir,
        &[
            "bundle",
            "fetch",
            c0,
            "--node",
            &api2,
            "--genesis",
            genesis,
            "--out",
            "bundle0.json",
        ],
    );
    ok(
        &dir,
        &[
            "credential",
            "present",
            "cred0.json",
            "--disclose",
            "class",
            "--bundle",
            "bundle0.json",
            "--out",
            "p0.json",
        ],
    );
    let presentation = std::fs::read_to_string(dir.join("p0.json")).unwrap();
    assert!(
        presentation.contains("C1") && !presentation.contains("李四"),
        "{presentation}"
    );
    let refused = fails(
        &dir,
        &[
            "credential",
            "present",
            "cred1.json",
            "--bundle",
            "bundle0.json",
            "--out",
            "x.json",
        ],
    );
    assert!(refused.contains("not of this credential"), "{refused}");
    let refused = fails(
        &dir,
        &[
            "credential",
            "present",
            "cred1.json",
            "--disclose",
            "colour",
            "--out",
            "x.json",
        ],
    );
    assert!(
        refused.contains("holder_name"),
        "lists the fields there are: {refused}"
    );

    // The verifier, offline: every check passes.
    let out = ok(&dir, &["verify", "p0.json", "--genesis", genesis]);
    for check in [
        "✓ format",
        "✓ commitment",
        "✓ finality",
        "✓ inclusion",
        "✓ accreditation",
        "✓ status",
        "✓ bundle age",
        "VALID",
    ] {
        assert!(out.contains(check), "{check} in\n{out}");
    }
    let json: Value = serde_json::from_str(&ok(
        &dir,
        &["verify", "p0.json", "--genesis", genesis, "--json"],
    ))
    .unwrap();
    assert_eq!(json["valid"], true, "{json}");
    // The web verifier's endpoint says the same, with the same checks.
    let (status, page) = post(
        &format!("{api3}/v1/verify"),
        "application/json",
        presentation.as_bytes(),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["current"]["valid"], true, "{page}");
    assert_eq!(page["stapled"]["valid"], true, "{page}");
    assert_eq!(page["disclosed"][0]["name"], "class", "{page}");
    let (status, body) = post(
        &format!("{api3}/v1/verify"),
        "application/json",
        b"{\"presentation\": 1}",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_presentation", "{body}");

    // The issuer revokes it; online, it no longer verifies; the stapled
    // bundle still shows the state it proves.
    let out = ok(
        &dir,
        &[
            "tx",
            "revoke",
            c0,
            "--reason",
            "revoked-as-penalty",
            "--node",
            &api1,
            "--key",
            key,
            "--wait",
        ],
    );
    assert!(out.contains("finalized at height"), "{out}");
    // Every node has it before anyone asks another node.
    net.wait_height(&[0, 1, 2, 3], finalized_height(&out), T);
    let out = cairn(
        &dir,
        &["verify", "p0.json", "--genesis", genesis, "--node", &api3],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("✗ status"), "{}", text(&out));
    let (_, page) = post(
        &format!("{api3}/v1/verify"),
        "application/json",
        presentation.as_bytes(),
    );
    assert_eq!(page["current"]["valid"], false, "{page}");
    assert_eq!(page["stapled"]["valid"], true, "{page}");

    // A renewal: cred1 superseded by cred4.
    let c1 = &commitments[1];
    let out = ok(
        &dir,
        &[
            "tx",
            "supersede",
            c1,
            "cred4.json",
            "--node",
            &api0,
            "--key",
            key,
            "--wait",
        ],
    );
    assert!(out.contains("finalized at height"), "{out}");
    // Every node has it before anyone asks another node.
    net.wait_height(&[0, 1, 2, 3], finalized_height(&out), T);

    // The regulator: traces with every proof checked.
    let out = ok(&dir, &["trace", c0, "--node", &api2, "--genesis", genesis]);
    assert!(out.contains("revoked (RevokedAsPenalty)"), "{out}");
    assert!(out.contains("TRACE VERIFIED"), "{out}");
    assert_eq!(
        out.matches("✓ height").count(),
        2,
        "two events, both proven:\n{out}"
    );
    let out = ok(&dir, &["trace", c1, "--node", &api2, "--genesis", genesis]);
    assert!(
        out.contains(&format!("superseded by {}", commitments[4])),
        "{out}"
    );
    let (status, t) = get(&format!("{api1}/v1/credentials/{c0}/trace"));
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["verified"], true, "{t}");

    // … and queries: revocations and suspensions since the start, all of
    // this issuer's events, page by page.
    let revoked = events(&api0, &format!("kind=revoked,suspended&from={started}"));
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["commitment"], c0.as_str());
    assert_eq!(revoked[0]["reason"], "revoked_as_penalty");
    let all = events(
        &api0,
        &format!("issuer={issuer}&type={TYPE_DRIVER_LICENSE}"),
    );
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "anchored",
            "anchored",
            "anchored",
            "anchored",
            "revoked",
            "superseded",
            "anchored"
        ],
        "{all:?}"
    );
    let mut paged = Vec::new();
    let mut after = String::new();
    for _ in 0..10 {
        let (_, body) = get(&format!("{api0}/v1/events?issuer={issuer}&limit=3{after}"));
        paged.extend(body["events"].as_array().unwrap().clone());
        match body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages add up to the whole");
    let later = events(&api0, "from=2100-01-01T00:00:00Z");
    assert!(later.is_empty(), "{later:?}");
    for (query, code) in [
        ("kind=stolen", "invalid_kind"),
        ("from=yesterday", "invalid_time"),
        ("after=1.2", "invalid_cursor"),
        ("colour=red", "invalid_query"),
    ] {
        let (status, body) = get(&format!("{api0}/v1/events?{query}"));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }

    // The explorer's reads.
    let (_, served) = get(&format!("{api0}/v1/genesis"));
    assert_eq!(served["chain_id"], net.genesis.chain_id.as_str());
    let (_, blocks) = get(&format!("{api0}/v1/blocks?limit=3"));
    let heights: Vec<u64> = blocks["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights.len(), 3, "{blocks}");
    assert!(
        heights.windows(2).all(|w| w[0] == w[1] + 1),
        "newest first: {heights:?}"
    );
    // Without --genesis and outside a folder holding one, the node's genesis
    // is used and the verifier is told so.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = cairn(
        &elsewhere,
        &[
            "verify",
            dir.join("p0.json").to_str().unwrap(),
            "--node",
            &api0,
        ],
    );
    assert!(
        text(&out).contains("trusting the genesis"),
        "{}",
        text(&out)
    );
}
