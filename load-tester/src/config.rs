//! Command line and environment: `load-tester serve` ([`ServeConfig`]) and `load-tester run`
//! ([`RunArgs`]), sharing the generator settings ([`GeneratorArgs`]). Every setting has a long
//! flag, an environment variable and a default; [`GeneratorArgs::settings`] validates them
//! into domain types once, at start-up.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::base_url::parse_base_url;
use crate::delivery::RecordDelivery;
use crate::error::Error;
use crate::sampler::SeriesKind;
use crate::schedule::{ArrivalProcess, Arrivals};
use crate::target::{DirectTarget, TargetKind, V2Bytes, V2Model};
use crate::threshold::Threshold;

/// The `load-tester` command line.
#[derive(Debug, Parser)]
#[command(
    name = "load-tester",
    version,
    about = "Open-loop load generator, latency store and reports for the inference harness"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (POST /runLoadTest, /storeLatency, /generateReport, ...).
    Serve(ServeConfig),
    /// Run one test from the command line and write its report.
    Run(RunArgs),
    /// Rebuild a run's report from its journal (after a crash, or to redo it), collecting the
    /// records the dispatcher still holds for the run.
    Report(ReportArgs),
}

/// Settings of the generator, shared by `serve` (as defaults for each run) and `run`.
#[derive(Debug, Clone, Args)]
pub struct GeneratorArgs {
    /// Base URL of the dispatcher (requests go to <url>/enqueue, samples to <url>/stats).
    #[arg(
        long = "dispatcher-url",
        visible_alias = "dispatcher",
        env = "DISPATCHER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub dispatcher_url: String,
    /// What the requests go to: `dispatcher` (its /enqueue; records come back from it), or a
    /// model server directly: `infer` (this project's inference, POST <url>/infer) or `v2` (an
    /// Open Inference Protocol server: Triton, KServe, MLServer).
    #[arg(long, env = "TARGET", value_enum, default_value = "dispatcher")]
    pub target: TargetKind,
    /// Base URL of the target; required with --target infer|v2. With --target dispatcher it
    /// replaces --dispatcher-url when given.
    #[arg(long, env = "TARGET_URL")]
    pub url: Option<String>,
    /// The model of a v2 target (required with --target v2).
    #[arg(long = "model-name", env = "MODEL_NAME")]
    pub model_name: Option<String>,
    /// How a v2 target gets the image: `binary` (the binary tensor extension: Triton) or
    /// `base64` (base64 text in JSON, content_type base64: MLServer).
    #[arg(
        long = "v2-bytes",
        env = "V2_BYTES",
        value_enum,
        default_value = "binary"
    )]
    pub v2_bytes: V2Bytes,
    /// Name of the v2 model's BYTES input the image goes to.
    #[arg(long = "v2-input", env = "V2_INPUT", default_value = "image")]
    pub v2_input: String,
    /// A v2 output to ask for as a top-1 classification (Triton's classification extension);
    /// unset: every output is returned and the label read from them.
    #[arg(long = "v2-classification-output", env = "V2_CLASSIFICATION_OUTPUT")]
    pub v2_classification_output: Option<String>,
    /// Workload file: requests per second, one number per second.
    #[arg(long, env = "WORKLOAD_FILE", default_value = "workload.txt")]
    pub workload: PathBuf,
    /// Folder of images to send (.jpg .jpeg .png .webp), cycled through.
    #[arg(long, env = "IMAGES_DIR", default_value = "images")]
    pub images: PathBuf,
    /// Where reports are written (one folder per run).
    #[arg(
        long = "reports-dir",
        visible_alias = "out",
        env = "REPORTS_DIR",
        default_value = "reports"
    )]
    pub reports_dir: PathBuf,
    /// Arrival process inside each second.
    #[arg(long, env = "ARRIVALS", value_enum, default_value = "uniform")]
    pub arrivals: ArrivalProcess,
    /// Seed of the Poisson arrivals.
    #[arg(long, env = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// Re-encode every image as an N×N JPEG before the test (default: send originals).
    #[arg(long, env = "RESIZE")]
    pub resize: Option<u32>,
    /// Cap on the number of requests (default: the whole workload).
    #[arg(long = "max-images", env = "MAX_IMAGES")]
    pub max_images: Option<u64>,
    /// How long to wait for outstanding records after the last send.
    #[arg(long = "drain-timeout", env = "DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Most requests in flight at once; beyond it sends wait (recorded as schedule lag).
    #[arg(long, env = "CONCURRENCY", default_value_t = 10_000)]
    pub concurrency: usize,
    /// Timeout of one /enqueue request.
    #[arg(long = "request-timeout", env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How often the dispatcher's /stats and --sample-metric URLs are sampled.
    #[arg(long = "sample-interval", env = "SAMPLE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,
    /// How latency records come back: `auto` pulls them from the dispatcher's GET /records
    /// when it offers it and takes pushes to /storeLatency too; `pull` requires GET /records;
    /// `push` only takes what the dispatcher posts (its --report-url).
    #[arg(
        long = "record-delivery",
        env = "RECORD_DELIVERY",
        value_enum,
        default_value = "auto"
    )]
    pub record_delivery: RecordDelivery,
    /// Extra series for the queue/replicas plot, as URL#metric (a Prometheus text endpoint
    /// and a metric summed over its labels). Repeatable; env comma-separated.
    #[arg(long = "sample-metric", env = "SAMPLE_METRICS", value_delimiter = ',')]
    pub sample_metrics: Vec<String>,
}

/// `load-tester serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on [default: 0.0.0.0:3003 with a token or --allow-unauthenticated,
    /// else 127.0.0.1:3003].
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Bearer token required by POST /runLoadTest and POST /generateReport.
    #[arg(long = "auth-token", env = "AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Serve the control endpoints without a token on a non-loopback address.
    #[arg(long = "allow-unauthenticated", env = "ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Largest accepted request body (a /storeLatency batch, a workload array).
    #[arg(long = "max-body-bytes", env = "MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Timeout of one HTTP request to this server.
    #[arg(long = "http-timeout", env = "HTTP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http_timeout: Duration,
    /// Most requests this server handles at once; beyond it: 503 + Retry-After.
    #[arg(
        long = "max-concurrent-requests",
        env = "MAX_CONCURRENT_REQUESTS",
        default_value_t = 512
    )]
    pub max_concurrent_requests: usize,
}

impl ServeConfig {
    /// The port of `serve` when `--listen` is not given.
    pub const DEFAULT_PORT: u16 = 3003;

    /// Where `serve` listens: `--listen`, else every interface when the control endpoints are
    /// protected by a token (or opened on purpose), and loopback only when they are not, so
    /// that `load-tester serve` with no flags starts, reachable from this machine only.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let ip = if self.auth_token.is_some() || self.allow_unauthenticated {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::LOCALHOST
            };
            SocketAddr::from((ip, Self::DEFAULT_PORT))
        })
    }
}

/// `load-tester run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address of the embedded /storeLatency receiver (the dispatcher's --report-url).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3003")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Exit non-zero when a condition holds, e.g. `p99>500ms`, `failed>0`,
    /// `failureRate>1%`, `enqueue.p99>=50ms`. Repeatable.
    #[arg(long = "fail-on", env = "FAIL_ON", value_delimiter = ',', value_parser = Threshold::parse)]
    pub fail_on: Vec<Threshold>,
}

/// `load-tester report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The run's report folder (`<reports-dir>/<runId>`, holding `journal.jsonl`); the report
    /// is rebuilt into it. Required: there is no sensible default.
    #[arg(long = "run-dir", env = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Whether to collect the records the dispatcher still holds for the run: `auto` tries when
    /// some requests have no known fate and carries on without them if the dispatcher cannot
    /// be reached; `require` fails then; `off` never asks.
    #[arg(long, env = "REPORT_COLLECT", value_enum, default_value = "auto")]
    pub collect: Collect,
    /// The dispatcher to collect from [default: the run's own, from the journal].
    #[arg(
        long = "dispatcher-url",
        visible_alias = "dispatcher",
        env = "REPORT_DISPATCHER_URL"
    )]
    pub dispatcher_url: Option<String>,
    /// The longest collecting may take.
    #[arg(long = "collect-timeout", env = "REPORT_COLLECT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub collect_timeout: Duration,
}

/// `--collect` of `load-tester report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Collect {
    Auto,
    Require,
    Off,
}

/// A Prometheus metric to sample during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSource {
    pub url: Url,
    pub metric: String,
    pub kind: SeriesKind,
}

/// Validated generator settings.
#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub dispatcher_url: Url,
    /// `Some` when the run load-tests a model server directly (`--target infer|v2`).
    pub direct: Option<DirectTarget>,
    pub arrivals: Arrivals,
    pub concurrency: usize,
    pub sample_metrics: Vec<MetricSource>,
}

impl GeneratorArgs {
    /// Validates the settings that are not already typed by clap.
    pub fn settings(&self) -> Result<GeneratorSettings, Error> {
        if self.concurrency == 0 {
            return Err(Error::Config("--concurrency must be at least 1".into()));
        }
        if self.request_timeout.is_zero() || self.sample_interval.is_zero() {
            return Err(Error::Config(
                "--request-timeout and --sample-interval must be above zero".into(),
            ));
        }
        let sample_metrics = self
            .sample_metrics
            .iter()
            .map(|spec| parse_metric_source(spec))
            .collect::<Result<_, _>>()?;
        let url = self.url.as_deref().filter(|u| !u.trim().is_empty());
        Ok(GeneratorSettings {
            dispatcher_url: parse_base_url(match (self.target, url) {
                (TargetKind::Dispatcher, Some(url)) => url,
                _ => &self.dispatcher_url,
            })?,
            direct: self.direct_target(url)?,
            arrivals: self.arrivals.with_seed(self.seed),
            concurrency: self.concurrency,
            sample_metrics,
        })
    }
}

impl GeneratorArgs {
    /// The model server of `--target infer|v2`, `None` for the dispatcher.
    pub fn direct_target(&self, url: Option<&str>) -> Result<Option<DirectTarget>, Error> {
        let required = |what: &str| Error::Config(format!("--target {what} needs --url"));
        Ok(match self.target {
            TargetKind::Dispatcher => None,
            TargetKind::Infer => Some(DirectTarget::Infer {
                url: parse_base_url(url.ok_or_else(|| required("infer"))?)?,
            }),
            TargetKind::V2 => Some(DirectTarget::V2 {
                url: parse_base_url(url.ok_or_else(|| required("v2"))?)?,
                model: V2Model {
                    model: v2_name("--model-name", self.model_name.as_deref().unwrap_or(""))?,
                    bytes: self.v2_bytes,
                    input: v2_name("--v2-input", &self.v2_input)?,
                    classification_output: self
                        .v2_classification_output
                        .as_deref()
                        .filter(|o| !o.trim().is_empty())
                        .map(|o| v2_name("--v2-classification-output", o))
                        .transpose()?,
                },
            }),
        })
    }
}

/// A model, input or output name: it goes into a URL path or a JSON string as is.
fn v2_name(flag: &str, value: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() || value.contains(['/', '?', '#', ' ']) {
        return Err(Error::Config(format!(
            "{flag} must be a non-empty name without / ? # or spaces (required with --target v2)"
        )));
    }
    Ok(value.to_owned())
}

/// `URL#metric`; series whose metric name mentions replicas go on the replicas axis.
fn parse_metric_source(spec: &str) -> Result<MetricSource, Error> {
    let (url, metric) = spec.rsplit_once('#').ok_or_else(|| {
        Error::Config(format!("--sample-metric expects URL#metric, got {spec:?}"))
    })?;
    if metric.is_empty()
        || !metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(Error::Config(format!(
            "--sample-metric: {metric:?} is not a metric name"
        )));
    }
    Ok(MetricSource {
        url: parse_base_url(url)?,
        metric: metric.to_owned(),
        kind: if metric.contains("replicas") {
            SeriesKind::Replicas
        } else {
            SeriesKind::Queue
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    // The clap enum of `--arrivals` was `ArrivalsArg`; it is now the domain's own name.
    use crate::schedule::ArrivalProcess as ArrivalsArg;

    #[test]
    fn defaults_follow_the_contract() {
        let cli = Cli::try_parse_from(["load-tester", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        // No flags: a token-less server on loopback, so that it starts.
        assert_eq!(serve.listen_addr().to_string(), "127.0.0.1:3003");
        assert_eq!(serve.generator.dispatcher_url, "http://127.0.0.1:8080");
        assert_eq!(serve.generator.workload, PathBuf::from("workload.txt"));
        assert_eq!(serve.generator.arrivals, ArrivalsArg::Uniform);
        assert!(serve.auth_token.is_none() && !serve.allow_unauthenticated);
        for (flags, listen) in [
            (&["--auth-token", "t"][..], "0.0.0.0:3003"),
            (&["--allow-unauthenticated"], "0.0.0.0:3003"),
            (&["--listen", "127.0.0.2:9"], "127.0.0.2:9"),
        ] {
            let argv = ["load-tester", "serve"].iter().chain(flags);
            let Command::Serve(serve) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("serve expected")
            };
            assert_eq!(serve.listen_addr().to_string(), listen, "{flags:?}");
        }

        let cli = Cli::try_parse_from([
            "load-tester",
            "run",
            "--dispatcher",
            "http://d:1",
            "--out",
            "r",
            "--arrivals",
            "poisson",
            "--seed",
            "9",
            "--fail-on",
            "p99>500ms",
            "--fail-on",
            "failed>0",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(run.listen.to_string(), "127.0.0.1:3003");
        assert_eq!(run.generator.reports_dir, PathBuf::from("r"));
        assert_eq!(run.fail_on.len(), 2);
        let settings = run.generator.settings().unwrap();
        assert_eq!(settings.arrivals, Arrivals::Poisson { seed: 9 });
        assert_eq!(settings.dispatcher_url.as_str(), "http://d:1/");
    }

    #[test]
    fn bad_settings_are_refused() {
        let parse = |args: &[&str]| {
            let mut all = vec!["load-tester", "run"];
            all.extend_from_slice(args);
            match Cli::try_parse_from(all).map(|c| c.command) {
                Ok(Command::Run(run)) => run
                    .generator
                    .settings()
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Ok(_) => unreachable!(),
                Err(e) => Err(e.to_string()),
            }
        };
        assert!(parse(&["--dispatcher", "ftp://x"]).is_err());
        assert!(parse(&["--dispatcher", "https://x"]).is_err());
        assert!(parse(&["--dispatcher", "not a url"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--arrivals", "bursty"]).is_err());
        assert!(parse(&["--drain-timeout", "soon"]).is_err());
        assert!(parse(&["--sample-metric", "http://a/metrics"]).is_err());
        assert!(
            parse(&[
                "--sample-metric",
                "http://a/metrics#autoscaler_desired_replicas"
            ])
            .is_ok()
        );
    }
}
