//! The one error type of this crate.

use std::path::{Path, PathBuf};

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
    /// The demo genesis does not validate (a bug in the demo tables), or a key file failed.
    #[error(transparent)]
    Genesis(#[from] cairn_genesis::GenesisError),
    /// A credential or transaction could not be built.
    #[error(transparent)]
    Anchoring(#[from] cairn_anchoring::AnchoringError),
    /// A file or process operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file (or what was run).
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// A devnet file does not parse.
    #[error("{path} is damaged: {reason}; remove the devnet folder to start afresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A command the devnet ran failed.
    #[error("`{command}` failed:\n{output}")]
    Command {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A node's API answered with an error or not at all.
    #[error("{url}: {message}")]
    Http {
        /// The request.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// No `cairn devnet up` runs on this folder.
    #[error("no devnet is running in {dir} (start it with `cairn devnet up --dir {dir}`)")]
    NotRunning {
        /// The devnet folder.
        dir: PathBuf,
    },
    /// A control command that does not parse or cannot be done.
    #[error("{0}")]
    BadCommand(String),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
}

impl DevnetError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> DevnetError {
        DevnetError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
