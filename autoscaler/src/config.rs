//! Command line: `autoscaler serve`, `autoscaler simulate`, `autoscaler workload`, each
//! validated once into the domain settings the rest of the crate runs on
//! ([`ControllerSettings`] and an [`AnySource`] for `serve`, [`SimulateOptions`] for
//! `simulate`).
//!
//! Every setting of `serve` has a flag, an environment variable (what the Helm chart sets) and
//! a default. `simulate` and `workload` are interactive tools: their own flags have no
//! environment variables, so that a shell configured for `serve` cannot change a simulation
//! behind the user's back; the tuning file and its overrides are shared with `serve` on
//! purpose (simulate what you deploy).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::controller::ControllerSettings;
use crate::policy::PolicySpec;
use crate::simulate::{Shape, SimulateOptions};
use crate::telemetry::{AnySource, InferenceTargets, PrometheusSource, ScrapeSource};
use crate::tuning::{Tuning, TuningError, TuningOverrides};

mod state_store;

pub use state_store::{StateArgs, StateLocation, StateStoreKind};

/// The `autoscaler` binary.
#[derive(Debug, Parser)]
#[command(
    name = "autoscaler",
    version,
    about = "Predictive autoscaler for the inference service, and a scaling-policy simulator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller against a Deployment, with /metrics, /healthz and /status.
    Serve(ServeConfig),
    /// Replay a workload through a model of the pipeline under several policies.
    Simulate(SimulateArgs),
    /// Write one of the shipped synthetic workloads.
    Workload(WorkloadArgs),
}

/// Where telemetry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The Prometheus HTTP API.
    Prometheus,
    /// The dispatcher's (and inference replicas') /metrics.
    Dispatcher,
}

/// `autoscaler serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address of the HTTP server.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8090")]
    pub listen: String,
    /// The tuning file (YAML); built-in defaults when unset.
    #[arg(long, env = "AUTOSCALER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Time between decisions.
    #[arg(long, env = "SCALE_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// predictive, hpa, queue or static:N.
    #[arg(long, env = "SCALING_POLICY", default_value = "predictive")]
    pub policy: PolicySpec,
    #[arg(
        long,
        env = "TELEMETRY_SOURCE",
        value_enum,
        default_value = "prometheus"
    )]
    pub source: SourceKind,
    #[arg(long, env = "PROMETHEUS_URL", default_value = "http://127.0.0.1:9090")]
    pub prometheus_url: String,
    #[arg(
        long,
        env = "DISPATCHER_METRICS_URL",
        default_value = "http://127.0.0.1:8080/metrics"
    )]
    pub dispatcher_metrics_url: String,
    /// With `--source dispatcher`: inference replicas' /metrics URLs (repeatable; env
    /// comma-separated) for utilisation and the measured service rate.
    #[arg(
        long = "inference-metrics-url",
        env = "INFERENCE_METRICS_URLS",
        value_delimiter = ','
    )]
    pub inference_metrics_urls: Vec<String>,
    /// Namespace of the Deployment (default: the pod's own namespace in a cluster, else the
    /// kubeconfig context's).
    #[arg(long, env = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The Deployment to scale.
    #[arg(long, env = "TARGET_DEPLOYMENT", default_value = "inference")]
    pub deployment: String,
    /// Decide and report, never scale.
    #[arg(long, env = "DRY_RUN")]
    pub dry_run: bool,
    /// Bearer token required by /status, /pause and /resume. Without one, those endpoints are
    /// served only on a loopback address, unless --allow-unauthenticated.
    #[arg(long, env = "AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Serve /status, /pause and /resume without a token on any address.
    #[arg(long, env = "ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Warn and count (autoscaler_large_scale_ups_total) when one scale-up adds more replicas
    /// than this.
    #[arg(long, env = "LARGE_SCALE_UP_STEP", default_value_t = ControllerSettings::DEFAULT_LARGE_SCALE_UP_STEP)]
    pub large_scale_up_step: u32,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub tuning: TuningOverrides,
}

impl ServeConfig {
    /// Loads the tuning file and checks every setting.
    pub fn validate(&self) -> Result<ControllerSettings, TuningError> {
        let tuning = Tuning::load(self.config.as_deref(), &self.tuning)?;
        if self.interval.is_zero() {
            return Err(TuningError::invalid("--interval", "must be > 0"));
        }
        if self.auth_token.as_deref().is_some_and(str::is_empty) {
            return Err(TuningError::invalid(
                "--auth-token",
                "must not be empty when set",
            ));
        }
        if tuning.decision.min_replicas < self.policy.lowest_min_replicas() {
            return Err(TuningError::invalid(
                "minWarmReplicas",
                format!(
                    "the {} policy cannot scale to zero (the Kubernetes HPA needs its \
                     HPAScaleToZero feature gate): use at least 1, or --policy predictive or \
                     queue, which activate from zero when work queues",
                    self.policy
                ),
            ));
        }
        // Checked here; opened by `run` once a Kubernetes client exists.
        self.state.location(&self.deployment)?;
        Ok(ControllerSettings {
            policy: self.policy,
            tuning,
            interval: self.interval,
            dry_run: self.dry_run,
            checkpoint: None,
            large_scale_up_step: self.large_scale_up_step,
        })
    }
}

// Built here, next to the flags it reads, so that `telemetry` knows nothing of the command line.
impl AnySource {
    /// The telemetry source `serve`'s flags name, with the tuning's queries and timeout.
    pub fn from_config(config: &ServeConfig, tuning: &Tuning) -> anyhow::Result<Self> {
        let timeout = tuning.prometheus_timeout;
        Ok(match config.source {
            SourceKind::Prometheus => AnySource::Prometheus(
                PrometheusSource::new(&config.prometheus_url, tuning.queries.clone(), timeout)
                    .map_err(|e| anyhow::anyhow!("--prometheus-url {e}"))?,
            ),
            SourceKind::Dispatcher => {
                let inference = if config.inference_metrics_urls.is_empty() {
                    InferenceTargets::None
                } else {
                    InferenceTargets::Static(config.inference_metrics_urls.clone())
                };
                AnySource::Scrape(
                    ScrapeSource::new(config.dispatcher_metrics_url.clone(), inference, timeout)
                        .map_err(anyhow::Error::msg)?,
                )
            }
        })
    }
}

/// `autoscaler simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Per-second arrival rates: numbers separated by commas or whitespace, `#` comments.
    #[arg(long)]
    pub workload: PathBuf,
    /// Policies to compare (repeatable): predictive, hpa, queue, static:N.
    #[arg(long = "policy", required = true)]
    pub policies: Vec<PolicySpec>,
    /// The tuning file (YAML), shared with `serve`.
    #[arg(long, env = "AUTOSCALER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Time between decisions (the HPA's sync period too).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Seed of the arrival and service-time streams.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replicas at the start (default: enough for the first minute's mean rate at
    /// targetUtilization; static:N always starts at N).
    #[arg(long)]
    pub initial_replicas: Option<u32>,
    /// Requests the dispatcher queue holds before refusing (its --queue-capacity).
    #[arg(long, default_value_t = 10_000)]
    pub queue_capacity: usize,
    /// Measured service times in seconds (same format as the workload); exponential with
    /// mean 1/serviceRatePerPod when unset.
    #[arg(long)]
    pub service_times: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw load, replicas and latency over time to a PNG (with --sweep: every policy's
    /// frontier, pod-hours against requests over the SLA).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Sweep each policy's main knob (hpa: targetUtilization, predictive: safetyMargin,
    /// queue: queue.targetPerReplica, static:N: N) and report the frontiers, whether
    /// predictive's dominates each other policy's, and the forecast's MASE.
    #[arg(long)]
    pub sweep: bool,
    /// Knob values per policy with --sweep (at least 2).
    #[arg(long, default_value_t = 9)]
    pub sweep_points: usize,
    #[command(flatten)]
    pub tuning: TuningOverrides,
}

impl SimulateArgs {
    /// Loads the tuning file and checks the flags. The workload files are read by
    /// [`crate::simulate::run`], after these checks, as they always were.
    pub fn validate(&self) -> anyhow::Result<SimulateOptions> {
        let tuning = Tuning::load(self.config.as_deref(), &self.tuning)?;
        if self.interval.is_zero() {
            anyhow::bail!("--interval must be > 0");
        }
        if self.sweep && self.sweep_points < 2 {
            anyhow::bail!("--sweep-points must be ≥ 2, got {}", self.sweep_points);
        }
        Ok(SimulateOptions {
            workload: self.workload.clone(),
            policies: self.policies.clone(),
            tuning,
            interval: self.interval,
            seed: self.seed,
            initial_replicas: self.initial_replicas,
            queue_capacity: self.queue_capacity,
            service_times: self.service_times.clone(),
            sweep: self.sweep.then_some(self.sweep_points),
        })
    }
}

/// `autoscaler workload`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    #[arg(long, value_enum)]
    pub shape: Shape,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// File to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["autoscaler", "serve"]).unwrap();
        let Command::Serve(c) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(c.listen, "0.0.0.0:8090");
        assert_eq!(c.interval, Duration::from_secs(15));
        assert_eq!(c.policy, PolicySpec::Predictive);
        assert_eq!(c.source, SourceKind::Prometheus);
        assert_eq!(c.deployment, "inference");
        assert!(!c.dry_run && c.auth_token.is_none() && c.namespace.is_none());
        let settings = c.validate().unwrap();
        assert_eq!(settings.tuning, Tuning::default());
    }

    #[test]
    fn flags_override_the_tuning_and_bad_values_are_named() {
        let cli = Cli::try_parse_from([
            "autoscaler",
            "serve",
            "--policy",
            "static:4",
            "--max-replicas",
            "7",
            "--interval",
            "5s",
            "--max-utilization",
            "0.8",
            "--scale-down-tolerance",
            "0.2",
        ])
        .unwrap();
        let Command::Serve(c) = cli.command else {
            panic!("not serve")
        };
        let s = c.validate().unwrap();
        assert_eq!(s.policy, PolicySpec::Static(4));
        assert_eq!(s.tuning.decision.max_replicas, 7);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.tuning.decision.max_utilization, 0.8);
        assert_eq!(s.tuning.decision.scale_down_tolerance, 0.2);
        let cli = Cli::try_parse_from(["autoscaler", "serve", "--safety-margin", "0"]).unwrap();
        let Command::Serve(c) = cli.command else {
            panic!("not serve")
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("safetyMargin")
        );
        assert!(Cli::try_parse_from(["autoscaler", "serve", "--policy", "magic"]).is_err());
    }

    #[test]
    fn only_policies_that_activate_from_zero_take_a_minimum_of_zero() {
        let serve = |policy: &str| {
            let argv = [
                "autoscaler",
                "serve",
                "--policy",
                policy,
                "--min-warm-replicas",
            ];
            let cli = Cli::try_parse_from(argv.into_iter().chain(["0"])).unwrap();
            let Command::Serve(c) = cli.command else {
                panic!("not serve")
            };
            c.validate()
        };
        for policy in ["predictive", "queue"] {
            let s = serve(policy).unwrap();
            assert_eq!(s.tuning.decision.min_replicas, 0, "{policy}");
            assert_eq!(s.tuning.scale_to_zero_after, Duration::from_secs(300));
        }
        let err = serve("hpa").unwrap_err().to_string();
        assert!(
            err.starts_with("minWarmReplicas") && err.contains("HPAScaleToZero"),
            "{err}"
        );
    }

    #[test]
    fn the_state_store_is_chosen_and_checked() {
        let location = |extra: &[&str]| {
            let argv = [&["autoscaler", "serve"], extra].concat();
            let Command::Serve(c) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not serve")
            };
            c.validate().map(|s| s.large_scale_up_step)?;
            c.state.location(&c.deployment)
        };
        let default = StateLocation::ConfigMap("inference-autoscaler-state".into());
        assert_eq!(location(&[]).unwrap(), Some(default));
        let file = Some(StateLocation::File("/var/lib/a.json".into()));
        assert_eq!(
            location(&["--state-file", "/var/lib/a.json"]).unwrap(),
            file
        );
        assert_eq!(location(&["--state-store", "none"]).unwrap(), None);
        for (extra, flag) in [
            (&["--state-store", "file"][..], "--state-file"),
            (&["--state-configmap", "Not_Valid"], "--state-configmap"),
            (&["--state-save-interval", "0s"], "--state-save-interval"),
        ] {
            let err = location(extra).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{extra:?}: {err}");
        }
    }

    #[test]
    fn simulate_takes_several_policies() {
        let cli = Cli::try_parse_from([
            "autoscaler",
            "simulate",
            "--workload",
            "w.txt",
            "--policy",
            "hpa",
            "--policy",
            "predictive",
            "--policy",
            "static:3",
            "--policy",
            "queue",
        ])
        .unwrap();
        let Command::Simulate(s) = cli.command else {
            panic!("not simulate")
        };
        assert_eq!(s.policies.len(), 4);
        assert_eq!(s.policies[2], PolicySpec::Static(3));
        assert_eq!(s.validate().unwrap().sweep, None);
        let sweep = |points: &str| {
            let cli = Cli::try_parse_from([
                "autoscaler",
                "simulate",
                "--workload",
                "w.txt",
                "--policy",
                "hpa",
                "--sweep",
                "--sweep-points",
                points,
            ])
            .unwrap();
            let Command::Simulate(s) = cli.command else {
                panic!("not simulate")
            };
            s.validate().map(|o| o.sweep)
        };
        assert_eq!(sweep("5").unwrap(), Some(5));
        assert!(
            sweep("1")
                .unwrap_err()
                .to_string()
                .contains("--sweep-points")
        );
    }
}
