//! What the chart ships for Prometheus and Grafana, read from `helm/inference-metrics/`: every
//! PromQL query of the dashboards (Grafana's variables substituted) and every recording rule.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Grafana's built-in variables and the dashboard's own, as a query-time substitution.
const SUBSTITUTIONS: [(&str, &str); 10] = [
    ("${__rate_interval}", "1m"),
    ("$__rate_interval", "1m"),
    ("${__interval}", "15s"),
    ("$__interval", "15s"),
    ("${__range}", "5m"),
    ("$__range", "5m"),
    ("${instance:regex}", ".*"),
    ("${instance}", ".*"),
    ("$instance", ".*"),
    ("$__all", ".*"),
];

/// Prefixes of the metrics only a Kubernetes cluster has: kube-state-metrics (`kube_`) and the
/// kubelet's cAdvisor (`container_`). Queries reading one cannot return data from the local
/// demo; a panel that should also work without a cluster gives that part its own query.
const CLUSTER_ONLY_METRICS: [&str; 2] = ["kube_", "container_"];

/// Whether `expr` reads a metric only a cluster has: Prometheus must accept it, but it may
/// come back empty here.
pub fn cluster_only(expr: &str) -> bool {
    CLUSTER_ONLY_METRICS.iter().any(|prefix| {
        expr.match_indices(prefix).any(|(at, _)| {
            // The start of a name, not the middle of one (`my_kube_x`, `inference_container_y`).
            !expr[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(panel title, PromQL)` of every target of every panel (rows included) and every query
/// variable of the dashboard, with the variables substituted.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dashboards = root().join("helm/inference-metrics/dashboards");
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        collect_panels(doc["panels"].as_array().unwrap(), &mut out);
        for var in doc["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] != "query" {
                continue;
            }
            let query = var["query"]
                .as_str()
                .or_else(|| var["query"]["query"].as_str())
                .unwrap();
            out.push((
                format!("variable ${}", var["name"].as_str().unwrap()),
                variable_query(query),
            ));
        }
    }
    assert!(out.len() > 10, "found only {} dashboard queries", out.len());
    out.into_iter()
        .map(|(name, expr)| (name, substitute(&expr)))
        .collect()
}

fn collect_panels(panels: &[Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("untitled");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
        }
        // Collapsed rows keep their panels inside.
        if let Some(nested) = panel["panels"].as_array() {
            collect_panels(nested, out);
        }
    }
}

/// The PromQL behind a Grafana query variable: `label_values(selector, label)` lists the
/// label's values of the selector's series, so the selector must match something;
/// `query_result(expr)` runs `expr`.
fn variable_query(query: &str) -> String {
    let query = query.trim();
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        let (selector, _label) = args
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        return selector.trim().to_owned();
    }
    if let Some(expr) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return expr.to_owned();
    }
    panic!("unsupported variable query {query:?}: teach this test what it means");
}

fn substitute(expr: &str) -> String {
    let mut expr = expr.to_owned();
    for (from, to) in SUBSTITUTIONS {
        expr = expr.replace(from, to);
    }
    assert!(!expr.contains('$'), "unknown variable left in {expr}");
    expr
}

/// The series name of every recording rule the chart ships.
pub fn recording_rules() -> Vec<String> {
    let mut records = Vec::new();
    let rules = root().join("helm/inference-metrics/rules");
    for entry in std::fs::read_dir(&rules).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let doc: serde_yaml::Value =
            serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                if let Some(record) = rule["record"].as_str() {
                    records.push(record.to_owned());
                }
            }
        }
    }
    assert!(!records.is_empty(), "no recording rule found");
    records
}
