//! The consensus write-ahead log in the node's database (the contract is
//! `cairn_consensus::wal`). Entries are appended in memory and written in
//! one batch by [`Wal::commit`], before the engine's effects leave: synced
//! if the batch holds a message this node signed, otherwise on disk with
//! the next synced write (the node's next signed message or committed
//! block), as are the resets between heights. RocksDB's log is written in
//! order, so an entry that waits for a later sync is on disk before
//! anything that followed it: a crash can lose only inputs that nothing
//! the node sent or committed depended on yet, and a validator pays three
//! or four syncs a height (its proposal, prevote, precommit and block)
//! rather than one more for every vote and proposal it receives.
//!
//! Reading it back, an entry that does not decode at the end of the log (a
//! write cut short) is dropped with everything after it; one in the middle
//! means the log is damaged, and the node stops with an error rather than
//! replay a history with a hole in it.

use cairn_consensus::{ConsensusError, Height, Wal, WalEntry};
use rocksdb::{IteratorMode, WriteBatch};

use super::{Durable, Store, WAL, encode};

/// A log record as RocksDB returns it: key and value.
type RawEntry = (Box<[u8]>, Box<[u8]>);

/// The write-ahead log.
pub struct RocksWal {
    store: Store,
    next: u64,
    pending: Vec<WalEntry>,
}

fn wal_error(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Wal(e.to_string())
}

impl RocksWal {
    /// The log in `store`.
    pub fn open(store: Store) -> Result<RocksWal, ConsensusError> {
        let cf = store.cf(WAL).map_err(wal_error)?;
        let next = match store.db().iterator_cf(cf, IteratorMode::End).next() {
            Some(Ok((key, _))) => seq_of(&key)? + 1,
            Some(Err(e)) => return Err(wal_error(e)),
            None => 0,
        };
        Ok(RocksWal {
            store,
            next,
            pending: Vec::new(),
        })
    }
}

fn seq_of(key: &[u8]) -> Result<u64, ConsensusError> {
    let array: [u8; 8] = key
        .try_into()
        .map_err(|_| wal_error("a log key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

impl Wal for RocksWal {
    fn append(&mut self, entry: &WalEntry) -> Result<(), ConsensusError> {
        self.pending.push(entry.clone());
        Ok(())
    }

    fn commit(&mut self) -> Result<(), ConsensusError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let cf = self.store.cf(WAL).map_err(wal_error)?;
        let mut batch = WriteBatch::default();
        for entry in &self.pending {
            batch.put_cf(cf, self.next.to_be_bytes(), encode(entry));
            self.next += 1;
        }
        // A message this node signed is on disk before it leaves; inputs
        // go to disk with the next synced write.
        let durable = if self
            .pending
            .iter()
            .any(|entry| matches!(entry, WalEntry::Signed(_)))
        {
            Durable::Now
        } else {
            Durable::Later
        };
        self.store.write_logged(batch, durable).map_err(wal_error)?;
        self.pending.clear();
        Ok(())
    }

    fn entries(&self) -> Result<Vec<WalEntry>, ConsensusError> {
        let cf = self.store.cf(WAL).map_err(wal_error)?;
        let raw: Vec<RawEntry> = self
            .store
            .db()
            .iterator_cf(cf, IteratorMode::Start)
            .collect::<Result<_, _>>()
            .map_err(wal_error)?;
        let mut entries = Vec::with_capacity(raw.len() + self.pending.len());
        for (i, (key, value)) in raw.iter().enumerate() {
            match borsh::from_slice::<WalEntry>(value) {
                Ok(entry) => entries.push(entry),
                Err(e) if i + 1 == raw.len() => {
                    // A damaged tail: drop it, as a write that never completed.
                    let mut batch = WriteBatch::default();
                    batch.delete_cf(cf, key);
                    self.store
                        .write_logged(batch, Durable::Now)
                        .map_err(wal_error)?;
                    let _ = e;
                }
                Err(e) => {
                    return Err(wal_error(format!(
                        "entry {} of {} is damaged ({e}); the log cannot be replayed: restore the data folder or resync",
                        seq_of(key)?,
                        raw.len()
                    )));
                }
            }
        }
        entries.extend(self.pending.iter().cloned());
        Ok(entries)
    }

    fn reset(&mut self, height: Height) -> Result<(), ConsensusError> {
        let cf = self.store.cf(WAL).map_err(wal_error)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.put_cf(
            cf,
            0u64.to_be_bytes(),
            encode(&WalEntry::StartHeight(height)),
        );
        self.store
            .write_logged(batch, Durable::Later)
            .map_err(wal_error)?;
        self.next = 1;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::{
        Input, Message, Round, Signature, SignedVote, Step, Timeout, Vote, VoteKind,
    };
    use cairn_genesis::{Hash, PublicKey};

    fn timeout(round: u32) -> WalEntry {
        WalEntry::Input(Input::Timeout(Timeout {
            height: Height(4),
            round: Round(round),
            step: Step::Propose,
        }))
    }

    fn open(dir: &std::path::Path) -> Store {
        Store::open(dir, Hash([1; 32])).unwrap()
    }

    #[test]
    fn committed_entries_survive_a_restart_and_uncommitted_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = RocksWal::open(open(dir.path())).unwrap();
        wal.reset(Height(4)).unwrap();
        wal.append(&timeout(0)).unwrap();
        wal.commit().unwrap();
        wal.append(&timeout(1)).unwrap();
        assert_eq!(
            wal.entries().unwrap().len(),
            3,
            "pending entries are visible before the crash"
        );
        drop(wal);
        let wal = RocksWal::open(open(dir.path())).unwrap();
        assert_eq!(
            wal.entries().unwrap(),
            vec![WalEntry::StartHeight(Height(4)), timeout(0)]
        );
    }

    #[test]
    fn reset_starts_the_next_height_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = RocksWal::open(open(dir.path())).unwrap();
        wal.reset(Height(4)).unwrap();
        for r in 0..5 {
            wal.append(&timeout(r)).unwrap();
        }
        wal.commit().unwrap();
        wal.reset(Height(5)).unwrap();
        wal.append(&timeout(9)).unwrap();
        wal.commit().unwrap();
        drop(wal);
        let reopened = RocksWal::open(open(dir.path())).unwrap();
        assert_eq!(
            reopened.entries().unwrap(),
            vec![WalEntry::StartHeight(Height(5)), timeout(9)]
        );
    }

    fn signed_prevote() -> WalEntry {
        WalEntry::Signed(Message::Vote(SignedVote {
            vote: Vote {
                chain: Hash([1; 32]),
                height: Height(4),
                round: Round(0),
                kind: VoteKind::Prevote,
                value: None,
                validator: PublicKey([2; 32]),
            },
            signature: Signature([3; 64]),
        }))
    }

    #[test]
    fn inputs_wait_for_the_next_sync_and_signed_messages_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut wal = RocksWal::open(store.clone()).unwrap();
        let syncs = store.log_syncs();
        wal.reset(Height(4)).unwrap();
        wal.append(&timeout(0)).unwrap();
        wal.commit().unwrap();
        wal.reset(Height(5)).unwrap();
        wal.append(&timeout(1)).unwrap();
        wal.commit().unwrap();
        assert_eq!(store.log_syncs(), syncs, "inputs and resets wait");
        wal.append(&timeout(2)).unwrap();
        wal.append(&signed_prevote()).unwrap();
        wal.commit().unwrap();
        assert_eq!(store.log_syncs(), syncs + 1, "a signed message is synced");

        // Deferred syncs change neither.
        store.defer_syncs();
        wal.append(&timeout(3)).unwrap();
        wal.commit().unwrap();
        assert_eq!(store.log_syncs(), syncs + 1, "an input still waits");
        wal.append(&signed_prevote()).unwrap();
        wal.commit().unwrap();
        assert_eq!(store.log_syncs(), syncs + 2, "signed: synced at once");
        store.sync_deferred().unwrap();
        assert_eq!(store.log_syncs(), syncs + 3, "the deferral's own sync");
        wal.append(&timeout(4)).unwrap();
        wal.commit().unwrap();
        assert_eq!(store.log_syncs(), syncs + 3, "inputs wait after it too");

        drop(wal);
        drop(store);
        let reopened = RocksWal::open(open(dir.path())).unwrap();
        assert_eq!(
            reopened.entries().unwrap(),
            vec![
                WalEntry::StartHeight(Height(5)),
                timeout(1),
                timeout(2),
                signed_prevote(),
                timeout(3),
                signed_prevote(),
                timeout(4)
            ]
        );
    }

    #[test]
    fn a_damaged_tail_is_dropped_and_a_damaged_middle_stops_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut wal = RocksWal::open(store.clone()).unwrap();
        wal.reset(Height(4)).unwrap();
        wal.append(&timeout(0)).unwrap();
        wal.append(&timeout(1)).unwrap();
        wal.commit().unwrap();
        let cf = store.cf(WAL).unwrap();
        store
            .db()
            .put_cf(cf, 2u64.to_be_bytes(), [0xff, 0xff])
            .unwrap();
        assert_eq!(
            wal.entries().unwrap(),
            vec![WalEntry::StartHeight(Height(4)), timeout(0)]
        );
        assert_eq!(
            wal.entries().unwrap().len(),
            2,
            "the damaged tail is gone for good"
        );

        store
            .db()
            .put_cf(cf, 1u64.to_be_bytes(), [0xff, 0xff])
            .unwrap();
        store
            .db()
            .put_cf(cf, 2u64.to_be_bytes(), encode(&timeout(1)))
            .unwrap();
        let err = wal.entries().unwrap_err();
        assert!(err.to_string().contains("entry 1 of 3 is damaged"), "{err}");
    }
}
