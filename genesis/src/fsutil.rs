//! Small file helpers: durable writes and capped reads. [`write_atomic`]
//! is shared with the node (its sign state file).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::GenesisError;

/// Reads a whole text file, refusing one larger than `limit` bytes before reading it.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<String, GenesisError> {
    let file = File::open(path).map_err(|e| GenesisError::io(path, &e))?;
    let size = file
        .metadata()
        .map_err(|e| GenesisError::io(path, &e))?
        .len();
    if size > limit {
        return Err(GenesisError::FileTooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    let mut text = String::new();
    file.take(limit)
        .read_to_string(&mut text)
        .map_err(|e| GenesisError::io(path, &e))?;
    Ok(text)
}

/// Replaces `path` with `bytes` atomically: a crash leaves either the old or
/// the new file, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GenesisError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| GenesisError::io(&tmp, &e))?;
        file.write_all(bytes)
            .map_err(|e| GenesisError::io(&tmp, &e))?;
        file.sync_all().map_err(|e| GenesisError::io(&tmp, &e))?;
        std::fs::rename(&tmp, path).map_err(|e| GenesisError::io(path, &e))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` with permission bits `mode` (before the umask) holding
/// `bytes`, synced; refuses to replace an existing file.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GenesisError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => GenesisError::AlreadyExists {
            path: path.to_path_buf(),
        },
        _ => GenesisError::io(path, &e),
    })?;
    file.write_all(bytes)
        .map_err(|e| GenesisError::io(path, &e))?;
    file.sync_all().map_err(|e| GenesisError::io(path, &e))?;
    sync_parent(path)
}

/// Syncs the directory holding `path`, so that a new name in it survives power loss.
pub(crate) fn sync_parent(path: &Path) -> Result<(), GenesisError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| GenesisError::io(parent, &e))?;
    Ok(())
}
