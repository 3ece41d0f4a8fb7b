//! The forecaster's state across restarts: a daily season takes days to learn, so a restart
//! must not start learning over.
//!
//! The predictive policy's forecaster (level, trend, seasonal offsets, the history the season
//! still needs) and its recent forecast errors (the σ of its prediction bound) are saved every
//! `--state-save-interval` when it has learned something since the last save, and once more at
//! shutdown; they are restored at start. Where: a file (`file`), or a ConfigMap the autoscaler
//! owns (`configmap`). What is restored, and when a saved state is refused (missing,
//! unreadable, learned for something else, too old), is decided by [`Checkpoint::resume`]; a
//! refused state never stops the autoscaler: it starts fresh, with a log line and a count in
//! `autoscaler_state_restores_total{outcome}`.
//!
//! Layout: `format` (the saved document and the decision at start), `file` and `configmap`
//! (the two stores), `keeper` (when to save, what to log and count).

mod configmap;
mod file;
mod format;
mod keeper;

use std::time::Duration;

pub use configmap::{ConfigMapStore, DATA_KEY};
pub use file::FileStore;
pub use format::{Checkpoint, FORMAT_VERSION, LearnedFor, Resumption, Unreadable};
pub use keeper::{Checkpointer, RestoreOutcome, SaveOutcome};

/// Where the state is kept, how often it is saved, and how old it may be to be continued.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub store: StateStore,
    /// Time between saves (only when something was learned since the last one).
    pub save_interval: Duration,
    /// A state whose last observation is older than this keeps only its seasonal offsets.
    pub max_age: Duration,
}

/// A place to keep the state.
#[derive(Debug, Clone)]
pub enum StateStore {
    File(FileStore),
    // Boxed: a kube client and the last object read are large next to a path.
    ConfigMap(Box<ConfigMapStore>),
}

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Written,
    /// Written after a 409 and a re-read (someone else had written since our last look).
    WrittenAfterConflict,
    /// Not written: after a 409, the store held a newer state for the same target.
    KeptNewer {
        last_observation_unix_ms: u64,
    },
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{store}: API error {status} {reason}: {message}")]
    Api {
        store: String,
        status: u16,
        reason: String,
        message: String,
    },
    #[error("{store}: changed by someone else again after a re-read; retrying at the next save")]
    Conflict { store: String },
    #[error("{store}: {bytes} bytes of state, more than the {limit} a ConfigMap holds")]
    TooLarge {
        store: String,
        bytes: usize,
        limit: usize,
    },
    /// Connection, timeout, a malformed answer.
    #[error("{store}: {source}")]
    Client {
        store: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{store}: no answer within {timeout:?}")]
    Timeout { store: String, timeout: Duration },
}

impl StateStore {
    /// For logs: `file /var/lib/autoscaler/state.json`, `configmap ml/inference-autoscaler-state`.
    pub fn describe(&self) -> String {
        match self {
            StateStore::File(f) => format!("file {}", f.path().display()),
            StateStore::ConfigMap(c) => c.describe(),
        }
    }

    /// The saved bytes; `None` if nothing was saved there.
    pub async fn load(&mut self) -> Result<Option<Vec<u8>>, CheckpointError> {
        match self {
            StateStore::File(f) => f.load().await,
            StateStore::ConfigMap(c) => c.load().await,
        }
    }

    pub async fn save(&mut self, checkpoint: &Checkpoint) -> Result<Saved, CheckpointError> {
        match self {
            StateStore::File(f) => f.save(checkpoint.to_json()).await.map(|()| Saved::Written),
            StateStore::ConfigMap(c) => c.save(checkpoint).await,
        }
    }
}

#[cfg(test)]
mod tests;
