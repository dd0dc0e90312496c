//! The write-ahead log contract.
//!
//! # What is logged
//!
//! Every input that can change the state of the current height is appended
//! before it is processed: proposals (with the application's validity
//! verdict), votes, timeouts that fire while their (height, round, step)
//! still matches, values the application supplies for this node's
//! proposals, and commit certificates received by sync. So is every message
//! the node signs ([`WalEntry::Signed`]). Each height's log starts with
//! [`WalEntry::StartHeight`]. Duplicates and inputs that change nothing are
//! not logged.
//!
//! # When it must be durable
//!
//! [`Wal::commit`] is called once at the end of every
//! [`Engine::handle`](crate::Engine::handle), before its effects are
//! returned: the driver may send messages only after that. Entries that
//! hold a message this node signed must be durable when it returns.
//! Entries of inputs alone may reach the disk later, if the log is written
//! in order with what the node does next (the messages it signs, its
//! committed blocks), so that a crash keeps a prefix of all of them: the
//! node then restarts as if it had crashed earlier, having sent and
//! committed nothing that depended on the lost part. A log that loses
//! unsynced entries in a crash is therefore safe, and the signer's own
//! durable record ([`crate::signer`]) guards against double signing even
//! if the log is lost altogether.
//!
//! # Replay
//!
//! [`Engine::recover`](crate::Engine::recover) starts the height named by
//! the log's first entry (if it is the height the node is at) and feeds the
//! logged inputs again, in order. The state machine is deterministic, so it
//! reaches the same state and wants to send the very messages it sent
//! before: those come from the logged [`WalEntry::Signed`] records, not from
//! the signer. If the log lost its tail (a crash before [`Wal::commit`]), a
//! message may have to be signed again: ed25519 is deterministic, so the
//! signer gives the same signature for the same bytes at its last position,
//! and refuses anything else.
//!
//! When the node moves to a new height, [`Wal::reset`] drops the previous
//! height's entries; the node calls it only after the decided block, its
//! state and the new height are committed, durably or ahead of the reset
//! in the same ordered log.

use std::sync::{Arc, Mutex};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::ConsensusError;
use crate::engine::Input;
use crate::types::{Height, Message};

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum WalEntry {
    /// The engine started this height; entries after it belong to it.
    StartHeight(Height),
    /// An input processed at the current height.
    Input(Input),
    /// A message this node signed at the current height. A replay sends
    /// these again instead of asking the signer, whose record only holds the
    /// latest position and so refuses to re-sign earlier ones.
    Signed(Message),
}

/// Storage for the write-ahead log.
pub trait Wal {
    /// Appends an entry (it may be buffered until [`Wal::commit`]).
    fn append(&mut self, entry: &WalEntry) -> Result<(), ConsensusError>;
    /// Writes every appended entry: durably if one is a signed message,
    /// otherwise durably or in order ahead of the node's next writes (see
    /// the module's documentation).
    fn commit(&mut self) -> Result<(), ConsensusError>;
    /// The entries, oldest first.
    fn entries(&self) -> Result<Vec<WalEntry>, ConsensusError>;
    /// Drops every entry and starts `height` with a `StartHeight`, written
    /// as [`Wal::commit`] writes entries of inputs.
    fn reset(&mut self, height: Height) -> Result<(), ConsensusError>;
}

/// A log in memory, shared by its clones so that it outlives a simulated
/// crash. Entries appended but not committed are lost by [`MemoryWal::crash`],
/// as unsynced writes would be.
#[derive(Clone, Default, Debug)]
pub struct MemoryWal(Arc<Mutex<MemoryWalInner>>);

#[derive(Default, Debug)]
struct MemoryWalInner {
    durable: Vec<WalEntry>,
    pending: Vec<WalEntry>,
}

impl MemoryWal {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryWalInner>, ConsensusError> {
        self.0
            .lock()
            .map_err(|e| ConsensusError::Wal(e.to_string()))
    }

    /// Forgets what was appended but not committed, as a crash does.
    pub fn crash(&self) {
        if let Ok(mut inner) = self.lock() {
            inner.pending.clear();
        }
    }

    /// Number of durable entries.
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |inner| inner.durable.len())
    }

    /// Whether there is no durable entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Wal for MemoryWal {
    fn append(&mut self, entry: &WalEntry) -> Result<(), ConsensusError> {
        self.lock()?.pending.push(entry.clone());
        Ok(())
    }

    fn commit(&mut self) -> Result<(), ConsensusError> {
        let mut inner = self.lock()?;
        let pending = std::mem::take(&mut inner.pending);
        inner.durable.extend(pending);
        Ok(())
    }

    fn entries(&self) -> Result<Vec<WalEntry>, ConsensusError> {
        let inner = self.lock()?;
        Ok(inner
            .durable
            .iter()
            .chain(&inner.pending)
            .cloned()
            .collect())
    }

    fn reset(&mut self, height: Height) -> Result<(), ConsensusError> {
        let mut inner = self.lock()?;
        inner.pending.clear();
        inner.durable = vec![WalEntry::StartHeight(height)];
        Ok(())
    }
}
