//! `pipeline demo`: flags and environment variables, validated once into [`DemoSettings`].
//!
//! The demo's defaults are chosen for a small machine (two cores): one worker per replica,
//! a dispatcher in capacity-bound mode (a drain rate well above what the replicas can do, at
//! most two requests in flight per replica, so the replicas set the pace and every added
//! replica shows in the queue), and an autoscaler that decides every 2 s with windows of
//! seconds rather than minutes (`demo-autoscaler.yaml`). The services' own flags remain
//! available for separate runs (`cargo run -p dispatcher -- --help`, ...).

use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use autoscaler::{ControllerSettings, PolicySpec, Tuning};
use clap::{Args, Parser, Subcommand};
use load_tester::Workload;

use crate::autoscale::state_file;
use crate::error::Error;
use crate::prometheus::{PrometheusSettings, find_on_path};
use crate::replica_pool::PoolSettings;
use crate::reshape;

/// The autoscaler tuning the demo uses unless `--autoscaler-config` names another.
pub const DEMO_TUNING: &str = include_str!("../demo-autoscaler.yaml");

/// Most replicas the pool accepts: each loads its own copy of the model.
pub const POOL_LIMIT: u32 = 16;

/// The `pipeline` binary.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline",
    version,
    about = "The whole pipeline in one process: inference replicas, dispatcher, load tester, autoscaler"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workload through a local replica pool, dispatcher and autoscaler; write a report.
    Demo(DemoArgs),
}

/// `pipeline demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Workload file: requests per second, one number per second.
    #[arg(long, env = "WORKLOAD_FILE", default_value = "workload.txt")]
    pub workload: PathBuf,
    /// Folder of images to send (.jpg .jpeg .png .webp), cycled through.
    #[arg(long, env = "IMAGES_DIR", default_value = "images")]
    pub images: PathBuf,
    /// Where the report folder is written.
    #[arg(
        long,
        visible_alias = "reports-dir",
        env = "REPORTS_DIR",
        default_value = "reports"
    )]
    pub out: PathBuf,
    /// Stretch (> 1) or compress (< 1) the workload in time, keeping its rates.
    #[arg(long, env = "DURATION_SCALE", default_value_t = 1.0)]
    pub duration_scale: f64,
    /// Multiply every rate of the workload (a slower machine: 0.5), keeping its timing.
    #[arg(long, env = "RATE_SCALE", default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Replicas at start, and the fewest the autoscaler may leave. 0 (with the predictive or
    /// queue scaler): no replica until work queues; the first requests wait a cold start.
    #[arg(long, env = "MIN_REPLICAS", default_value_t = 1)]
    pub min_replicas: u32,
    /// Most replicas the autoscaler may start.
    #[arg(long, env = "MAX_REPLICAS", default_value_t = 5)]
    pub max_replicas: u32,
    /// Inference worker threads per replica.
    #[arg(long, env = "REPLICA_WORKERS", default_value_t = NonZeroUsize::MIN)]
    pub replica_workers: NonZeroUsize,
    /// Items per second the dispatcher may send to the replicas (fractional allowed).
    #[arg(long, env = "DRAIN_RATE", default_value_t = 100.0)]
    pub drain_rate: f64,
    /// Requests in flight per replica; the dispatcher waits when every replica has this many.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 2)]
    pub max_in_flight: usize,
    /// Scaling policy: hpa (utilisation), predictive, queue, or static:N.
    #[arg(long, env = "SCALING_POLICY", default_value = "hpa")]
    pub scaler: PolicySpec,
    /// Time between the autoscaler's decisions.
    #[arg(long, env = "SCALE_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Autoscaler tuning (YAML, the keys of autoscaler/autoscaler.yaml) replacing the demo's
    /// built-in short windows; --min-replicas and --max-replicas still apply.
    #[arg(long, env = "AUTOSCALER_CONFIG")]
    pub autoscaler_config: Option<PathBuf>,
    /// Keep the predictive forecaster's state in this file: restored at start, saved at stop.
    #[arg(long, env = "AUTOSCALER_STATE_FILE")]
    pub autoscaler_state: Option<PathBuf>,
    /// After the last send, how long to wait for the queue to drain and the records to arrive.
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// How often queue length and replicas are sampled for the report.
    #[arg(long, env = "SAMPLE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// ONNX model every replica loads.
    #[arg(
        long,
        env = "MODEL_PATH",
        default_value = "inference/model/efficientnet-lite0.onnx"
    )]
    pub model: PathBuf,
    /// Class names of the model, one per line.
    #[arg(
        long,
        env = "LABELS_PATH",
        default_value = "inference/model/imagenet-labels.txt"
    )]
    pub labels: PathBuf,
    /// Run Prometheus (2.42+) on 127.0.0.1 scraping every service, with the chart's rules; the
    /// autoscaler then reads its telemetry from it. Needs `prometheus` on PATH or --prometheus-bin.
    #[arg(long, env = "DEMO_PROMETHEUS")]
    pub prometheus: bool,
    /// The Prometheus executable (implies --prometheus).
    #[arg(long, env = "PROMETHEUS_BIN")]
    pub prometheus_bin: Option<PathBuf>,
    /// Recording and alerting rules Prometheus loads (every *.yaml in the folder).
    #[arg(
        long,
        env = "PROMETHEUS_RULES",
        default_value = "helm/inference-metrics/rules"
    )]
    pub prometheus_rules: PathBuf,
    /// Prometheus's scrape and rule evaluation interval.
    #[arg(long, env = "SCRAPE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub scrape_interval: Duration,
    /// Shorten every alert's `for:` to at most this (the shipped rules wait one to two
    /// minutes, longer than a short run); unset keeps the rules as shipped.
    #[arg(long, env = "MAX_ALERT_FOR", value_parser = humantime::parse_duration)]
    pub max_alert_for: Option<Duration>,
}

/// Everything the demo runs with, validated.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// The workload, already scaled by `--duration-scale`.
    pub workload: Workload,
    pub images: PathBuf,
    pub reports_dir: PathBuf,
    pub pool: PoolSettings,
    /// The dispatcher's configuration; its report URL is set once the receiver is bound.
    pub dispatcher: dispatcher::Config,
    pub controller: ControllerSettings,
    pub drain_timeout: Duration,
    pub sample_interval: Duration,
    /// A Prometheus server to run next to the services (`--prometheus`).
    pub prometheus: Option<PrometheusSettings>,
}

impl DemoArgs {
    /// Reads the workload and the tuning and checks every setting.
    pub fn validate(&self) -> Result<DemoSettings, anyhow::Error> {
        let (min, max) = (self.min_replicas, self.max_replicas);
        if min < self.scaler.lowest_min_replicas() {
            return Err(Error::invalid(
                "min-replicas",
                format!(
                    "must be at least 1 with --scaler {} (the Kubernetes HPA does not scale to \
                     zero); --scaler predictive or queue start from 0",
                    self.scaler
                ),
            )
            .into());
        }
        if max < min || max > POOL_LIMIT {
            return Err(Error::invalid(
                "max-replicas",
                format!("must be in --min-replicas ({min})..={POOL_LIMIT}, got {max}"),
            )
            .into());
        }
        if let PolicySpec::Static(n) = self.scaler
            && !(min..=max).contains(&n)
        {
            return Err(Error::invalid(
                "scaler",
                format!("static:{n} is outside --min-replicas..=--max-replicas ({min}..={max})"),
            )
            .into());
        }
        for (flag, value) in [
            ("interval", self.interval),
            ("sample-interval", self.sample_interval),
            ("scrape-interval", self.scrape_interval),
        ] {
            if value.is_zero() {
                return Err(Error::invalid(flag, "must be > 0").into());
            }
        }
        for (flag, path) in [
            ("model", &self.model),
            ("labels", &self.labels),
            ("images", &self.images),
        ] {
            require_exists(flag, path)?;
        }
        let workload = Workload::load(&self.workload)?;
        let workload = reshape::scale_duration(&workload, self.duration_scale)?;
        let workload = reshape::scale_rates(&workload, self.rate_scale)?;
        Ok(DemoSettings {
            workload,
            images: self.images.clone(),
            reports_dir: self.out.clone(),
            pool: PoolSettings {
                min_replicas: min,
                max_replicas: max,
                inference: self.inference_config()?,
                deregistration_delay: Duration::from_millis(250),
            },
            dispatcher: self.dispatcher_config()?,
            controller: ControllerSettings {
                interval: self.interval,
                checkpoint: self.autoscaler_state.as_deref().map(state_file),
                ..ControllerSettings::new(self.scaler, self.tuning()?)
            },
            drain_timeout: self.drain_timeout,
            sample_interval: self.sample_interval,
            prometheus: self.prometheus_settings()?,
        })
    }

    /// `None` without `--prometheus` or `--prometheus-bin`; an error if no binary is found.
    fn prometheus_settings(&self) -> Result<Option<PrometheusSettings>, Error> {
        let binary = match (&self.prometheus_bin, self.prometheus) {
            (Some(binary), _) => binary.clone(),
            (None, true) => find_on_path("prometheus").ok_or_else(|| {
                Error::invalid(
                    "prometheus",
                    "no `prometheus` on PATH: install it (Debian: apt-get install prometheus) \
                     or pass --prometheus-bin",
                )
            })?,
            (None, false) => return Ok(None),
        };
        require_exists("prometheus-bin", &binary)?;
        require_exists("prometheus-rules", &self.prometheus_rules)?;
        Ok(Some(PrometheusSettings {
            binary,
            rules_dir: self.prometheus_rules.clone(),
            scrape_interval: self.scrape_interval,
            max_alert_for: self.max_alert_for,
        }))
    }

    /// Every replica's configuration: the service's own defaults (queue, limits, timeouts)
    /// with the demo's model and worker count.
    fn inference_config(&self) -> anyhow::Result<inference::Config> {
        let mut model = OsString::from("--model=");
        model.push(&self.model);
        let mut labels = OsString::from("--labels=");
        labels.push(&self.labels);
        let config = inference::Config::try_parse_from([
            OsString::from("inference"),
            OsString::from("--listen=127.0.0.1:0"),
            OsString::from(format!("--workers={}", self.replica_workers)),
            model,
            labels,
        ])?;
        Ok(config)
    }

    /// The dispatcher's own defaults, with the demo's drain settings and short shutdown.
    fn dispatcher_config(&self) -> anyhow::Result<dispatcher::Config> {
        let mut config = dispatcher::Config::try_parse_from([
            "dispatcher",
            "--listen",
            "127.0.0.1:0",
            "--drain-rate",
            &self.drain_rate.to_string(),
            "--max-in-flight",
            &self.max_in_flight.to_string(),
            // Replaced by the load tester's receiver once it is bound.
            "--report-url",
            "http://127.0.0.1:1/storeLatency",
            // Within the load tester's grace period after Ctrl-C, so that the records of
            // items cut short still reach it.
            "--shutdown-timeout",
            "1500ms",
            "--report-flush-timeout",
            "1s",
            // A replica being started or stopped is out of rotation briefly, not for 5 s.
            "--eject-duration",
            "1s",
        ])?;
        // Scaled to zero, the dispatcher stays ready and queues until the first replica is.
        config.ready_without_endpoints = self.min_replicas == 0;
        config.validate()?;
        Ok(config)
    }

    fn tuning(&self) -> anyhow::Result<Tuning> {
        let mut tuning = match &self.autoscaler_config {
            Some(path) => Tuning::load(Some(path), &Default::default())?,
            None => Tuning::from_yaml(DEMO_TUNING, "demo-autoscaler.yaml")?,
        };
        tuning.decision.min_replicas = self.min_replicas;
        tuning.decision.max_replicas = self.max_replicas;
        Ok(tuning)
    }
}

fn require_exists(flag: &'static str, path: &Path) -> Result<(), Error> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::invalid(
            flag,
            format!(
                "{} does not exist (run from the repository root, or pass the path)",
                path.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `pipeline demo` with the repository's files, then `extra` (which may replace them).
    fn args(extra: &[&str]) -> Result<DemoArgs, clap::Error> {
        let root = root();
        let mut argv = vec!["pipeline".to_owned(), "demo".to_owned()];
        for (flag, path) in [
            ("--workload", "workload.txt"),
            ("--images", "images"),
            ("--model", "inference/model/efficientnet-lite0.onnx"),
            ("--labels", "inference/model/imagenet-labels.txt"),
            ("--prometheus-rules", "helm/inference-metrics/rules"),
        ] {
            if !extra.contains(&flag) {
                argv.extend([flag.to_owned(), root.join(path).display().to_string()]);
            }
        }
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        let Command::Demo(args) = Cli::try_parse_from(argv)?.command;
        Ok(args)
    }

    #[test]
    fn defaults_make_a_small_machine_scale() {
        let s = args(&[]).unwrap().validate().unwrap();
        assert_eq!((s.pool.min_replicas, s.pool.max_replicas), (1, 5));
        assert_eq!(s.pool.inference.worker_count().get(), 1);
        assert_eq!(s.controller.policy, PolicySpec::Hpa);
        assert_eq!(s.controller.interval, Duration::from_secs(2));
        assert_eq!(s.controller.tuning.decision.max_replicas, 5);
        // Capacity-bound: the drain rate is far above what five replicas can do.
        assert!(s.dispatcher.drain_rate >= 100.0);
        assert_eq!(s.dispatcher.max_in_flight, 2);
        let root_workload = Workload::load(&root().join("workload.txt")).unwrap();
        assert_eq!(s.workload, root_workload);
        assert!(s.prometheus.is_none());
        // Short windows: a scale-down within seconds, not the API default of five minutes.
        let down = &s.controller.tuning.hpa_behavior.scale_down;
        assert!(down.stabilization_window <= Duration::from_secs(20));
    }

    #[test]
    fn flags_reach_the_services() {
        let s = args(&[
            "--min-replicas",
            "2",
            "--max-replicas",
            "3",
            "--scaler",
            "static:3",
            "--drain-rate",
            "7.5",
            "--max-in-flight",
            "1",
            "--replica-workers",
            "2",
            "--duration-scale",
            "2",
            "--rate-scale",
            "0.5",
            "--interval",
            "500ms",
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!((s.pool.min_replicas, s.pool.max_replicas), (2, 3));
        let d = &s.controller.tuning.decision;
        assert_eq!((d.min_replicas, d.max_replicas), (2, 3));
        assert_eq!(s.controller.policy, PolicySpec::Static(3));
        assert_eq!(s.dispatcher.drain_rate, 7.5);
        assert_eq!(s.dispatcher.max_in_flight, 1);
        assert_eq!(s.pool.inference.worker_count().get(), 2);
        assert_eq!(s.controller.interval, Duration::from_millis(500));
        let original = Workload::load(&root().join("workload.txt")).unwrap();
        assert_eq!(s.workload.seconds(), original.seconds() * 2);
        assert_eq!(
            s.workload.peak(),
            (f64::from(original.peak()) * 0.5).round() as u32
        );
    }

    #[test]
    fn predictive_and_queue_start_from_zero_replicas() {
        for scaler in ["predictive", "queue"] {
            let s = args(&["--min-replicas", "0", "--scaler", scaler])
                .unwrap()
                .validate()
                .unwrap();
            assert_eq!(s.pool.min_replicas, 0, "{scaler}");
            assert_eq!(s.controller.tuning.decision.min_replicas, 0);
            assert!(s.dispatcher.ready_without_endpoints);
            // The demo's idle period is seconds, not the service's five minutes.
            assert!(s.controller.tuning.scale_to_zero_after <= Duration::from_secs(10));
        }
        let warm = args(&[]).unwrap().validate().unwrap();
        assert!(!warm.dispatcher.ready_without_endpoints);
    }

    #[test]
    fn prometheus_takes_the_chart_rules_and_any_binary() {
        let s = args(&["--prometheus-bin", "/bin/sh", "--max-alert-for", "5s"])
            .unwrap()
            .validate()
            .unwrap();
        let p = s.prometheus.unwrap();
        assert_eq!(p.binary, Path::new("/bin/sh"));
        assert!(p.rules_dir.ends_with("helm/inference-metrics/rules"));
        assert_eq!(p.scrape_interval, Duration::from_secs(1));
        assert_eq!(p.max_alert_for, Some(Duration::from_secs(5)));
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--min-replicas", "0"], "--min-replicas"),
            (
                &["--min-replicas", "0", "--scaler", "hpa"],
                "the Kubernetes HPA does not scale to zero",
            ),
            (&["--max-replicas", "17"], "--max-replicas"),
            (
                &["--min-replicas", "3", "--max-replicas", "2"],
                "--max-replicas",
            ),
            (&["--scaler", "static:9"], "--scaler"),
            (&["--interval", "0s"], "--interval"),
            (&["--duration-scale", "0"], "--duration-scale"),
            (&["--rate-scale=-1"], "--rate-scale"),
            (&["--drain-rate", "0"], "--drain-rate"),
            (&["--model", "/nonexistent.onnx"], "--model"),
            (&["--images", "/nonexistent"], "--images"),
        ];
        for (extra, flag) in cases {
            let err = args(extra).unwrap().validate().unwrap_err();
            assert!(format!("{err:#}").contains(flag), "{extra:?}: {err:#}");
        }
        let err = args(&["--prometheus-bin", "/nonexistent/prometheus"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{err:#}").contains("--prometheus-bin"), "{err:#}");
        assert!(args(&["--scaler", "magic"]).is_err());
        assert!(args(&["--replica-workers", "0"]).is_err());
    }
}
