//! Command-line and environment configuration, validated once into [`Settings`].
//!
//! Every setting has a long flag, an environment variable (what the Helm chart sets) and a
//! default; the rest of the crate only ever sees the validated [`Settings`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use reqwest::Url;

use crate::upstream_protocol::{ProtocolKind, UpstreamProtocol, V2Bytes, V2Upstream};

/// The dispatcher's configuration (`dispatcher --help`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Bounded queue drained at a paced rate into inference, with latency reporting"
)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Base URL of an inference endpoint (repeatable; the env var is comma-separated).
    /// Ignored when --inference-dns is set.
    #[arg(
        long = "inference-url",
        env = "INFERENCE_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8000"
    )]
    pub inference_urls: Vec<String>,

    /// `host:port` of a headless Service, resolved to every pod address every --dns-refresh.
    #[arg(long, env = "INFERENCE_DNS")]
    pub inference_dns: Option<String>,

    /// How often --inference-dns is resolved again.
    #[arg(long, env = "DNS_REFRESH", default_value = "5s", value_parser = humantime::parse_duration)]
    pub dns_refresh: Duration,

    /// What the upstream speaks: `harness` (this project's inference, POST /infer, GET /readyz)
    /// or `v2` (an Open Inference Protocol server: Triton, KServe, MLServer).
    #[arg(long, env = "UPSTREAM_PROTOCOL", value_enum, default_value = "harness")]
    pub upstream_protocol: ProtocolKind,

    /// The model a v2 upstream serves (required with --upstream-protocol v2).
    #[arg(long, env = "MODEL_NAME")]
    pub model_name: Option<String>,

    /// How a v2 upstream gets the image: `binary` (raw bytes, the binary tensor extension:
    /// Triton) or `base64` (base64 text in JSON, content_type base64: MLServer).
    #[arg(long, env = "V2_BYTES", value_enum, default_value = "binary")]
    pub v2_bytes: V2Bytes,

    /// Name of the v2 model's BYTES input the image goes to.
    #[arg(long, env = "V2_INPUT", default_value = "image")]
    pub v2_input: String,

    /// A v2 output to ask for as a top-1 classification (Triton's classification extension);
    /// unset: every output is returned and the label read from them.
    #[arg(long, env = "V2_CLASSIFICATION_OUTPUT")]
    pub v2_classification_output: Option<String>,

    /// Items per second the drain sends upstream (fractional allowed).
    #[arg(long, env = "DRAIN_RATE", default_value_t = 2.0)]
    pub drain_rate: f64,

    /// Upstream requests in flight per inference endpoint; when every endpoint is at this limit
    /// the drain waits, so the pods' capacity sets the pace.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: usize,

    /// Items the queue holds before /enqueue answers 503.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 10_000)]
    pub queue_capacity: usize,

    /// Total base64 bytes the queue holds before /enqueue answers 503.
    #[arg(long, env = "QUEUE_MAX_BYTES", default_value_t = 268_435_456)]
    pub queue_max_bytes: usize,

    /// Timeout of one upstream attempt (connect, send, read the answer).
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Attempts per item, the first included.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Wait before the first retry; doubles with every further retry.
    #[arg(long, env = "RETRY_BACKOFF", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub retry_backoff: Duration,

    /// Answer /readyz with 200 while accepting even when no inference endpoint is ready: for
    /// inference scaled to zero, where queued work is what wakes it (the items wait in the
    /// queue until a replica is ready).
    #[arg(long, env = "READY_WITHOUT_ENDPOINTS")]
    pub ready_without_endpoints: bool,

    /// How long a failing endpoint is taken out of rotation before it is probed again.
    #[arg(long, env = "EJECT_DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub eject_duration: Duration,

    /// Where latency records are POSTed (the load tester's /storeLatency); "" disables reporting.
    #[arg(
        long,
        env = "REPORT_URL",
        default_value = "http://127.0.0.1:3003/storeLatency"
    )]
    pub report_url: String,

    /// Records per report request; a full batch is sent at once.
    #[arg(long, env = "REPORT_BATCH_SIZE", default_value_t = 200)]
    pub report_batch_size: usize,

    /// A partial batch is sent after this long.
    #[arg(long, env = "REPORT_INTERVAL", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub report_interval: Duration,

    /// Latency records kept until the load tester has them (pushed to --report-url or pulled
    /// with GET /records); beyond it the oldest are dropped and counted.
    #[arg(long, env = "OUTBOX_CAPACITY", default_value_t = 100_000)]
    pub outbox_capacity: usize,

    /// Memory the kept latency records may hold (approximate, bytes); beyond it the oldest are
    /// dropped and counted.
    #[arg(long, env = "OUTBOX_MAX_BYTES", default_value_t = 67_108_864)]
    pub outbox_max_bytes: usize,

    /// A latency record nobody collected (by push or pull) within this long is dropped and
    /// counted (reason `retention`).
    #[arg(long, env = "RECORD_RETENTION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub record_retention: Duration,

    /// On SIGTERM, how long to keep draining before what is left is reported as `shutdown`.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// After the drain has stopped, how long to keep trying to deliver the outbox.
    #[arg(long, env = "REPORT_FLUSH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub report_flush_timeout: Duration,

    /// Largest accepted /enqueue body.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16_777_216)]
    pub max_body_bytes: usize,

    /// HTTP requests served at once; beyond it the server answers 503 at once.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside what the setting allows.
    #[error("invalid --{flag}: {reason}")]
    Invalid {
        flag: &'static str,
        reason: &'static str,
    },
    /// An unusable URL.
    #[error("invalid --{flag}: {source}")]
    Url {
        flag: &'static str,
        #[source]
        source: UrlError,
    },
}

fn invalid(flag: &'static str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { flag, reason }
}

/// What [`Url::parse`] fails with (named through `FromStr`: the `url` crate is reqwest's).
pub type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why an inference or report address is unusable; each message starts with the address.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("{raw:?}: {source}")]
    Parse {
        raw: String,
        #[source]
        source: UrlParseError,
    },
    #[error("{raw:?}: only http:// URLs are supported")]
    NotHttp { raw: String },
    #[error("{raw:?}: no host")]
    NoHost { raw: String },
    #[error("{raw:?}: expected host:port")]
    NoPort { raw: String },
}

/// Where the inference endpoints come from, as configured on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredEndpoints {
    Static(Vec<Url>),
    Dns {
        host_port: String,
        refresh: Duration,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: ConfiguredEndpoints,
    pub upstream: UpstreamProtocol,
    /// Items per second; finite and > 0.
    pub drain_rate: f64,
    pub max_in_flight: usize,
    pub queue_capacity: usize,
    pub queue_max_bytes: usize,
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub eject_duration: Duration,
    /// `/readyz` says 200 with no ready endpoint (inference may be scaled to zero).
    pub ready_without_endpoints: bool,
    /// `None`: reporting disabled.
    pub report_url: Option<Url>,
    pub report_batch_size: usize,
    pub report_interval: Duration,
    pub outbox_capacity: usize,
    pub outbox_max_bytes: usize,
    pub record_retention: Duration,
    pub shutdown_timeout: Duration,
    pub report_flush_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
}

impl Config {
    /// Checks every setting and converts it into its domain type.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        if !(self.drain_rate.is_finite() && self.drain_rate > 0.0) {
            return Err(invalid("drain-rate", "must be a finite number > 0"));
        }
        positive("max-in-flight", self.max_in_flight)?;
        positive("queue-capacity", self.queue_capacity)?;
        positive("queue-max-bytes", self.queue_max_bytes)?;
        positive("max-attempts", self.max_attempts as usize)?;
        positive("report-batch-size", self.report_batch_size)?;
        positive("outbox-capacity", self.outbox_capacity)?;
        positive("outbox-max-bytes", self.outbox_max_bytes)?;
        positive("max-body-bytes", self.max_body_bytes)?;
        positive("max-concurrent-requests", self.max_concurrent_requests)?;
        nonzero("request-timeout", self.request_timeout)?;
        nonzero("report-interval", self.report_interval)?;
        nonzero("dns-refresh", self.dns_refresh)?;
        nonzero("record-retention", self.record_retention)?;
        Ok(Settings {
            endpoints: self.endpoints()?,
            upstream: self.upstream()?,
            drain_rate: self.drain_rate,
            max_in_flight: self.max_in_flight,
            queue_capacity: self.queue_capacity,
            queue_max_bytes: self.queue_max_bytes,
            request_timeout: self.request_timeout,
            max_attempts: self.max_attempts,
            retry_backoff: self.retry_backoff,
            eject_duration: self.eject_duration,
            ready_without_endpoints: self.ready_without_endpoints,
            report_url: self.report_url()?,
            report_batch_size: self.report_batch_size,
            report_interval: self.report_interval,
            outbox_capacity: self.outbox_capacity,
            outbox_max_bytes: self.outbox_max_bytes,
            record_retention: self.record_retention,
            shutdown_timeout: self.shutdown_timeout,
            report_flush_timeout: self.report_flush_timeout,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_requests: self.max_concurrent_requests,
        })
    }

    /// `--inference-dns` if given, else the `--inference-url` list.
    fn endpoints(&self) -> Result<ConfiguredEndpoints, ConfigError> {
        match &self.inference_dns {
            Some(host_port) => {
                if !host_port.contains(':') {
                    return Err(invalid("inference-dns", "expected host:port"));
                }
                Ok(ConfiguredEndpoints::Dns {
                    host_port: host_port.clone(),
                    refresh: self.dns_refresh,
                })
            }
            None => Ok(ConfiguredEndpoints::Static(
                self.inference_urls
                    .iter()
                    .map(|u| parse_http_url(u).map_err(url_error("inference-url")))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    /// The upstream protocol and, for v2, its model and input.
    fn upstream(&self) -> Result<UpstreamProtocol, ConfigError> {
        let name = |flag, value: &str| {
            let value = value.trim();
            let ok = !value.is_empty() && !value.contains(['/', '?', '#', ' ']);
            ok.then(|| value.to_owned())
                .ok_or_else(|| invalid(flag, "must be a non-empty name without / ? # or spaces"))
        };
        Ok(match self.upstream_protocol {
            ProtocolKind::Harness => UpstreamProtocol::Harness,
            ProtocolKind::V2 => UpstreamProtocol::V2(V2Upstream {
                model: name("model-name", self.model_name.as_deref().unwrap_or_default())?,
                bytes: self.v2_bytes,
                input: name("v2-input", &self.v2_input)?,
                classification_output: self
                    .v2_classification_output
                    .as_deref()
                    .filter(|o| !o.trim().is_empty())
                    .map(|o| name("v2-classification-output", o))
                    .transpose()?,
            }),
        })
    }

    /// `None` when `--report-url` is empty: reporting disabled.
    fn report_url(&self) -> Result<Option<Url>, ConfigError> {
        match self.report_url.trim() {
            "" => Ok(None),
            url => Ok(Some(parse_http_url(url).map_err(url_error("report-url"))?)),
        }
    }
}

fn positive(flag: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(flag, "must be at least 1"));
    }
    Ok(())
}

fn nonzero(flag: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(invalid(flag, "must be longer than zero"));
    }
    Ok(())
}

fn url_error(flag: &'static str) -> impl Fn(UrlError) -> ConfigError {
    move |source| ConfigError::Url { flag, source }
}

/// An absolute `http://` URL (the dispatcher is built without TLS).
pub(crate) fn parse_http_url(raw: &str) -> Result<Url, UrlError> {
    let url = Url::parse(raw.trim()).map_err(|source| UrlError::Parse {
        raw: raw.to_owned(),
        source,
    })?;
    if url.scheme() != "http" {
        return Err(UrlError::NotHttp {
            raw: raw.to_owned(),
        });
    }
    if url.host_str().is_none() {
        return Err(UrlError::NoHost {
            raw: raw.to_owned(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
