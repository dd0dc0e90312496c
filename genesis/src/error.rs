//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can be wrong with a genesis document or a key file.
///
/// Validation collects every problem it finds (see
/// [`GenesisDocument::problems`](crate::GenesisDocument::problems)), so each
/// variant names one problem and carries what an operator needs to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// A file is larger than this kind of file may be.
    #[error("{path}: {size} bytes is more than the {limit} bytes allowed")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A JSON file does not parse into the expected structure.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// Refused to overwrite an existing file (keys and genesis files are never clobbered).
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A key file can be read by others than its owner.
    #[error(
        "{path} has mode {mode:04o}: a key file must be readable only by its owner (run `chmod 600 {path}`)"
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file holds something that is not a usable ed25519 key pair.
    #[error("{path}: malformed key file: {reason}")]
    MalformedKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The chain id is empty, too long or uses characters outside `[a-z0-9-]`.
    #[error("chain id {chain_id:?} is invalid: use 1 to 64 characters from a-z, 0-9 and '-'")]
    InvalidChainId {
        /// The offending id.
        chain_id: String,
    },
    /// A consensus parameter is outside its allowed range.
    #[error("consensus parameter {name} = {value} is outside {min}..={max}")]
    ParameterOutOfRange {
        /// The parameter's name as it appears in the JSON file.
        name: &'static str,
        /// Its value.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// The document has no validators, so no block could ever be decided.
    #[error(
        "the validator set is empty: add at least one validator (four or more to tolerate a fault)"
    )]
    EmptyValidatorSet,
    /// A validator has zero voting power.
    #[error("validator {agency_id} has zero voting power")]
    ZeroVotingPower {
        /// The validator's agency id.
        agency_id: String,
    },
    /// The validators' voting power adds up to more than the protocol allows.
    #[error("total voting power overflows: it must not exceed {max}")]
    VotingPowerOverflow {
        /// The largest total allowed.
        max: u64,
    },
    /// Two entries of the same kind share an identifier.
    #[error("duplicate {kind} {value:?}")]
    Duplicate {
        /// What is duplicated: `validator agency id`, `issuer id`, `credential type code`, …
        kind: &'static str,
        /// The repeated value.
        value: String,
    },
    /// The same public key is used twice (by one or by two roles).
    #[error("public key {key} is used more than once ({first} and {second})")]
    DuplicateKey {
        /// The key, in hex.
        key: String,
        /// Where it is first used.
        first: String,
        /// Where it is used again.
        second: String,
    },
    /// 32 bytes that are not an ed25519 public key (no curve point).
    #[error("{owner}: public key {key} is not a valid ed25519 point")]
    MalformedKey {
        /// Who the key belongs to.
        owner: String,
        /// The key, in hex.
        key: String,
    },
    /// An ed25519 public key of small order, for which forged signatures verify.
    #[error("{owner}: public key {key} is a weak (small-order) key")]
    WeakKey {
        /// Who the key belongs to.
        owner: String,
        /// The key, in hex.
        key: String,
    },
    /// A validator's network peer id is not an ed25519 peer id.
    #[error("validator {agency_id}: peer id {peer_id} is not derived from a valid ed25519 key")]
    MalformedPeerId {
        /// The validator.
        agency_id: String,
        /// The peer id.
        peer_id: String,
    },
    /// A validator's network address is not a `/ip4|ip6|dns*/…/tcp/PORT` multiaddress.
    #[error(
        "validator {agency_id}: address {address:?} is not /ip4/A/tcp/P, /ip6/A/tcp/P or /dns/NAME/tcp/P"
    )]
    InvalidAddress {
        /// The validator.
        agency_id: String,
        /// The address as written.
        address: String,
    },
    /// An agency or issuer id is not a valid Unified Social Credit Code.
    #[error(
        "{role} id {id:?} is not a valid Unified Social Credit Code (18 characters, GB 32100 check character)"
    )]
    InvalidCreditCode {
        /// `validator` or `issuer`.
        role: &'static str,
        /// The id as written.
        id: String,
    },
    /// A region is not a six-digit administrative division code.
    #[error(
        "{owner}: region {region:?} is not a six-digit administrative division code (GB/T 2260)"
    )]
    InvalidRegion {
        /// Who carries the region.
        owner: String,
        /// The region as written.
        region: String,
    },
    /// A display name is empty or longer than allowed.
    #[error("{owner}: name must be 1 to {max} bytes of text")]
    InvalidName {
        /// Who carries the name.
        owner: String,
        /// The cap.
        max: usize,
    },
    /// A credential type code is empty, too long or uses other characters than `[A-Za-z0-9._-]`.
    #[error(
        "credential type code {code:?} is invalid: use 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidTypeCode {
        /// The code as written.
        code: String,
    },
    /// A credential type declares no fields.
    #[error("credential type {code} has no fields")]
    NoFields {
        /// The type.
        code: String,
    },
    /// A field name is empty, too long or uses other characters than `[a-z0-9_]`.
    #[error(
        "credential type {code}: field name {field:?} is invalid: use 1 to 64 characters from a-z, 0-9 and '_'"
    )]
    InvalidFieldName {
        /// The type.
        code: String,
        /// The field name as written.
        field: String,
    },
    /// A list is longer than its cap.
    #[error("{owner}: {what} has {count} entries, more than the {max} allowed")]
    TooMany {
        /// Who carries the list.
        owner: String,
        /// What the list is.
        what: &'static str,
        /// How many entries it has.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// An issuer is accredited for a credential type that is not in the catalog.
    #[error("issuer {issuer} is accredited for unknown credential type {credential_type}")]
    UnknownCredentialType {
        /// The issuer.
        issuer: String,
        /// The missing type code.
        credential_type: String,
    },
    /// A credential type names an issuer that is not in the document.
    #[error("credential type {credential_type} lists unknown issuer {issuer}")]
    UnknownIssuer {
        /// The type.
        credential_type: String,
        /// The missing issuer id.
        issuer: String,
    },
    /// Issuer accreditation and the catalog disagree: one side lists the other, the other does not.
    #[error(
        "issuer {issuer} and credential type {credential_type} disagree: each must list the other (issuer.accredited_types and credential_type.issuers)"
    )]
    AccreditationMismatch {
        /// The issuer.
        issuer: String,
        /// The type.
        credential_type: String,
    },
    /// An issuer has no signing key.
    #[error("issuer {issuer} has no signing key")]
    NoSigningKey {
        /// The issuer.
        issuer: String,
    },
    /// A signing key's validity window ends before it starts.
    #[error(
        "issuer {issuer}: key {key} is valid until {valid_until}, not after it is valid from {valid_from}"
    )]
    EmptyKeyWindow {
        /// The issuer.
        issuer: String,
        /// The key, in hex.
        key: String,
        /// Start of the window (RFC 3339).
        valid_from: String,
        /// End of the window (RFC 3339).
        valid_until: String,
    },
    /// A timestamp is not RFC 3339 or is outside the range Cairn represents.
    #[error("time {value:?} is invalid: {reason}")]
    InvalidTime {
        /// The value as written.
        value: String,
        /// Why.
        reason: String,
    },
    /// The document is not valid; every problem found is listed.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<GenesisError>),
}

fn render_problems(problems: &[GenesisError]) -> String {
    let mut out = format!("the genesis document has {} problem(s):", problems.len());
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}

impl GenesisError {
    pub(crate) fn io(path: &std::path::Path, err: &std::io::Error) -> Self {
        GenesisError::Io {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }

    pub(crate) fn json(path: &std::path::Path, err: &serde_json::Error) -> Self {
        GenesisError::Json {
            path: path.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message: err.to_string(),
        }
    }
}
