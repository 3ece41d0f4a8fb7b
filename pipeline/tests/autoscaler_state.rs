//! `pipeline demo --scaler predictive --autoscaler-state FILE`: the demo's own controller
//! settings, run twice on the same file (a scripted load and an in-memory replica count stand
//! in for the services, which add nothing here): the second run continues from the first
//! one's level and trend; a run without the file starts from scratch.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscaler::{
    ControllerHandle, ControllerSettings, ScaleTarget, TargetError, Telemetry, TelemetryError,
    TelemetrySource, run_controller,
};
use clap::Parser;
use pipeline::{Cli, Command};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo's controller settings for `extra` flags.
fn demo_settings(extra: &[String]) -> ControllerSettings {
    let root = root();
    // Decisions every 100 ms so that twenty take two seconds.
    let mut argv: Vec<String> = [
        "pipeline",
        "demo",
        "--scaler",
        "predictive",
        "--interval",
        "100ms",
    ]
    .map(String::from)
    .to_vec();
    for (flag, path) in [
        ("--workload", "workload.txt"),
        ("--images", "images"),
        ("--model", "inference/model/efficientnet-lite0.onnx"),
        ("--labels", "inference/model/imagenet-labels.txt"),
    ] {
        argv.extend([flag.to_owned(), root.join(path).display().to_string()]);
    }
    argv.extend(extra.iter().cloned());
    let Command::Demo(args) = Cli::try_parse_from(argv).unwrap().command;
    args.validate().unwrap().controller
}

struct Replicas(Mutex<u32>);

impl ScaleTarget for Replicas {
    fn describe(&self) -> String {
        "local pool".into()
    }

    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(*self.0.lock().unwrap())
    }

    async fn scale_to(&self, replicas: u32) -> Result<(), TargetError> {
        *self.0.lock().unwrap() = replicas;
        Ok(())
    }
}

/// Requests/s climbing by 1 per read from `start`.
struct Ramp(f64);

impl TelemetrySource for Ramp {
    fn name(&self) -> &'static str {
        "ramp"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        self.0 += 1.0;
        Ok(Telemetry {
            arrival_rate: Some(self.0 - 1.0),
            queue_length: Some(0.0),
            ..Telemetry::empty(now)
        })
    }
}

/// Runs the demo's controller for `decisions` intervals; returns its last forecast.
async fn run(settings: ControllerSettings, start: f64, decisions: u32) -> (f64, ControllerHandle) {
    let handle = ControllerHandle::new().unwrap();
    let stop = tokio::time::sleep(settings.interval * (decisions - 1) + Duration::from_millis(10));
    let target = Arc::new(Replicas(Mutex::new(1)));
    run_controller(Ramp(start), target, settings, handle.clone(), stop).await;
    let status = handle.status().unwrap();
    (
        status.recommendation.unwrap().forecast_rate.unwrap(),
        handle,
    )
}

#[tokio::test]
async fn a_second_demo_autoscaler_continues_from_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forecaster.json");
    let with_file = || demo_settings(&["--autoscaler-state".into(), file.display().to_string()]);
    assert!(with_file().checkpoint.is_some());
    assert!(
        demo_settings(&[]).checkpoint.is_none(),
        "not kept by default"
    );

    let (_, first) = run(with_file(), 1.0, 20).await;
    assert!(file.exists(), "saved");
    assert!(first.metrics().state_saves.with_label_values(&["ok"]).get() >= 1);

    // Where the first run stopped: 21 requests/s and climbing by 1 each interval (the demo's
    // horizon is ceil((2 s cold start + 100 ms) / 100 ms) = 21 intervals).
    let (continued, second) = run(with_file(), 21.0, 1).await;
    let (fresh, _) = run(demo_settings(&[]), 21.0, 1).await;
    let restored = second
        .metrics()
        .state_restores
        .with_label_values(&["restored"]);
    assert_eq!(restored.get(), 1);
    assert!(
        (continued - 42.0).abs() < 1e-6,
        "continues the trend: {continued}"
    );
    assert_eq!(fresh, 21.0, "a fresh forecaster has seen one reading");
}
