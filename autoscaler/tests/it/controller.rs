//! The control loop with an in-memory target (the shape of the demo's local pool) and a
//! scripted source, on an injected or paused clock: cadence, dry run and pause, the breaker,
//! and the predictive policy scaling ahead of a ramp.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscaler::controller::{Action, Controller, ControllerHandle, ControllerSettings};
use autoscaler::{
    PolicySpec, ScaleTarget, TargetError, Telemetry, TelemetryError, TelemetrySource, Tuning,
    run_controller,
};

/// A replica pool in memory that records every scale call.
#[derive(Debug, Default)]
struct Pool {
    replicas: Mutex<u32>,
    calls: Mutex<Vec<u32>>,
}

impl Pool {
    fn with(replicas: u32) -> Arc<Self> {
        Arc::new(Self {
            replicas: Mutex::new(replicas),
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<u32> {
        self.calls.lock().unwrap().clone()
    }
}

impl ScaleTarget for Pool {
    fn describe(&self) -> String {
        "test pool".into()
    }

    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(*self.replicas.lock().unwrap())
    }

    async fn scale_to(&self, replicas: u32) -> Result<(), TargetError> {
        *self.replicas.lock().unwrap() = replicas;
        self.calls.lock().unwrap().push(replicas);
        Ok(())
    }
}

/// Plays back arrival rates (`None`: a failed read), then repeats the last one; counts reads.
#[derive(Clone, Default)]
struct Script {
    rates: Arc<Mutex<VecDeque<Option<f64>>>>,
    reads: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(rates: &[Option<f64>]) -> Self {
        Self {
            rates: Arc::new(Mutex::new(rates.iter().copied().collect())),
            reads: Arc::default(),
        }
    }
}

impl TelemetrySource for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        self.reads.lock().unwrap().push(now);
        let mut rates = self.rates.lock().unwrap();
        let rate = if rates.len() > 1 {
            rates.pop_front().flatten()
        } else {
            rates.front().copied().flatten()
        };
        match rate {
            Some(rate) => Ok(Telemetry {
                arrival_rate: Some(rate),
                queue_length: Some(0.0),
                ..Telemetry::empty(now)
            }),
            None => Err(TelemetryError::unreachable("script", "scripted failure")),
        }
    }
}

fn settings(policy: PolicySpec) -> ControllerSettings {
    ControllerSettings::new(policy, Tuning::default())
}

#[tokio::test(start_paused = true)]
async fn decides_every_interval_from_the_first_tick_until_shutdown() {
    let pool = Pool::with(1);
    let script = Script::new(&[Some(10.0)]);
    let reads = script.reads.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = ControllerHandle::new().unwrap();
    let task = tokio::spawn(run_controller(
        script,
        pool.clone(),
        settings(PolicySpec::Static(3)),
        handle.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_secs(46)).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let reads = reads.lock().unwrap().clone();
    assert_eq!(reads.len(), 4, "t = 0, 15, 30, 45");
    for pair in reads.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_secs(15));
    }
    // Scaled once (1 → 3); the next three steps found 3 and sent nothing.
    assert_eq!(pool.calls(), vec![3]);
    assert_eq!(
        handle
            .metrics()
            .decisions
            .with_label_values(&["hold"])
            .get(),
        3
    );
    assert_eq!(handle.status().unwrap().action, Action::None);
}

#[tokio::test]
async fn dry_run_and_pause_decide_but_do_not_scale() {
    let pool = Pool::with(1);
    let mut dry = settings(PolicySpec::Static(4));
    dry.dry_run = true;
    let handle = ControllerHandle::new().unwrap();
    let mut c = Controller::new(Script::new(&[Some(1.0)]), pool.clone(), dry, handle.clone());
    let status = c.step(Instant::now()).await;
    assert_eq!(status.action, Action::Suppressed);
    assert_eq!(status.recommendation.unwrap().replicas, 4);
    assert!(pool.calls().is_empty());

    let handle = ControllerHandle::new().unwrap();
    let mut c = Controller::new(
        Script::new(&[Some(1.0)]),
        pool.clone(),
        settings(PolicySpec::Static(4)),
        handle.clone(),
    );
    handle.set_paused(true);
    assert_eq!(c.step(Instant::now()).await.action, Action::Suppressed);
    handle.set_paused(false);
    assert_eq!(c.step(Instant::now()).await.action, Action::Scaled);
    assert_eq!(pool.calls(), vec![4]);
}

#[tokio::test]
async fn bad_telemetry_opens_the_breaker_and_freezes_scale_down() {
    let pool = Pool::with(10);
    let handle = ControllerHandle::new().unwrap();
    // Good, then the source fails for long, then recovers at a lower rate.
    let mut rates = vec![Some(50.0)];
    rates.extend([None; 9]);
    rates.push(Some(40.0));
    let script = Script::new(&rates);
    let mut tuning = Tuning::default();
    tuning.decision.scale_down_cooldown = Duration::ZERO;
    let mut c = Controller::new(
        script,
        pool.clone(),
        ControllerSettings::new(PolicySpec::Predictive, tuning),
        handle.clone(),
    );
    let t0 = Instant::now();
    let at = |i: u64| t0 + Duration::from_secs(15 * i);
    let first = c.step(at(0)).await;
    assert!(!first.breaker_open);
    let held = *pool.replicas.lock().unwrap();
    for i in 1..10 {
        let s = c.step(at(i)).await;
        assert!(s.breaker_open, "step {i}");
        assert!(
            s.breaker_reason
                .as_deref()
                .unwrap()
                .contains("scripted failure")
        );
        assert_eq!(
            *pool.replicas.lock().unwrap(),
            held,
            "no scaling on held or missing data"
        );
        // The last good sample stands in for 120 s, then nothing does.
        assert_eq!(s.telemetry.is_some(), 15 * i <= 120, "step {i}");
    }
    assert_eq!(handle.metrics().breaker_open.get(), 1);
    assert_eq!(
        handle
            .metrics()
            .telemetry_errors
            .with_label_values(&["script"])
            .get(),
        9
    );
    // Recovery: one good sample is fresh data but the breaker stays open (closeAfter: 2)...
    let s = c.step(at(10)).await;
    assert!(s.breaker_open && s.telemetry.unwrap().fresh);
    assert_eq!(*pool.replicas.lock().unwrap(), held);
    // ...the second closes it, and the lower rate scales down.
    let s = c.step(at(11)).await;
    assert!(!s.breaker_open);
    assert!(*pool.replicas.lock().unwrap() < held);
}

#[tokio::test]
async fn predictive_scales_ahead_of_a_ramp() {
    let pool = Pool::with(1);
    let handle = ControllerHandle::new().unwrap();
    let rates: Vec<Option<f64>> = (1..=10).map(|i| Some(10.0 * f64::from(i))).collect();
    let mut c = Controller::new(
        Script::new(&rates),
        pool.clone(),
        settings(PolicySpec::Predictive),
        handle.clone(),
    );
    let t0 = Instant::now();
    let tuning = Tuning::default();
    let mu = tuning.decision.service_rate_per_pod;
    for i in 0..10u64 {
        let s = c.step(t0 + Duration::from_secs(15 * i)).await;
        let rec = s.recommendation.unwrap();
        let observed = 10.0 * (i + 1) as f64;
        if i >= 2 {
            // The trend is known: the forecast runs ahead of what is observed now...
            assert!(rec.forecast_rate.unwrap() > observed, "step {i}");
            // ...and so does capacity.
            assert!(f64::from(rec.replicas) * mu > observed * tuning.decision.safety_margin);
        }
    }
    assert!(handle.metrics().forecast_arrival_rate.get() > 100.0);
    let calls = pool.calls();
    assert!(
        calls.windows(2).all(|w| w[1] > w[0]),
        "only ever up: {calls:?}"
    );
}

#[tokio::test]
async fn a_restarted_controller_waits_a_cooldown_before_scaling_down() {
    let pool = Pool::with(10);
    let handle = ControllerHandle::new().unwrap();
    let mut c = Controller::new(
        Script::new(&[Some(1.0)]),
        pool.clone(),
        settings(PolicySpec::Predictive),
        handle,
    );
    let t0 = Instant::now();
    let cooldown = Tuning::default().decision.scale_down_cooldown;
    let first = c.step(t0).await.recommendation.unwrap();
    assert_eq!((first.replicas, first.reason), (10, "cooldown"));
    let before = c.step(t0 + cooldown - Duration::from_secs(1)).await;
    assert_eq!(before.recommendation.unwrap().replicas, 10);
    c.step(t0 + cooldown).await;
    assert!(*pool.replicas.lock().unwrap() < 10, "{:?}", pool.calls());
}
