//! `demo --prometheus` against the real server: while a short overload runs through the
//! pipeline, every PromQL expression of the Grafana dashboard and every recording rule the
//! chart ships must return a non-empty, finite result; `promtool check metrics` must pass on
//! every service's `/metrics`; the queue-growth alert must fire; and the autoscaler must have
//! decided on telemetry it queried from Prometheus.
//!
//! Without `prometheus` and `promtool` on PATH the test fails when `CI` is set and is skipped
//! (loudly) otherwise.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "support/chart_queries.rs"]
mod chart_queries;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use pipeline::prometheus::find_on_path;
use pipeline::{Cli, Command, Services};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use chart_queries::{cluster_only, dashboard_queries, recording_rules};

/// Overload: a 25/s burst against a dispatcher that drains at most 15/s (`--drain-rate 15`,
/// so the overload does not depend on how fast this machine is): the queue grows for ten
/// seconds. Then a trickle keeps the rate windows populated while the checks run.
const WORKLOAD: &str = "5, 5, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25\n\
                        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3\n";
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tools, or `None` (with a loud message) when they are missing outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_on_path("prometheus"), find_on_path("promtool")) {
        (Some(prometheus), Some(promtool)) => Some((prometheus, promtool)),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set but `prometheus`/`promtool` are not on PATH (apt-get install prometheus)"
            )
        }
        _ => {
            // Straight to the stderr handle: the test harness captures `eprintln!` of a passing
            // test, and a skip must not go unnoticed.
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIPPED ====================\n\
                 tests/prometheus.rs needs `prometheus` and `promtool` on PATH\n\
                 (Debian: apt-get install prometheus). Set CI=1 to make this a failure.\n\
                 ================================================="
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_rules_alerts_and_autoscaler_work_against_a_real_prometheus() {
    let Some((prometheus_bin, promtool)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("workload.txt");
    std::fs::write(&workload, WORKLOAD).unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in ["grace_hopper.jpg", "rocket.jpg"] {
        std::fs::copy(root().join("images").join(name), images.join(name)).unwrap();
    }
    let root = root();
    let path = |p: &Path| p.display().to_string();
    let argv = [
        "pipeline".to_owned(),
        "demo".to_owned(),
        format!("--workload={}", path(&workload)),
        format!("--images={}", path(&images)),
        format!("--out={}", path(&dir.path().join("reports"))),
        format!(
            "--model={}",
            path(&root.join("inference/model/efficientnet-lite0.onnx"))
        ),
        format!(
            "--labels={}",
            path(&root.join("inference/model/imagenet-labels.txt"))
        ),
        format!("--prometheus-bin={}", path(&prometheus_bin)),
        format!(
            "--prometheus-rules={}",
            path(&root.join("helm/inference-metrics/rules"))
        ),
        "--max-alert-for=3s".to_owned(),
        "--scaler=predictive".to_owned(),
        "--max-replicas=2".to_owned(),
        "--interval=1s".to_owned(),
        "--drain-rate=15".to_owned(),
    ];
    let Command::Demo(args) = Cli::try_parse_from(argv).unwrap().command;
    let settings = args.validate().unwrap();
    let arrival_query = settings.controller.tuning.queries.arrival_rate.clone();
    let planned = settings.workload.total();

    let (tx, rx) = tokio::sync::oneshot::channel();
    let demo = tokio::spawn(pipeline::run_observed(
        settings,
        std::future::pending(),
        move |services| {
            let _ = tx.send(services);
        },
    ));
    let services = rx.await.expect("the demo did not start");
    let prom = Prom::new(services.prometheus.clone().expect("no Prometheus URL"));

    let alert = prom
        .wait_for_firing("QueueGrowing", Duration::from_secs(90))
        .await;
    println!("QueueGrowing firing: {alert}");
    check_metrics_pages(&promtool, &services).await;
    let failures = prom
        .check_all(&dashboard_queries(), &recording_rules())
        .await;
    assert!(
        failures.is_empty(),
        "{} failing expression(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The pool grows under this load; Prometheus must follow it through the targets file.
    let replicas_seen = prom
        .wait_for_value(
            "max_over_time(count(up{job=\"inference\"} == 1)[5m:1s])",
            |n| n > 1.0,
            Duration::from_secs(60),
        )
        .await;
    let autoscaler = metrics_text(&services.autoscaler).await;
    // Read while the server runs: its directory goes when the demo ends.
    let query_log = std::fs::read_to_string(services.prometheus_query_log.as_ref().unwrap())
        .unwrap_or_default();

    let outcome = demo.await.unwrap().unwrap();
    let s = &outcome.load.stats;
    assert_eq!(s.sent, planned);
    assert_eq!(s.sent, s.succeeded + s.failed + s.rejected + s.send_errors);
    assert_eq!(s.missing, 0);

    assert!(outcome.replica_range.1 > 1, "{:?}", outcome.scale_events);
    println!("Prometheus saw up to {replicas_seen} replicas");
    // The autoscaler decided on values it queried from this Prometheus.
    let asked = query_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|entry| entry["params"]["query"] == arrival_query.as_str())
        .count();
    assert!(
        asked > 3,
        "the autoscaler's arrival-rate query ran {asked} time(s)"
    );
    let observed = sample(&autoscaler, "autoscaler_observed_arrival_rate");
    assert!(observed > 0.0, "observed arrival rate {observed}");
    assert!(sample(&autoscaler, "autoscaler_decisions_total") > 3.0);
    assert_eq!(
        sample(&autoscaler, "autoscaler_telemetry_errors_total"),
        0.0
    );
}

/// A Prometheus HTTP API client.
struct Prom {
    client: reqwest::Client,
    url: String,
}

impl Prom {
    fn new(url: String) -> Self {
        Self {
            client: reqwest::Client::new(),
            url,
        }
    }

    /// `data` of an instant query, or the error Prometheus gave.
    async fn query(&self, promql: &str) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", promql)],
        )
        .unwrap();
        let body: Value = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].clone())
    }

    /// The one value of a query (panics otherwise).
    async fn scalar(&self, promql: &str) -> f64 {
        let data = self.query(promql).await.unwrap();
        let values = finite_values(&data).unwrap_or_else(|e| panic!("{promql}: {e}"));
        assert_eq!(values.len(), 1, "{promql}: {data}");
        values[0]
    }

    /// Runs every expression (retrying for a few seconds: a series can need one more scrape
    /// or rule evaluation) and returns the ones that never gave a non-empty, finite result.
    async fn check_all(&self, dashboard: &[(String, String)], rules: &[String]) -> Vec<String> {
        let mut pending: Vec<(String, String)> = dashboard.to_vec();
        pending.extend(
            rules
                .iter()
                .map(|r| (format!("recording rule {r}"), r.clone())),
        );
        println!(
            "checking {} expressions ({} read cluster-only series and may be empty)",
            pending.len(),
            pending.iter().filter(|(_, q)| cluster_only(q)).count()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut failures = Vec::new();
            for (name, promql) in &pending {
                let verdict = match self.query(promql).await {
                    // kube-state-metrics and cAdvisor series exist only in a cluster.
                    Ok(data) if cluster_only(promql) && is_empty(&data) => Ok(()),
                    Ok(data) => finite_values(&data).map(drop),
                    Err(err) => Err(err),
                };
                if let Err(err) = verdict {
                    failures.push((name.clone(), promql.clone(), err));
                }
            }
            if failures.is_empty() || Instant::now() >= deadline {
                return failures
                    .into_iter()
                    .map(|(name, promql, err)| format!("  {name}: {promql}\n    -> {err}"))
                    .collect();
            }
            pending = failures.into_iter().map(|(n, q, _)| (n, q)).collect();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Polls a one-value query until `done` holds for its value, and returns the value.
    async fn wait_for_value(
        &self,
        promql: &str,
        done: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.scalar(promql).await;
            if done(value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{promql} is still {value}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_for_firing(&self, alert: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let body: Value = self
                .client
                .get(format!("{}/api/v1/alerts", self.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let alerts = body["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(found) = alerts
                .iter()
                .find(|a| a["labels"]["alertname"] == alert && a["state"] == "firing")
            {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{alert} never fired; alerts: {alerts:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Whether a query result holds no sample (a vector with no element).
fn is_empty(data: &Value) -> bool {
    data["resultType"] == "vector" && data["result"].as_array().is_some_and(Vec::is_empty)
}

/// The values of a query result: an error if it is empty or any value is not finite.
fn finite_values(data: &Value) -> Result<Vec<f64>, String> {
    let raw: Vec<&Value> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|r| r.iter().map(|s| &s["value"][1]).collect())
            .unwrap_or_default(),
        Some("scalar") => vec![&data["result"][1]],
        other => return Err(format!("unexpected result type {other:?}")),
    };
    if raw.is_empty() {
        return Err("empty result".into());
    }
    raw.iter()
        .map(|v| match v.as_str().and_then(|s| s.parse::<f64>().ok()) {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(format!("not a finite number: {v} in {}", data["result"])),
        })
        .collect()
}

/// `promtool check metrics` on the `/metrics` page of every service and replica.
async fn check_metrics_pages(promtool: &Path, services: &Services) {
    let mut bases = vec![
        services.dispatcher.clone(),
        services.autoscaler.clone(),
        services.load_tester.clone(),
    ];
    bases.extend(services.replicas.borrow().iter().cloned());
    for base in bases {
        let page = metrics_text(&base).await;
        let mut child = tokio::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(page.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics on {base}/metrics: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}

async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sum of a metric's samples in a text exposition (0 when absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = match rest.chars().next()? {
                '{' => rest.split_once('}')?.1,
                ' ' => rest,
                _ => return None,
            };
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}
