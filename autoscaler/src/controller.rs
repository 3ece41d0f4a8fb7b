//! The control loop: every interval read telemetry, pass it through the breaker, read the
//! target's replica count, decide, and scale if (and only if) the count changes.
//!
//! [`run_controller`] is what the binary and the local demo run; [`Controller::step`] is one
//! iteration with the time passed in, which is how tests drive it without sleeping. With a
//! state store, the forecaster is restored before the first step, saved after the steps that
//! are due, and saved once more at shutdown ([`crate::checkpoint`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::time::MissedTickBehavior;

use crate::breaker::{Breaker, BreakerParams, Gate};
use crate::checkpoint::{Checkpointer, Checkpointing, LearnedFor};
use crate::metrics::Metrics;
use crate::policy::{Observation, Policy, PolicySpec, Recommendation};
use crate::target::{ScaleTarget, TargetError};
use crate::telemetry::{Telemetry, TelemetryError, TelemetrySource};
use crate::tuning::Tuning;

mod checkpoints;

/// What the loop runs: the policy, its tuning and the cadence.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub policy: PolicySpec,
    pub tuning: Tuning,
    /// Time between decisions.
    pub interval: Duration,
    /// Decide and report, never scale.
    pub dry_run: bool,
    /// Where the forecaster's state is kept across restarts (`predictive` only); `None`: not
    /// kept.
    pub checkpoint: Option<Checkpointing>,
    /// A scale-up adding more replicas than this at once is logged as a warning and counted
    /// in `autoscaler_large_scale_ups_total`.
    pub large_scale_up_step: u32,
}

impl ControllerSettings {
    /// The default of [`Self::large_scale_up_step`]: the HPA's default scale-up policy allows
    /// 4 pods per period (or 100 %) without comment; more than that deserves a look.
    pub const DEFAULT_LARGE_SCALE_UP_STEP: u32 = 4;

    /// `policy` with `tuning`, every 15 s, acting, no state kept.
    pub fn new(policy: PolicySpec, tuning: Tuning) -> Self {
        Self {
            policy,
            tuning,
            interval: Duration::from_secs(15),
            dry_run: false,
            checkpoint: None,
            large_scale_up_step: Self::DEFAULT_LARGE_SCALE_UP_STEP,
        }
    }
}

/// What the controller shares with the HTTP side: metrics, the last status, the pause switch.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    metrics: Metrics,
    status: Mutex<Option<Status>>,
    paused: AtomicBool,
}

impl ControllerHandle {
    /// A handle with a fresh metrics registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            inner: Arc::new(Shared {
                metrics: Metrics::new()?,
                status: Mutex::new(None),
                paused: AtomicBool::new(false),
            }),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The outcome of the latest step, if any.
    pub fn status(&self) -> Option<Status> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_status(&self, status: Status) {
        *self
            .inner
            .status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(status);
    }

    /// While paused the controller keeps deciding and reporting but does not scale.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Relaxed)
    }
}

/// What happened at one step (`GET /status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub policy: String,
    /// Wall-clock time of the step, Unix epoch ms.
    pub at_unix_ms: f64,
    pub current_replicas: Option<u32>,
    pub recommendation: Option<Recommendation>,
    pub action: Action,
    pub breaker_open: bool,
    /// Why the breaker is open.
    pub breaker_reason: Option<String>,
    /// The telemetry the decision used (possibly held over).
    pub telemetry: Option<TelemetrySnapshot>,
    /// A telemetry or target error of this step.
    pub error: Option<String>,
    pub paused: bool,
    pub dry_run: bool,
}

/// [`Telemetry`] without its `Instant`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetrySnapshot {
    pub age_seconds: f64,
    pub fresh: bool,
    pub arrival_rate: Option<f64>,
    pub queue_length: Option<f64>,
    pub in_flight: Option<f64>,
    pub utilisation: Option<f64>,
    pub service_rate_per_pod: Option<f64>,
    pub ready_replicas: Option<f64>,
}

/// What the step did to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// The count was right.
    None,
    Scaled,
    /// A change was due but `--dry-run` or the pause switch held it.
    Suppressed,
    /// The target could not be read or scaled.
    Failed,
}

/// The loop's state.
pub struct Controller<S, T> {
    source: S,
    target: T,
    policy: Policy,
    /// Whether the policy has been primed with the target's count (at the first read).
    primed: bool,
    breaker: Breaker,
    /// Saves and restores the forecaster (`None`: no store, or a policy without one).
    checkpointer: Option<Checkpointer>,
    settings: ControllerSettings,
    handle: ControllerHandle,
}

impl<S: TelemetrySource, T: ScaleTarget> Controller<S, T> {
    pub fn new(
        source: S,
        target: T,
        settings: ControllerSettings,
        handle: ControllerHandle,
    ) -> Self {
        let policy = Policy::new(settings.policy, &settings.tuning, settings.interval);
        let breaker = Breaker::new(BreakerParams {
            required: policy.required_signals(),
            ..settings.tuning.breaker.clone()
        });
        // Only a policy with a forecaster has state to keep.
        let checkpointer = settings
            .checkpoint
            .clone()
            .zip(policy.forecaster())
            .map(|(c, f)| {
                let learned_for = LearnedFor::new(target.describe(), settings.interval, f.params());
                Checkpointer::new(c, learned_for)
            });
        Self {
            source,
            target,
            policy,
            primed: false,
            breaker,
            checkpointer,
            settings,
            handle,
        }
    }

    pub fn target(&self) -> &T {
        &self.target
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// One iteration at time `now`.
    pub async fn step(&mut self, now: Instant) -> Status {
        let reading = self.source.read(now).await;
        let error = reading.as_ref().err().map(|err| self.telemetry_failed(err));
        let gate = self.breaker.admit(now, reading);
        let mut status = self.status(now, &gate, error);
        let m = self.handle.metrics();
        m.breaker_open.set(i64::from(gate.open));
        if let Some(t) = &gate.telemetry {
            m.telemetry_age
                .set(now.saturating_duration_since(t.observed_at).as_secs_f64());
            if let Some(rate) = t.arrival_rate {
                m.observed_arrival_rate.set(rate);
            }
        }
        let current = match self.target.current_replicas().await {
            Ok(n) => n,
            Err(err) => {
                self.target_failed(&err);
                status.action = Action::Failed;
                status.error = Some(err.to_string());
                self.handle.set_status(status.clone());
                return status;
            }
        };
        m.current_replicas.set(i64::from(current));
        if !self.primed {
            // A (re)started controller has no history: it must not read that as "nothing was
            // needed" and scale down at once.
            self.policy.prime(now, current);
            self.primed = true;
        }
        let observation = Observation {
            now,
            current_replicas: current,
            telemetry: gate.telemetry,
            fresh: gate.fresh,
            scale_down_allowed: gate.scale_down_allowed,
        };
        let started = Instant::now();
        let rec = self.policy.decide(&observation, &self.settings.tuning);
        m.decision_duration.observe(started.elapsed().as_secs_f64());
        self.record(&rec);
        status.current_replicas = Some(current);
        status.recommendation = Some(rec);
        status.action = self.act(now, current, &rec).await;
        if status.action == Action::Failed {
            status.error = Some("scaling failed (see logs)".into());
        }
        self.handle.set_status(status.clone());
        status
    }

    fn record(&self, rec: &Recommendation) {
        let m = self.handle.metrics();
        m.decisions
            .with_label_values(&[rec.direction.as_str()])
            .inc();
        m.desired_replicas.set(i64::from(rec.replicas));
        if let Some(forecast) = rec.forecast_rate {
            m.forecast_arrival_rate.set(forecast);
        }
        if let Some(p) = rec.sla_violation_probability {
            m.sla_violation_probability.set(p);
        }
    }

    async fn act(&mut self, now: Instant, current: u32, rec: &Recommendation) -> Action {
        if rec.replicas == current {
            return Action::None;
        }
        let target = self.target.describe();
        if self.settings.dry_run || self.handle.is_paused() {
            tracing::info!(%target, current, desired = rec.replicas, reason = rec.reason,
                "would scale (dry run or paused)");
            return Action::Suppressed;
        }
        match self.target.scale_to(rec.replicas).await {
            Ok(()) => {
                tracing::info!(%target, from = current, to = rec.replicas, reason = rec.reason,
                    forecast = rec.forecast_rate, "scaled");
                let step = self.settings.large_scale_up_step;
                if rec.replicas > current.saturating_add(step) {
                    tracing::warn!(%target, from = current, to = rec.replicas, step,
                        reason = rec.reason, forecast = rec.forecast_rate,
                        "large scale-up: more replicas at once than --large-scale-up-step");
                    self.handle.metrics().large_scale_ups.inc();
                }
                self.policy.on_scaled(now, current, rec.replicas);
                Action::Scaled
            }
            Err(err) => {
                self.target_failed(&err);
                Action::Failed
            }
        }
    }

    fn telemetry_failed(&self, err: &TelemetryError) -> String {
        if matches!(err, TelemetryError::WarmingUp(_)) {
            tracing::debug!(%err, "telemetry warming up");
        } else {
            tracing::warn!(%err, source = self.source.name(), "telemetry read failed");
            self.handle
                .metrics()
                .telemetry_errors
                .with_label_values(&[self.source.name()])
                .inc();
        }
        err.to_string()
    }

    fn target_failed(&self, err: &TargetError) {
        let target = self.target.describe();
        match err {
            TargetError::NotFound(_) => {
                tracing::warn!(%target, "target not found; retrying next interval");
            }
            other => tracing::error!(%target, err = %other, "cannot read or scale the target"),
        }
        self.handle
            .metrics()
            .scale_errors
            .with_label_values(&[err.code()])
            .inc();
    }

    fn status(&self, now: Instant, gate: &Gate, error: Option<String>) -> Status {
        Status {
            policy: self.settings.policy.to_string(),
            at_unix_ms: harness_core::wire::now_unix_millis(),
            current_replicas: None,
            recommendation: None,
            action: Action::None,
            breaker_open: gate.open,
            breaker_reason: gate.trip.as_ref().map(ToString::to_string),
            telemetry: gate.telemetry.map(|t| snapshot(now, &t, gate.fresh)),
            error,
            paused: self.handle.is_paused(),
            dry_run: self.settings.dry_run,
        }
    }
}

fn snapshot(now: Instant, t: &Telemetry, fresh: bool) -> TelemetrySnapshot {
    TelemetrySnapshot {
        age_seconds: now.saturating_duration_since(t.observed_at).as_secs_f64(),
        fresh,
        arrival_rate: t.arrival_rate,
        queue_length: t.queue_length,
        in_flight: t.in_flight,
        utilisation: t.utilisation,
        service_rate_per_pod: t.service_rate_per_pod,
        ready_replicas: t.ready_replicas,
    }
}

/// Runs the loop every `settings.interval` until `shutdown` completes. The first decision is
/// made at once.
pub async fn run_controller<S, T>(
    source: S,
    target: T,
    settings: ControllerSettings,
    handle: ControllerHandle,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: TelemetrySource,
    T: ScaleTarget,
{
    let interval = settings.interval;
    let mut controller = Controller::new(source, target, settings, handle);
    controller.restore_state(SystemTime::now()).await;
    tracing::info!(
        target = %controller.target.describe(),
        source = controller.source.name(),
        policy = %controller.settings.policy,
        interval = ?interval,
        "autoscaler started"
    );
    let mut ticks = tokio::time::interval(interval);
    // After a slow step, keep the cadence from then on rather than firing a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            tick = ticks.tick() => {
                tokio::select! {
                    // A step cut short is safe: a patch either happened or did not; so is a
                    // save (the stores replace their state whole).
                    () = &mut shutdown => break,
                    _ = async {
                        controller.step(tick.into_std()).await;
                        controller.save_state(tick.into_std(), false).await
                    } => {}
                }
            }
        }
    }
    // What was learned since the last save (SIGTERM in Kubernetes, the end of a demo).
    controller.save_state(Instant::now(), true).await;
    tracing::info!("autoscaler stopped");
}
