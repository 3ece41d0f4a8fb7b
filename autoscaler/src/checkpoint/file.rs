//! The forecaster's state in a local file (or one on a volume): written whole to a temporary
//! file next to it, synced, then renamed over it, so a crash mid-write leaves the previous
//! state, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::CheckpointError;

/// A state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes; `None` if there is no file.
    pub async fn load(&self) -> Result<Option<Vec<u8>>, CheckpointError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Replaces the file with `bytes`, atomically.
    pub async fn save(&self, bytes: Vec<u8>) -> Result<(), CheckpointError> {
        let path = self.path.clone();
        // Blocking file I/O with an fsync: off the async executor.
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|source| self.io(source))
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}
