//! The devnet's demo world is a valid chain for the genesis crate, at every size.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use cairn_devnet::{
    DemoSeat, TYPE_BUSINESS_LICENSE, TYPE_DRIVER_LICENSE, demo_agencies, demo_genesis,
};
use cairn_genesis::{GenesisDocument, KeyPair, Timestamp};

fn seats(count: usize) -> Vec<DemoSeat> {
    demo_agencies(count)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, agency)| {
            let key = |role: u8| {
                let mut seed = [0u8; 32];
                seed[0] = i as u8 + 1;
                seed[1] = role;
                KeyPair::from_seed(seed).public_key()
            };
            DemoSeat {
                agency,
                validator_key: key(0),
                police_issuer_key: key(1),
                market_issuer_key: key(2),
                p2p_port: 27_000 + i as u16,
            }
        })
        .collect()
}

#[test]
fn demo_genesis_is_valid_and_round_trips_at_every_size() {
    let time = Timestamp::parse_rfc3339("2026-11-25T08:00:00Z").unwrap();
    for (count, faults) in [(1, 0), (4, 1), (7, 2), (31, 10)] {
        let doc = demo_genesis("cairn-devnet", time, &seats(count)).unwrap();
        assert_eq!(doc.validators.len(), count);
        assert_eq!(doc.issuers.len(), 2 * count);
        assert_eq!(doc.tolerated_faults(), faults);
        assert_eq!(
            doc.credential_type(TYPE_DRIVER_LICENSE)
                .unwrap()
                .issuers
                .len(),
            count
        );
        assert_eq!(
            doc.credential_type(TYPE_BUSINESS_LICENSE)
                .unwrap()
                .issuers
                .len(),
            count
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.json");
        doc.save_new(&path).unwrap();
        let loaded = GenesisDocument::load_valid(&path).unwrap();
        assert_eq!(loaded.hash(), doc.hash());
    }
}

#[test]
fn a_key_reused_across_seats_is_refused() {
    let time = Timestamp(0);
    let mut seats = seats(4);
    seats[3].market_issuer_key = seats[0].validator_key;
    let err = demo_genesis("cairn-devnet", time, &seats).unwrap_err();
    assert!(err.to_string().contains("used more than once"), "{err}");
}
