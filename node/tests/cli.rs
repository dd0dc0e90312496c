//! The operator's command line, end to end: real `cairn` processes on real files.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_genesis::{GenesisDocument, Hash, credit_code};

fn cairn(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cairn runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `cairn` and insists it succeeds; returns its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let output = cairn(dir, args);
    assert!(
        output.status.success(),
        "cairn {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `cairn` and insists it fails; returns stdout and stderr together.
fn fails(dir: &Path, args: &[&str]) -> String {
    let output = cairn(dir, args);
    assert!(
        !output.status.success(),
        "cairn {args:?} should fail\nstdout:\n{}",
        stdout(&output)
    );
    format!("{}{}", stdout(&output), stderr(&output))
}

fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

fn credit(body: &str) -> String {
    format!("{body}{}", credit_code::check_character(body).unwrap())
}

fn vector(name: &str) -> PathBuf {
    manifest_dir().join("../genesis/tests/vectors").join(name)
}

#[test]
fn help_lists_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(dir.path(), &["--help"]);
    assert!(help.contains("keys") && help.contains("genesis"), "{help}");
    let help = ok(dir.path(), &["genesis", "--help"]);
    for command in [
        "init",
        "add-validator",
        "add-type",
        "add-issuer",
        "check",
        "hash",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn keys_generate_writes_an_owner_only_file_and_never_prints_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["keys", "generate", "--out", "node.key"]);
    let path = dir.path().join("node.key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let secret = file["secret_key"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(!out.contains(secret), "the secret was printed:\n{out}");

    let public_hex = field(&out, "public key");
    assert_eq!(public_hex, file["public_key"].as_str().unwrap());
    // The peer id is the one libp2p itself derives from the key.
    let public =
        libp2p_identity::ed25519::PublicKey::try_from_bytes(&hex::decode(public_hex).unwrap())
            .unwrap();
    let expected = libp2p_identity::PublicKey::from(public)
        .to_peer_id()
        .to_string();
    assert_eq!(field(&out, "peer id"), expected);

    // `show` prints the same identity, again without the secret.
    let shown = ok(dir.path(), &["keys", "show", "node.key"]);
    assert_eq!(field(&shown, "peer id"), expected);
    assert!(!shown.contains(secret));

    // A second generate never replaces the key.
    let err = fails(dir.path(), &["keys", "generate", "--out", "node.key"]);
    assert!(err.contains("already exists"), "{err}");
    assert!(std::fs::read_to_string(&path).unwrap().contains(secret));
}

#[test]
fn keys_with_wide_permissions_or_bad_contents_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["keys", "generate", "--out", "node.key"]);
    let path = dir.path().join("node.key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(dir.path(), &["keys", "show", "node.key"]);
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");

    std::fs::write(dir.path().join("bad.key"), "{\"algorithm\":\"ed25519\"}").unwrap();
    std::fs::set_permissions(
        dir.path().join("bad.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let err = fails(dir.path(), &["keys", "show", "bad.key"]);
    assert!(err.contains("malformed key file"), "{err}");
}

/// Four agencies build a genesis step by step, as operators would.
#[test]
fn four_validator_genesis_built_with_the_cli_checks_and_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "genesis",
            "init",
            "genesis.json",
            "--chain-id",
            "cairn-cli-test",
            "--genesis-time",
            "2026-11-25T08:00:00Z",
        ],
    );
    ok(
        d,
        &[
            "genesis",
            "add-type",
            "genesis.json",
            "--code",
            "driver-license",
            "--name",
            "机动车驾驶证",
            "--fields",
            "holder_name,id_number,class",
        ],
    );
    ok(
        d,
        &[
            "genesis",
            "add-type",
            "genesis.json",
            "--code",
            "business-license",
            "--name",
            "营业执照",
            "--fields",
            "entity_name,credit_code",
        ],
    );

    let provinces = [
        ("310000", "上海"),
        ("320000", "江苏"),
        ("330000", "浙江"),
        ("340000", "安徽"),
    ];
    let mut peer_ids = Vec::new();
    for (i, (region, name)) in provinces.iter().enumerate() {
        let key = format!("v{i}.key");
        let out = ok(d, &["keys", "generate", "--out", &key]);
        peer_ids.push(field(&out, "peer id").to_owned());
        let agency = credit(&format!("11{region}MB000000{i}"));
        let address = format!("/ip4/127.0.0.1/tcp/{}", 27000 + i);
        ok(
            d,
            &[
                "genesis",
                "add-validator",
                "genesis.json",
                "--agency-id",
                &agency,
                "--name",
                name,
                "--region",
                region,
                "--key",
                &key,
                "--power",
                "10",
                "--address",
                &address,
            ],
        );
    }
    // An issuer whose key arrives as hex from another agency.
    let issuer_out = ok(d, &["keys", "generate", "--out", "issuer.key"]);
    let issuer_key = field(&issuer_out, "public key").to_owned();
    let issuer = credit("11310000MB0000009");
    ok(
        d,
        &[
            "genesis",
            "add-issuer",
            "genesis.json",
            "--id",
            &issuer,
            "--name",
            "上海市公安局交通警察总队",
            "--region",
            "310000",
            "--public-key",
            &issuer_key,
            "--types",
            "driver-license",
        ],
    );

    let report = ok(d, &["genesis", "check", "genesis.json"]);
    assert!(report.contains("is valid"), "{report}");
    assert!(report.contains("tolerates 1 faulty"), "{report}");

    let doc = GenesisDocument::load_valid(&d.join("genesis.json")).unwrap();
    assert_eq!(doc.validators.len(), 4);
    let listed: Vec<String> = doc
        .validators
        .iter()
        .map(|v| v.peer_id.to_string())
        .collect();
    assert_eq!(listed, peer_ids);
    assert_eq!(
        doc.credential_type("driver-license").unwrap().issuers,
        vec![issuer.clone()]
    );
    assert_eq!(
        doc.issuer(&issuer).unwrap().accredited_types,
        vec!["driver-license".to_owned()]
    );

    let printed = ok(d, &["genesis", "hash", "genesis.json"]);
    assert_eq!(printed.trim(), doc.hash().to_string());
    assert_eq!(field(&report, "genesis hash"), doc.hash().to_string());
}

#[test]
fn hash_prints_the_vectors_hash_for_the_vectors_file() {
    let dir = tempfile::tempdir().unwrap();
    let expected = Hash::from_hex(
        std::fs::read_to_string(vector("genesis.hash"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let file = vector("genesis.json");
    let printed = ok(dir.path(), &["genesis", "hash", file.to_str().unwrap()]);
    assert_eq!(printed.trim(), expected.to_string());
}

#[test]
fn a_refused_edit_leaves_the_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(vector("genesis.json"), d.join("genesis.json")).unwrap();
    let before = std::fs::read(d.join("genesis.json")).unwrap();

    // Accredited for a type the catalog lacks.
    let key = ok(d, &["keys", "generate", "--out", "k.key"]);
    let err = fails(
        d,
        &[
            "genesis",
            "add-issuer",
            "genesis.json",
            "--id",
            &credit("11310000MB0000077"),
            "--name",
            "x",
            "--region",
            "310000",
            "--public-key",
            field(&key, "public key"),
            "--types",
            "residence-permit",
        ],
    );
    assert!(
        err.contains("unknown credential type residence-permit"),
        "{err}"
    );
    assert!(err.contains("left unchanged"), "{err}");

    // A validator whose key another validator already uses.
    let doc = GenesisDocument::load(&d.join("genesis.json")).unwrap();
    let taken = doc.validators[0].public_key.to_string();
    let err = fails(
        d,
        &[
            "genesis",
            "add-validator",
            "genesis.json",
            "--agency-id",
            &credit("11350000MB0000005"),
            "--name",
            "福建",
            "--region",
            "350000",
            "--public-key",
            &taken,
            "--address",
            "/ip4/127.0.0.1/tcp/27999",
        ],
    );
    assert!(err.contains("used more than once"), "{err}");

    // A credit code with a wrong check character, and zero power.
    let err = fails(
        d,
        &[
            "genesis",
            "add-validator",
            "genesis.json",
            "--agency-id",
            "11350000MB00000050",
            "--name",
            "福建",
            "--region",
            "350000",
            "--key",
            "k.key",
            "--power",
            "0",
            "--address",
            "/ip4/127.0.0.1/tcp/27999",
        ],
    );
    assert!(
        err.contains("Unified Social Credit Code") && err.contains("zero voting power"),
        "{err}"
    );

    assert_eq!(std::fs::read(d.join("genesis.json")).unwrap(), before);

    // init never replaces an existing genesis.
    let err = fails(
        d,
        &["genesis", "init", "genesis.json", "--chain-id", "other"],
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(d.join("genesis.json")).unwrap(), before);
}

#[test]
fn check_lists_every_problem_and_hash_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut doc = GenesisDocument::load(&vector("genesis.json")).unwrap();
    doc.validators[1].voting_power = 0;
    doc.issuers[0].accredited_types.push("boat-license".into());
    doc.chain_id = "Bad Chain".into();
    doc.save(&d.join("genesis.json")).unwrap();

    let out = fails(d, &["genesis", "check", "genesis.json"]);
    assert!(out.contains("zero voting power"), "{out}");
    assert!(
        out.contains("unknown credential type boat-license"),
        "{out}"
    );
    assert!(out.contains("chain id \"Bad Chain\" is invalid"), "{out}");
    assert!(out.contains("3 problem(s)"), "{out}");

    let err = fails(d, &["genesis", "hash", "genesis.json"]);
    assert!(err.contains("3 problem(s)"), "{err}");

    std::fs::write(d.join("broken.json"), "{ \"chain_id\": ").unwrap();
    let out = fails(d, &["genesis", "check", "broken.json"]);
    assert!(out.contains("broken.json"), "{out}");
}

#[test]
fn node_init_sets_up_a_home_and_refuses_what_would_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = vector("genesis.json");
    let genesis = genesis.to_str().unwrap();
    // The vector's first validator key has seed [1; 32].
    cairn_genesis::KeyPair::from_seed([1; 32])
        .write_new(&d.join("v1.key"))
        .unwrap();
    let out = ok(
        d,
        &[
            "node",
            "init",
            "--home",
            "home",
            "--genesis",
            genesis,
            "--key",
            "v1.key",
        ],
    );
    assert!(out.contains("validator: 上海市公安局交通警察总队"), "{out}");
    let home = d.join("home");
    for file in ["config.toml", "genesis.json", "node.key", "data"] {
        assert!(home.join(file).exists(), "{file} missing");
    }
    assert_eq!(
        std::fs::metadata(home.join("node.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let config = cairn_node::config::Config::load(&home.join("config.toml")).unwrap();
    assert_eq!(config, cairn_node::config::Config::default());

    let err = fails(
        d,
        &[
            "node",
            "init",
            "--home",
            "home",
            "--genesis",
            genesis,
            "--key",
            "v1.key",
        ],
    );
    assert!(err.contains("already a node home"), "{err}");

    // A key outside the validator set needs --observer.
    let err = fails(
        d,
        &["node", "init", "--home", "other", "--genesis", genesis],
    );
    assert!(
        err.contains("is not a validator") && err.contains("--observer"),
        "{err}"
    );
    assert!(!d.join("other").exists(), "a refused init writes nothing");
    let out = ok(
        d,
        &[
            "node",
            "init",
            "--home",
            "observer",
            "--genesis",
            genesis,
            "--observer",
        ],
    );
    assert!(out.contains("role       observer"), "{out}");
    let config = cairn_node::config::Config::load(&d.join("observer/config.toml")).unwrap();
    assert!(config.node.observer);

    // An invalid genesis is refused before anything is written.
    std::fs::write(d.join("bad.json"), "{}").unwrap();
    let err = fails(
        d,
        &[
            "node",
            "init",
            "--home",
            "bad",
            "--genesis",
            "bad.json",
            "--observer",
        ],
    );
    assert!(err.contains("bad.json"), "{err}");
    assert!(!d.join("bad").exists());
}

#[test]
fn node_run_refuses_a_home_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = vector("genesis.json");
    let genesis = genesis.to_str().unwrap();

    // No home at all.
    let err = fails(d, &["node", "run", "--home", "nowhere"]);
    assert!(
        err.contains("not a node home") && err.contains("node init"),
        "{err}"
    );

    // An observer home whose config no longer says observer: its key votes nowhere.
    ok(
        d,
        &[
            "node",
            "init",
            "--home",
            "obs",
            "--genesis",
            genesis,
            "--observer",
        ],
    );
    let config = d.join("obs/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("observer = true", "observer = false")).unwrap();
    let err = fails(d, &["node", "run", "--home", "obs"]);
    assert!(
        err.contains("is not a validator") && err.contains("observer = true"),
        "{err}"
    );

    // A missing genesis.
    std::fs::write(&config, text).unwrap();
    std::fs::rename(d.join("obs/genesis.json"), d.join("saved.json")).unwrap();
    let err = fails(d, &["node", "run", "--home", "obs"]);
    assert!(
        err.contains("genesis file") && err.contains("missing"),
        "{err}"
    );

    // Another chain's genesis over this data folder.
    let mut other = GenesisDocument::load(&d.join("saved.json")).unwrap();
    other.chain_id = "another-chain".into();
    std::fs::write(d.join("obs/genesis.json"), other.to_json()).unwrap();
    let err = fails(d, &["node", "run", "--home", "obs"]);
    assert!(err.contains("belongs to chain"), "{err}");

    // A config with a typo.
    std::fs::rename(d.join("saved.json"), d.join("obs/genesis.json")).unwrap();
    std::fs::write(&config, "[api]\nlisten_address = \"127.0.0.1:1\"\n").unwrap();
    let err = fails(d, &["node", "run", "--home", "obs"]);
    assert!(err.contains("listen_address"), "{err}");
}

/// This package's folder, from the test's environment (cargo and nextest
/// set it): a test binary reused by another checkout of the same sources
/// reads that checkout's files, not the ones it was built from.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
