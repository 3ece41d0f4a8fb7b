//! `serve`'s state-store flags, validated into a [`StateLocation`], opened into a
//! [`Checkpointing`] once a Kubernetes client exists.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::checkpoint::{Checkpointing, ConfigMapStore, FileStore, StateStore};
use crate::tuning::TuningError;

/// Where `serve` keeps the forecaster's state across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateStoreKind {
    /// `file` with --state-file, else `configmap`.
    Auto,
    File,
    Configmap,
    /// Not kept: every start learns from scratch.
    None,
}

/// The state store's flags.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Where the forecaster's state is kept across restarts: auto (file with --state-file,
    /// else a ConfigMap), file, configmap or none.
    #[arg(long, env = "STATE_STORE", value_enum, default_value = "auto")]
    pub state_store: StateStoreKind,
    /// The state file (`file`).
    #[arg(long, env = "STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// The ConfigMap (`configmap`), in the Deployment's namespace; default
    /// `<deployment>-autoscaler-state`.
    #[arg(long, env = "STATE_CONFIGMAP")]
    pub state_configmap: Option<String>,
    /// Time between saves (only when something was learned since; also saved at shutdown).
    #[arg(long, env = "STATE_SAVE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub state_save_interval: Duration,
    /// A state whose last observation is older than this keeps only its seasonal offsets
    /// (level and trend are learned again).
    #[arg(long, env = "STATE_MAX_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub state_max_age: Duration,
}

/// Where the state goes, validated; opened into a [`StateStore`] once a client exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    File(PathBuf),
    ConfigMap(String),
}

impl StateArgs {
    /// The location the flags name for `deployment`'s autoscaler; `None` for `none`.
    pub fn location(&self, deployment: &str) -> Result<Option<StateLocation>, TuningError> {
        if self.state_save_interval.is_zero() {
            return Err(TuningError::invalid("--state-save-interval", "must be > 0"));
        }
        let configmap = || {
            let name = self
                .state_configmap
                .clone()
                .unwrap_or_else(|| format!("{deployment}-autoscaler-state"));
            if is_dns_subdomain(&name) {
                Ok(Some(StateLocation::ConfigMap(name)))
            } else {
                Err(TuningError::invalid(
                    "--state-configmap",
                    format!(
                        "{name:?} is not a valid ConfigMap name (lowercase letters, digits, '-' and '.', at most 253)"
                    ),
                ))
            }
        };
        match (self.state_store, &self.state_file) {
            (StateStoreKind::None, _) => Ok(None),
            (StateStoreKind::File | StateStoreKind::Auto, Some(path)) => {
                Ok(Some(StateLocation::File(path.clone())))
            }
            (StateStoreKind::File, None) => Err(TuningError::invalid(
                "--state-file",
                "required by --state-store file",
            )),
            (StateStoreKind::Configmap | StateStoreKind::Auto, _) => configmap(),
        }
    }

    /// The store and its schedule; a ConfigMap is read and written with `client`.
    pub fn checkpointing(
        &self,
        location: StateLocation,
        client: &kube::Client,
        namespace: Option<&str>,
    ) -> Checkpointing {
        let store =
            match location {
                StateLocation::File(path) => StateStore::File(FileStore::new(path)),
                StateLocation::ConfigMap(name) => StateStore::ConfigMap(Box::new(
                    ConfigMapStore::new(client.clone(), namespace, &name),
                )),
            };
        Checkpointing {
            store,
            save_interval: self.state_save_interval,
            max_age: self.state_max_age,
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| ok(c) || c == '-' || c == '.')
        && name.starts_with(ok)
        && name.ends_with(ok)
}
