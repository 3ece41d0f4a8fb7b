//! Pool settings for tests: real replicas with the shipped model, one worker each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use pipeline::PoolSettings;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `min` replicas at start, resizable up to `max`; replicas leave without a delay.
pub fn pool_settings(min: u32, max: u32) -> PoolSettings {
    let root = root();
    let inference = inference::Config::try_parse_from([
        "inference".into(),
        "--workers".into(),
        "1".into(),
        "--model".into(),
        root.join("inference/model/efficientnet-lite0.onnx"),
        "--labels".into(),
        root.join("inference/model/imagenet-labels.txt"),
    ] as [PathBuf; 7])
    .expect("valid inference flags");
    PoolSettings {
        min_replicas: min,
        max_replicas: max,
        inference,
        deregistration_delay: Duration::ZERO,
    }
}
