//! The forecaster's state across a restart of the controller: saved by one controller,
//! restored by the next, which continues from the saved level and trend where a fresh one
//! starts from nothing. Through a mocked ConfigMap (each request checked) and through a file
//! with the loop the demo runs ([`run_controller`]); a corrupt state starts fresh, counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use autoscaler::checkpoint::{Checkpointing, FileStore, RestoreOutcome, SaveOutcome, StateStore};
use autoscaler::controller::{Controller, ControllerHandle, ControllerSettings};
use autoscaler::{
    PolicySpec, ScaleTarget, TargetError, Telemetry, TelemetryError, TelemetrySource, Tuning,
    run_controller,
};
use http::{Method, StatusCode};

use crate::state_configmap::{ITEM, expect, failure, object, state_in, store};

/// A replica count in memory.
#[derive(Debug)]
pub(crate) struct Pool(pub(crate) Mutex<u32>);

impl ScaleTarget for Pool {
    fn describe(&self) -> String {
        "test pool".into()
    }

    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(*self.0.lock().unwrap())
    }

    async fn scale_to(&self, replicas: u32) -> Result<(), TargetError> {
        *self.0.lock().unwrap() = replicas;
        Ok(())
    }
}

/// A load that climbs 4 requests/s per read from `start`.
#[derive(Clone)]
pub(crate) struct Ramp(Arc<Mutex<f64>>);

impl Ramp {
    pub(crate) fn from(start: f64) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }
}

impl TelemetrySource for Ramp {
    fn name(&self) -> &'static str {
        "ramp"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        let mut rate = self.0.lock().unwrap();
        let reading = *rate;
        *rate += 4.0;
        Ok(Telemetry {
            arrival_rate: Some(reading),
            queue_length: Some(0.0),
            ..Telemetry::empty(now)
        })
    }
}

fn settings(store: Option<StateStore>) -> ControllerSettings {
    // An undamped trend follows the ramp exactly, which the exact level and trend below rely
    // on; the default damping (0.9) would bend it.
    let mut tuning = Tuning::default();
    tuning.forecast.damping = 1.0;
    ControllerSettings {
        checkpoint: store.map(|store| Checkpointing {
            store,
            save_interval: Duration::from_secs(60),
            max_age: Duration::from_secs(600),
        }),
        ..ControllerSettings::new(PolicySpec::Predictive, tuning)
    }
}

fn controller(
    source: Ramp,
    store: Option<StateStore>,
) -> (Controller<Ramp, Arc<Pool>>, ControllerHandle) {
    let handle = ControllerHandle::new().unwrap();
    let pool = Arc::new(Pool(Mutex::new(5)));
    let c = Controller::new(source, pool, settings(store), handle.clone());
    (c, handle)
}

fn level_and_trend<S: TelemetrySource, T: ScaleTarget>(c: &Controller<S, T>) -> (f64, f64) {
    c.policy().forecaster().unwrap().level_and_trend()
}

#[tokio::test]
async fn the_state_survives_a_restart_through_the_configmap() {
    let (configmap, mut api) = store();
    let (mut first, handle) = controller(
        Ramp::from(10.0),
        Some(StateStore::ConfigMap(Box::new(configmap))),
    );
    let saved = tokio::spawn(async move {
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::NOT_FOUND,
            failure(404, "NotFound"),
        )
        .await;
        let (request, send) = api.next_request().await.unwrap();
        assert_eq!(request.method(), Method::POST);
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        send.send_response(crate::state_configmap::respond(
            StatusCode::CREATED,
            body.clone(),
        ));
        body
    });
    let t0 = Instant::now();
    assert_eq!(
        first.restore_state(SystemTime::now()).await,
        Some(RestoreOutcome::Missing)
    );
    for i in 0..12 {
        first.step(t0 + Duration::from_secs(15 * i)).await;
    }
    // Not due yet (every 60 s, counted from the first call) ...
    assert_eq!(first.save_state(t0, false).await, None);
    // ... at shutdown, at once.
    assert_eq!(first.save_state(t0, true).await, Some(SaveOutcome::Ok));
    let body = saved.await.unwrap();
    let checkpoint = state_in(&body);
    assert_eq!(checkpoint.learned_for.target, "test pool");
    assert_eq!(checkpoint.forecaster.steps, 12);
    let ok = handle
        .metrics()
        .state_saves
        .with_label_values(&["ok"])
        .get();
    assert_eq!(ok, 1);
    let (level, trend) = level_and_trend(&first);
    assert!(
        (trend - 4.0).abs() < 1e-9 && (level - 54.0).abs() < 1e-9,
        "{level} {trend}"
    );
    // The prediction bound's recent errors go with it: 12 steps at a horizon of 3 scored 9,
    // the first ones off while the trend was being learned.
    let errors = first.policy().learned().unwrap().1;
    assert_eq!(checkpoint.recent_errors, errors.recent());
    assert_eq!(checkpoint.recent_errors.len(), 9);
    let sigma = errors.rms();
    assert!(sigma > 0.5, "σ {sigma}");

    // The restart: a new controller, 20 s later, reads it back.
    let (configmap, mut api) = store();
    let (mut second, handle) = controller(
        Ramp::from(58.0),
        Some(StateStore::ConfigMap(Box::new(configmap))),
    );
    let server = tokio::spawn(async move {
        let stored = serde_json::to_vec(&checkpoint).unwrap();
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::OK,
            object("3", Some(&stored)),
        )
        .await;
    });
    let later = SystemTime::now() + Duration::from_secs(20);
    assert_eq!(
        second.restore_state(later).await,
        Some(RestoreOutcome::Restored)
    );
    server.await.unwrap();
    let (l, t) = level_and_trend(&second);
    assert!(
        (l - level).abs() < 1e-9 && (t - trend).abs() < 1e-9,
        "{l} {t}"
    );
    // No interval was missed in 20 s: every error is kept, so σ is not learned again.
    let restored_sigma = second.policy().learned().unwrap().1.rms();
    assert!(
        (restored_sigma - sigma).abs() < 1e-9 * sigma,
        "{restored_sigma} vs {sigma}"
    );
    let restored = handle
        .metrics()
        .state_restores
        .with_label_values(&["restored"])
        .get();
    assert_eq!(restored, 1);
}

#[tokio::test]
async fn a_corrupt_state_starts_fresh_and_is_counted() {
    let (configmap, mut api) = store();
    let (mut c, handle) = controller(
        Ramp::from(10.0),
        Some(StateStore::ConfigMap(Box::new(configmap))),
    );
    let server = tokio::spawn(async move {
        expect(
            &mut api,
            Method::GET,
            ITEM,
            StatusCode::OK,
            object("3", Some(b"{\"version\":")),
        )
        .await;
        // The first save after learning replaces it, guarded by the version read.
        let (request, send) = api.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PUT);
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["metadata"]["resourceVersion"], "3");
        send.send_response(crate::state_configmap::respond(
            StatusCode::OK,
            body.clone(),
        ));
        state_in(&body)
    });
    assert_eq!(
        c.restore_state(SystemTime::now()).await,
        Some(RestoreOutcome::Corrupt)
    );
    assert_eq!(c.policy().forecaster().unwrap().steps(), 0);
    let corrupt = handle
        .metrics()
        .state_restores
        .with_label_values(&["corrupt"])
        .get();
    assert_eq!(corrupt, 1);
    c.step(Instant::now()).await;
    assert_eq!(
        c.save_state(Instant::now(), true).await,
        Some(SaveOutcome::Ok)
    );
    assert_eq!(server.await.unwrap().forecaster.steps, 1);
}

/// What the demo does: the loop on a file, stopped, then started again on the same file.
async fn run_for(source: Ramp, store: Option<StateStore>, steps: u64) -> ControllerHandle {
    let handle = ControllerHandle::new().unwrap();
    let pool = Arc::new(Pool(Mutex::new(5)));
    let interval = Duration::from_secs(15);
    let stop = tokio::time::sleep(interval * (steps as u32 - 1) + Duration::from_secs(1));
    run_controller(source, pool, settings(store), handle.clone(), stop).await;
    handle
}

#[tokio::test(start_paused = true)]
async fn the_loop_saves_at_shutdown_and_a_restarted_loop_continues_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forecaster.json");
    let file = || Some(StateStore::File(FileStore::new(&path)));
    let first = run_for(Ramp::from(10.0), file(), 12).await;
    // Every 60 s from the first decision (at 60 s and 120 s), then at shutdown (165 s).
    let ok = first.metrics().state_saves.with_label_values(&["ok"]).get();
    assert_eq!(ok, 3);
    assert!(path.exists(), "saved at shutdown");

    // Restarted on the same file: the first decision already knows the trend. A fresh
    // controller sees one reading and forecasts it flat.
    let restarted = run_for(Ramp::from(58.0), file(), 1).await;
    let fresh = run_for(Ramp::from(58.0), None, 1).await;
    let restores = restarted
        .metrics()
        .state_restores
        .with_label_values(&["restored"])
        .get();
    assert_eq!(restores, 1);
    let forecast = |h: &ControllerHandle| {
        h.status()
            .unwrap()
            .recommendation
            .unwrap()
            .forecast_rate
            .unwrap()
    };
    // Horizon: ceil((30 s cold start + 15 s) / 15 s) = 3 intervals of +4/s ahead of 58.
    assert!(
        (forecast(&restarted) - 70.0).abs() < 1.0,
        "{}",
        forecast(&restarted)
    );
    assert_eq!(forecast(&fresh), 58.0);
}
