//! The data folder: one atomic commit per block, the state tree in RocksDB,
//! a node that restarts from it, and admission against its committed state.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

use cairn_anchoring::{AuthenticatedState, Block, BlockHeader, StateKey, transactions_root};
use cairn_consensus::{
    CommitCertificate, Engine, GuardedSigner, Height, Input, Round, Step, Timeout, Timeouts,
    ValidatorInfo, ValidatorSet,
};
use cairn_genesis::{ConsensusParams, Hash, PublicKey, Timestamp};
use cairn_node::NodeError;
use cairn_node::sign_state::SignStateFile;
use cairn_node::store::{RocksWal, Store};
use ed25519_dalek::SigningKey;

const CHAIN: Hash = Hash([7; 32]);

fn header(height: u64, state_root: Hash) -> BlockHeader {
    BlockHeader {
        chain: CHAIN,
        height,
        time: Timestamp(1_000 * height),
        previous: Hash([0; 32]),
        transactions_root: transactions_root(&[]),
        transaction_count: 0,
        state_root,
        validator_set: Hash([0; 32]),
        proposer: PublicKey([0; 32]),
    }
}

fn certificate(height: u64) -> CommitCertificate {
    CommitCertificate {
        chain: CHAIN,
        height: Height(height),
        round: Round(0),
        value: cairn_consensus::ValueId(Hash([height as u8; 32])),
        signatures: vec![],
    }
}

#[test]
fn another_chains_data_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), CHAIN).unwrap());
    match Store::open(dir.path(), Hash([8; 32])) {
        Err(NodeError::WrongChain { expected, found }) => {
            assert_eq!((expected, found), (Hash([8; 32]), CHAIN))
        }
        Err(other) => panic!("expected WrongChain, got {other}"),
        Ok(_) => panic!("expected WrongChain"),
    }
}

#[test]
fn blocks_and_state_commit_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), CHAIN).unwrap();
    let mut state = AuthenticatedState::new(store.tree(), None);
    let genesis: BTreeMap<StateKey, Vec<u8>> =
        [(StateKey::Issuer("x".into()), vec![1, 2, 3])].into();
    state.commit(0, &genesis).unwrap();
    let mut roots = vec![];
    for height in 1..=3u64 {
        let changes: BTreeMap<StateKey, Vec<u8>> = [(
            StateKey::Issuer(format!("issuer-{height}")),
            vec![height as u8],
        )]
        .into();
        let (root, nodes) = state.prepare(height, &changes).unwrap();
        // Nothing is visible before the commit.
        assert_eq!(store.committed_height().unwrap(), height - 1);
        let block = Block {
            header: header(height, root),
            transactions: vec![],
        };
        store
            .commit_block(&block, &certificate(height), nodes)
            .unwrap();
        state.mark_written(height);
        roots.push(root);
    }
    // A block out of order is refused.
    let (root, nodes) = state.prepare(4, &BTreeMap::new()).unwrap();
    assert!(matches!(
        store.commit_block(
            &Block {
                header: header(9, root),
                transactions: vec![]
            },
            &certificate(9),
            nodes.clone()
        ),
        Err(NodeError::OutOfOrder {
            height: 9,
            committed: 3
        })
    ));
    // So is the next block with a state version of another height.
    let other_version = cairn_anchoring::TreeUpdate {
        version: 7,
        ..nodes.clone()
    };
    assert!(matches!(
        store.commit_block(
            &Block {
                header: header(4, root),
                transactions: vec![]
            },
            &certificate(4),
            other_version
        ),
        Err(NodeError::Anchoring(
            cairn_anchoring::AnchoringError::StateVersion {
                version: 7,
                next: 4
            }
        ))
    ));
    assert_eq!(store.committed_height().unwrap(), 3);
    drop(state);
    drop(store);

    let store = Store::open(dir.path(), CHAIN).unwrap();
    assert_eq!(store.committed_height().unwrap(), 3);
    assert_eq!(store.block(2).unwrap().unwrap().header.state_root, roots[1]);
    assert_eq!(store.certificate(3).unwrap().unwrap(), certificate(3));
    let state = AuthenticatedState::new(store.tree(), Some(3));
    for height in 1..=3u64 {
        assert_eq!(state.root(height).unwrap(), roots[height as usize - 1]);
        let key = StateKey::Issuer(format!("issuer-{height}"));
        let (value, proof) = state.prove(&key, 3).unwrap();
        proof.verify(roots[2], &key, value.as_deref()).unwrap();
        assert_eq!(value, Some(vec![height as u8]));
    }
    let (absent, proof) = state
        .prove(&StateKey::Issuer("issuer-3".into()), 2)
        .unwrap();
    assert!(absent.is_none());
    proof
        .verify(roots[1], &StateKey::Issuer("issuer-3".into()), None)
        .unwrap();
}

#[test]
fn a_restarted_engine_replays_its_log_from_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<SigningKey> = (0..4)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let set = ValidatorSet::new(
        keys.iter()
            .map(|k| ValidatorInfo {
                public_key: k.verifying_key().into(),
                voting_power: 10,
            })
            .collect(),
    )
    .unwrap();
    let timeouts = Timeouts::from_params(&ConsensusParams::default());
    let sign_path = dir.path().join("sign_state");
    let status = {
        let store = Store::open(&dir.path().join("data"), CHAIN).unwrap();
        let signer = GuardedSigner::new(keys[0].clone(), SignStateFile::new(&sign_path)).unwrap();
        let mut engine = Engine::new(
            CHAIN,
            timeouts,
            set.clone(),
            Some(signer),
            RocksWal::open(store).unwrap(),
        );
        engine.start_height(Height(1), set.clone()).unwrap();
        engine
            .handle(Input::Timeout(Timeout {
                height: Height(1),
                round: Round(0),
                step: Step::Propose,
            }))
            .unwrap();
        engine
            .handle(Input::Timeout(Timeout {
                height: Height(1),
                round: Round(0),
                step: Step::Precommit,
            }))
            .unwrap();
        engine.status()
    };
    assert_eq!((status.round, status.step), (Round(1), Step::Propose));
    let store = Store::open(&dir.path().join("data"), CHAIN).unwrap();
    let signer = GuardedSigner::new(keys[0].clone(), SignStateFile::new(sign_path)).unwrap();
    let (engine, effects) = Engine::recover(
        CHAIN,
        timeouts,
        set,
        Height(1),
        Some(signer),
        RocksWal::open(store).unwrap(),
    )
    .unwrap();
    assert_eq!(engine.status(), status);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, cairn_consensus::Effect::SignRefused(_))),
        "{effects:?}"
    );
}

/// A genesis of four demo validators, for a `Chain` over a store.
fn demo_genesis() -> cairn_genesis::GenesisDocument {
    demo_genesis_with(cairn_genesis::KeyPair::generate().public_key())
}

/// The same, with `police` as the first police agency's issuer key.
fn demo_genesis_with(police: PublicKey) -> cairn_genesis::GenesisDocument {
    let seats: Vec<cairn_devnet::DemoSeat> = cairn_devnet::demo_agencies(4)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, agency)| cairn_devnet::DemoSeat {
            agency,
            validator_key: cairn_genesis::KeyPair::generate().public_key(),
            police_issuer_key: if i == 0 {
                police
            } else {
                cairn_genesis::KeyPair::generate().public_key()
            },
            market_issuer_key: cairn_genesis::KeyPair::generate().public_key(),
            p2p_port: 20_000 + i as u16,
        })
        .collect();
    cairn_devnet::demo_genesis("cairn-store-test", Timestamp(1_000), &seats).unwrap()
}

/// A data folder whose state tree is not the one its blocks name (another
/// layout's, or damaged) is refused when the chain opens, by name; one
/// whose tree matches gets past that check, also once pruning has deleted
/// the genesis version.
#[test]
fn a_state_tree_other_than_the_blocks_is_refused() {
    let genesis = demo_genesis();
    for (honest, keep) in [(false, 0), (true, 0), (true, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), genesis.hash())
            .unwrap()
            .keep_state_versions(keep);
        drop(cairn_node::chain::Chain::open(store.clone(), genesis.clone()).unwrap());
        let state = AuthenticatedState::new(store.tree(), Some(0));
        let (root, nodes) = state.prepare(1, &BTreeMap::new()).unwrap();
        let mut block_header = header(1, if honest { root } else { Hash([9; 32]) });
        block_header.chain = genesis.hash();
        let block = Block {
            header: block_header,
            transactions: vec![],
        };
        store.commit_block(&block, &certificate(1), nodes).unwrap();
        assert_eq!(store.oldest_state_version(), keep);
        assert_eq!(state.root(0).is_ok(), keep == 0);
        let err = match cairn_node::chain::Chain::open(store.clone(), genesis.clone()) {
            Err(e) => e,
            Ok(_) => panic!("a certificate without signatures was accepted"),
        };
        match (honest, err) {
            (false, NodeError::Corrupt { what, reason }) => {
                assert_eq!(what, "state tree");
                assert!(reason.contains("the block's header says"), "{reason}");
            }
            // Past the tree: the next check refuses the unsigned certificate.
            (true, NodeError::Corrupt { what, .. }) => assert_eq!(what, "commit certificate"),
            (_, other) => panic!("unexpected refusal: {other}"),
        }
    }
}

/// Admission over a chain on a store: a batch larger than one slice of
/// ledger checks gets one verdict per transaction, in order, each what its
/// own checks say (a bad signature, an unknown type, a copy pending
/// already), and the pool holds exactly the others.
#[test]
fn a_large_batch_gets_one_verdict_per_transaction_in_order() {
    use cairn_anchoring::{Action, AnchorItem, AnchoringError, Commitment, Transaction};
    use cairn_node::mempool::{Admission, Mempool, admit_batch};
    use std::sync::{Mutex, RwLock};

    let police = cairn_genesis::KeyPair::generate();
    let genesis = demo_genesis_with(police.public_key());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis.hash()).unwrap();
    let chain = RwLock::new(cairn_node::chain::Chain::open(store, genesis.clone()).unwrap());
    let pool = Mutex::new(Mempool::new(100_000, 1 << 30, 100_000));
    let anchor = |n: u32, credential_type: &str| {
        let mut commitment = [0u8; 32];
        commitment[..4].copy_from_slice(&n.to_be_bytes());
        Transaction {
            chain: genesis.hash(),
            issuer: genesis.issuers[0].id.clone(),
            key: police.public_key(),
            nonce: u64::from(n),
            expires_at: 10,
            action: Action::Anchor(vec![AnchorItem {
                commitment: Commitment(Hash(commitment)),
                credential_type: credential_type.into(),
                valid_until: None,
            }]),
        }
        .sign(police.signing_key())
    };
    const N: u32 = 2_500;
    // One unknown type in each slice of ledger checks (they are about
    // 2 000 transactions long here), so a verdict given to the wrong
    // transaction is seen in either.
    let (unknown_type, unknown_type_2, bad_signature, copy) = (1_000, 2_200, 2_300, 2_400);
    let mut txs: Vec<_> = (0..N)
        .map(|n| anchor(n, cairn_devnet::TYPE_DRIVER_LICENSE))
        .collect();
    txs[unknown_type] = anchor(unknown_type as u32, "no-such-type");
    txs[unknown_type_2] = anchor(unknown_type_2 as u32, "no-such-type");
    txs[bad_signature].signature[0] ^= 1;
    txs[copy] = txs[5].clone();

    let verdicts = admit_batch(&chain, &pool, txs.clone(), Timestamp::now());
    assert_eq!(verdicts.len(), txs.len());
    for (i, verdict) in verdicts.iter().enumerate() {
        match (i, verdict) {
            (i, Err(NodeError::Anchoring(AnchoringError::UnknownType { .. })))
                if i == unknown_type || i == unknown_type_2 => {}
            (i, Err(NodeError::Anchoring(AnchoringError::BadSignature { .. })))
                if i == bad_signature => {}
            (i, Ok((tx, id, Admission::AlreadyPending))) if i == copy => {
                assert_eq!(*id, txs[5].id());
                assert_eq!(tx, &txs[5]);
            }
            (i, Ok((tx, id, Admission::Added)))
                if ![unknown_type, unknown_type_2, bad_signature, copy].contains(&i) =>
            {
                assert_eq!(*id, txs[i].id());
                assert_eq!(tx, &txs[i]);
            }
            (i, other) => panic!("transaction {i}: {other:?}"),
        }
    }
    let pool = pool.lock().unwrap();
    assert_eq!(pool.len(), N as usize - 4);
    assert!(!pool.contains(&txs[unknown_type].id()));
    assert!(!pool.contains(&txs[unknown_type_2].id()));
    assert!(!pool.contains(&txs[bad_signature].id()));
}
