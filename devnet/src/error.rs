//! The one error type of this crate.

/// What can go wrong setting up a devnet.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A devnet needs at least one validator and has regions for at most
    /// [`MAX_DEMO_VALIDATORS`](crate::MAX_DEMO_VALIDATORS).
    #[error("a devnet has 1 to {max} validators, not {requested}")]
    ValidatorCount {
        /// How many were asked for.
        requested: usize,
        /// The most the demo world has regions for.
        max: usize,
    },
    /// The demo genesis does not validate (a bug in the demo tables).
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
}
