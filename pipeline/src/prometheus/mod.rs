//! `demo --prometheus`: a real Prometheus server next to the demo, scraping every service, with
//! the recording and alerting rules the Helm chart ships, so the dashboard's queries and the
//! alerts run against the same data they would in a cluster.
//!
//! The server runs on `127.0.0.1` with a temporary TSDB and configuration. Jobs are named as
//! in Kubernetes (`inference`, `dispatcher`, `load-tester`, `autoscaler`, plus `prometheus`
//! itself). The inference replicas come and go, so they are listed in a `file_sd_configs`
//! file rewritten (atomically) every time the pool publishes a new set. The server is killed
//! when the demo ends: its data lives in the temporary directory and goes with it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

mod sampler;

pub use sampler::{PROM_QUEUE, PROM_REPLICAS, PrometheusSampler};

/// Time Prometheus gets to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The inference replicas' targets, rewritten on every scale event.
const FILE_SD: &str = "inference-targets.json";
/// Every query the server answers, one JSON object a line (who asked what, and when).
const QUERY_LOG: &str = "queries.jsonl";

/// How to run the server.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// The `prometheus` executable (2.42 or later).
    pub binary: PathBuf,
    /// Folder of rule files (`*.yaml`), normally `helm/inference-metrics/rules`.
    pub rules_dir: PathBuf,
    /// Scrape and rule evaluation interval.
    pub scrape_interval: Duration,
    /// Every alert's `for:` is shortened to at most this; `None` keeps the rules as shipped.
    pub max_alert_for: Option<Duration>,
}

/// The services with a fixed address.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    pub dispatcher: SocketAddr,
    pub load_tester: SocketAddr,
    pub autoscaler: SocketAddr,
}

/// The files the configuration names.
#[derive(Debug, Clone)]
struct Files {
    /// A glob of rule files.
    rules: PathBuf,
    targets: PathBuf,
    query_log: PathBuf,
}

/// Every job with a fixed address: the services and the server itself.
#[derive(Debug, Clone, Copy)]
struct Jobs {
    prometheus: SocketAddr,
    services: Targets,
}

/// A running Prometheus server. Dropping it kills the server.
pub struct LocalPrometheus {
    url: String,
    child: Child,
    /// Holds the configuration, the rules, the targets file and the TSDB.
    dir: tempfile::TempDir,
    _targets: AbortOnDropHandle<()>,
}

impl LocalPrometheus {
    /// Writes the configuration, starts the server and waits until it is ready.
    pub async fn start(
        settings: &PrometheusSettings,
        targets: Targets,
        replicas: watch::Receiver<Vec<String>>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pipeline-prometheus-")
            .tempdir()
            .context("creating a directory for Prometheus")?;
        let rules = dir.path().join("rules");
        copy_rules(&settings.rules_dir, &rules, settings.max_alert_for)?;
        let file_sd = dir.path().join(FILE_SD);
        write_targets(&file_sd, &replicas.borrow())?;
        // Ask the kernel for a free port; Prometheus binds it a moment later.
        let addr = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
        let config = dir.path().join("prometheus.yml");
        let jobs = Jobs {
            prometheus: addr,
            services: targets,
        };
        let files = Files {
            rules: rules.join("*.yaml"),
            targets: file_sd.clone(),
            query_log: dir.path().join(QUERY_LOG),
        };
        std::fs::write(
            &config,
            render_config(settings.scrape_interval, &files, jobs),
        )?;
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(&settings.binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", settings.binary.display()))?;
        let mut prometheus = Self {
            url: format!("http://{addr}"),
            child,
            _targets: AbortOnDropHandle::new(tokio::spawn(follow_replicas(replicas, file_sd))),
            dir,
        };
        prometheus.wait_ready(&log).await?;
        Ok(prometheus)
    }

    /// Base URL of the server (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory holding the configuration and the TSDB.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The query log: one JSON object per query the server answered.
    pub fn query_log(&self) -> PathBuf {
        self.dir.path().join(QUERY_LOG)
    }

    /// Stops the server. It is killed rather than asked to stop: its TSDB is temporary, so
    /// there is nothing to flush.
    pub async fn stop(mut self) {
        if let Err(err) = self.child.kill().await {
            tracing::warn!(%err, "cannot stop Prometheus");
        }
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let ready = format!("{}/-/ready", self.url);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("Prometheus exited ({status}):\n{}", tail(log));
            }
            let answer = client.get(&ready).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "Prometheus not ready after {READY_TIMEOUT:?}:\n{}",
                    tail(log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The scrape configuration: one job per service, the replicas from the targets file.
fn render_config(interval: Duration, files: &Files, jobs: Jobs) -> String {
    let every = prom_duration(interval);
    // A scrape must end before the next one starts.
    let timeout = prom_duration(interval.mul_f64(0.9));
    let quoted = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let mut out = format!(
        "# Written by `pipeline demo --prometheus`; the job names are those of the chart.\n\
         global:\n  scrape_interval: {every}\n  scrape_timeout: {timeout}\n  \
         evaluation_interval: {every}\n  query_log_file: {}\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: inference\n    file_sd_configs:\n      - files: [{}]\n        \
         refresh_interval: {every}\n",
        quoted(&files.query_log),
        quoted(&files.rules),
        quoted(&files.targets),
    );
    let t = jobs.services;
    for (job, addr) in [
        ("dispatcher", t.dispatcher),
        ("load-tester", t.load_tester),
        ("autoscaler", t.autoscaler),
        ("prometheus", jobs.prometheus),
    ] {
        let _ = write!(
            out,
            "  - job_name: {job}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        );
    }
    out
}

/// `1500ms`: a duration Prometheus parses.
fn prom_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Copies every `*.yaml` of `from` (not its subfolders) into `to`, with each alert's `for:`
/// capped at `max_for` when given.
fn copy_rules(from: &Path, to: &Path, max_for: Option<Duration>) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let entries = std::fs::read_dir(from)
        .with_context(|| format!("reading rules from {}", from.display()))?;
    let mut copied = 0;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() || path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let text = match max_for {
            Some(cap) => cap_alert_for(&text, cap)
                .with_context(|| format!("rewriting {}", path.display()))?,
            None => text,
        };
        let name = path.file_name().context("rule file without a name")?;
        std::fs::write(to.join(name), text)?;
        copied += 1;
    }
    if copied == 0 {
        bail!("no rule file (*.yaml) in {}", from.display());
    }
    Ok(())
}

/// The rule file with every alert's `for:` at most `cap`.
pub fn cap_alert_for(text: &str, cap: Duration) -> anyhow::Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text)?;
    let groups = doc
        .get_mut("groups")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .context("no `groups` list")?;
    for group in groups {
        let Some(rules) = group
            .get_mut("rules")
            .and_then(serde_yaml::Value::as_sequence_mut)
        else {
            continue;
        };
        for rule in rules {
            let Some(hold) = rule.get_mut("for") else {
                continue;
            };
            let current = hold
                .as_str()
                .and_then(|s| humantime::parse_duration(s).ok());
            if current.is_none_or(|d| d > cap) {
                *hold = serde_yaml::Value::String(prom_duration(cap));
            }
        }
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// Rewrites the targets file whenever the pool publishes a new replica set.
async fn follow_replicas(mut replicas: watch::Receiver<Vec<String>>, file: PathBuf) {
    while replicas.changed().await.is_ok() {
        let urls = replicas.borrow_and_update().clone();
        if let Err(err) = write_targets(&file, &urls) {
            tracing::warn!(
                err = format!("{err:#}"),
                "cannot update Prometheus's targets"
            );
        }
    }
}

/// Writes a `file_sd_configs` file: `[{"targets": ["127.0.0.1:41234", ...]}]`. Written to a
/// temporary name and renamed, so Prometheus never reads half a file.
fn write_targets(file: &Path, base_urls: &[String]) -> anyhow::Result<()> {
    let targets: Vec<&str> = base_urls
        .iter()
        .map(|u| u.trim_start_matches("http://").trim_end_matches('/'))
        .collect();
    let body = serde_json::json!([{ "targets": targets, "labels": {} }]);
    let partial = file.with_extension("json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(&body)?)?;
    std::fs::rename(&partial, file)?;
    Ok(())
}

/// The last lines of Prometheus's log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Finds an executable named `name` in `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests;
