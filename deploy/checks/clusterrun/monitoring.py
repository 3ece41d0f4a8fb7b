"""The monitoring side of a cluster-free run of the rendered Helm chart.

A real Prometheus runs the chart's rendered configuration (ConfigMap `<release>-prometheus-config`)
against the run's processes, with its rules, and a real Alertmanager delivers the chart's alerts
to a webhook receiver in this process:

    mon = Monitoring(rendered_docs=docs, pods=pods, workdir=Path(...), dashboard=Path(...))
    mon.start()                      # Prometheus, Alertmanager, webhook receiver
    mon.update_pods(pods)            # rewrite the discovery files
    mon.wait_for_targets(timeout=60) # every job with pods is up; raises MonitoringError if not
    failures = mon.check_dashboard() # [] when every dashboard query and recording rule has data
    failures = mon.fault_drill(stop=callable)  # [] when the expected alerts reached the webhook
    mon.stop()

What differs from the chart's Prometheus, and why (each is also printed when it starts):
  - Debian's Prometheus is built without Kubernetes discovery. Each `kubernetes_sd_configs` block
    becomes `file_sd_configs` whose target groups carry the labels that pod discovery would give
    the run's pods (one target per container port), so the chart's relabel_configs, unchanged,
    decide what is scraped. Roles other than `pod` (kube-state-metrics' `endpoints`) get an
    empty file: there is no Kubernetes API to list Services and Endpoints from.
  - Rule files are written to the work directory; only their directory in `rule_files` changes.
  - An `alerting:` section points at the test's Alertmanager (the chart ships none).
  - The self-scrape target `localhost:9090` stays as rendered when that port is free; otherwise
    it is rewritten to the port this Prometheus listens on.
Intervals, timeouts, relabelings and rules are used exactly as rendered.

Needs `prometheus`, `promtool` and `prometheus-alertmanager` on PATH, and PyYAML.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import yaml

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deploycheck import SD_ROLES, configmaps, dashboard_targets  # noqa: E402

from .pods import Pod  # noqa: E402

# Alertmanager routing of the test (not the chart's): deliver quickly, one group per alert.
GROUP_WAIT_S = 5
GROUP_INTERVAL_S = 10

# Metric-name prefixes of series that only a cluster has: kube-state-metrics, cadvisor, the
# kubelet, node-exporter and the API server.
CLUSTER_METRIC_PREFIXES = ("kube_", "container_", "kubelet_", "machine_", "node_", "apiserver_", "scheduler_")

# Alerts a fault drill that stops every inference process must raise are those whose expression
# reads a signal that this fault changes: inference targets going down, the dispatcher seeing no
# ready endpoint, the dispatcher's queue growing because nothing drains it.
FAULT_SIGNALS = {
    "inference targets down": re.compile(r'\bup\s*\{[^}]*job\s*=~?\s*"inference"'),
    "dispatcher sees no ready endpoint": re.compile(r'\bdispatcher_endpoints\s*\{[^}]*state\s*=\s*"ready"'),
    "dispatcher queue growing": re.compile(r"\b(deriv|delta|increase|rate|predict_linear)\s*\(\s*dispatcher_queue_length\b"),
}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "inf", "nan", "atan2", "sum", "min", "max", "avg", "count", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "group",
}


class MonitoringError(RuntimeError):
    """Prometheus or Alertmanager could not be set up, or targets did not come up."""


def log(message: str) -> None:
    print(f"monitoring: {message}", flush=True)


def sanitize(name: str) -> str:
    """Kubernetes discovery's label-name sanitizing: every char outside [a-zA-Z0-9_] becomes `_`."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Prometheus/Grafana duration such as `15s`, `1m30s`, `2h`."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def promql_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_port(ip: str, port: int | None) -> str:
    host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    return host if port is None else f"{host}:{port}"


def pod_targets(pod: Pod) -> list[dict]:
    """The target groups Kubernetes pod discovery (Prometheus 2.42, role `pod`) gives one pod.

    Labels the pod view cannot know (node name, host IP, UID, controller, container image) are
    left out; `start()` refuses a configuration whose relabelings read them.
    """
    common = {
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_ip": pod.ip,
        "__meta_kubernetes_pod_ready": "true" if pod.ready else "false",
        "__meta_kubernetes_pod_phase": pod.phase,
    }
    for key, value in pod.labels.items():
        common[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = str(value)
        common[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    for key, value in pod.annotations.items():
        common[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = str(value)
        common[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"
    groups = []
    for container in pod.containers:
        labels = dict(common)
        labels["__meta_kubernetes_pod_container_name"] = container.name
        labels["__meta_kubernetes_pod_container_init"] = "false"
        if not container.ports:
            # A container without ports: one target on the pod IP alone.
            groups.append({"targets": [host_port(pod.ip, None)], "labels": labels})
            continue
        for port in container.ports:
            port_labels = dict(labels)
            port_labels["__meta_kubernetes_pod_container_port_name"] = port.name or ""
            port_labels["__meta_kubernetes_pod_container_port_number"] = str(port.container_port)
            port_labels["__meta_kubernetes_pod_container_port_protocol"] = port.protocol
            groups.append({"targets": [host_port(pod.ip, port.container_port)], "labels": port_labels})
    return groups


# Meta labels pod_targets() produces; relabelings may read only these (or prefixed families).
POD_META_LABELS = {
    "__meta_kubernetes_namespace", "__meta_kubernetes_pod_name", "__meta_kubernetes_pod_ip",
    "__meta_kubernetes_pod_ready", "__meta_kubernetes_pod_phase",
    "__meta_kubernetes_pod_container_name", "__meta_kubernetes_pod_container_init",
    "__meta_kubernetes_pod_container_port_name", "__meta_kubernetes_pod_container_port_number",
    "__meta_kubernetes_pod_container_port_protocol",
}
POD_META_PREFIXES = (
    "__meta_kubernetes_pod_label_", "__meta_kubernetes_pod_labelpresent_",
    "__meta_kubernetes_pod_annotation_", "__meta_kubernetes_pod_annotationpresent_",
)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical approximation, good for this use)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    names: set[str] = set()
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def job_selectors(expr: str) -> set[str]:
    return set(re.findall(r'\bjob\s*=\s*"([^"]*)"', expr))


@dataclass
class Query:
    """One PromQL expression to check, with where it comes from."""

    source: str
    expr: str
    basis: str = ""  # the expression read to tell why it has no data (default: expr)

    def __post_init__(self):
        self.basis = self.basis or self.expr


@dataclass
class Delivery:
    at: float
    payload: dict


@dataclass
class _Receiver:
    """The webhook receiver: records every Alertmanager notification (payload version 4)."""

    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"unparsable": body.decode(errors="replace")}
                with receiver.lock:
                    receiver.deliveries.append(Delivery(time.time(), payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


class Monitoring:
    def __init__(
        self,
        rendered_docs: list[dict],
        pods: list[Pod],
        workdir: Path,
        dashboard: Path,
        keda_queries: list[str] | None = None,
    ):
        self.docs = [d for d in rendered_docs if d]
        self.pods = list(pods)
        self.workdir = Path(workdir).resolve()
        self.dashboard = Path(dashboard)
        self.keda_queries = list(keda_queries or [])
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.receiver = _Receiver()
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self.config: dict = {}
        self.rule_docs: dict[str, dict] = {}
        self.sd_jobs: dict[str, list[dict]] = {}  # job -> [{role, namespaces, file}]
        self.scrape_interval = 60.0
        self.evaluation_interval = 60.0
        self.started_at = 0.0
        self.other_datasources: list[str] = []

    # ------------------------------------------------------------------ configuration

    def _rendered_config(self) -> dict[str, str]:
        found = [cm for cm in configmaps(self.docs) if "prometheus.yml" in (cm.get("data") or {})]
        if len(found) != 1:
            names = [cm["metadata"]["name"] for cm in found]
            raise MonitoringError(f"expected one rendered ConfigMap with a prometheus.yml, found {names or 'none'}")
        log(f"Prometheus configuration from ConfigMap {found[0]['metadata']['name']}")
        return dict(found[0]["data"])

    def _build_config(self, prometheus_port: int) -> dict:
        files = self._rendered_config()
        config = yaml.safe_load(files.pop("prometheus.yml"))
        glob = config.get("global") or {}
        self.scrape_interval = parse_duration(glob.get("scrape_interval", "1m"))
        self.evaluation_interval = parse_duration(glob.get("evaluation_interval", "1m"))
        log(f"rendered intervals kept: scrape_interval {glob.get('scrape_interval', '1m (default)')}, "
            f"evaluation_interval {glob.get('evaluation_interval', '1m (default)')}")

        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        rule_paths = []
        for path in config.get("rule_files") or []:
            name = Path(path).name
            if name not in files:
                raise MonitoringError(f"rule file {path} is not a key of the rendered ConfigMap")
            (rules_dir / name).write_text(files[name])
            self.rule_docs[name] = yaml.safe_load(files[name]) or {}
            rule_paths.append(str(rules_dir / name))
            log(f"rule file {path} -> {rules_dir / name}")
        if rule_paths:
            config["rule_files"] = rule_paths

        sd_dir = self.workdir / "file_sd"
        sd_dir.mkdir(parents=True, exist_ok=True)
        for job in config.get("scrape_configs") or []:
            name = job["job_name"]
            for static in job.get("static_configs") or []:
                targets = static.get("targets") or []
                if "localhost:9090" in targets and prometheus_port != 9090:
                    static["targets"] = [f"localhost:{prometheus_port}" if t == "localhost:9090" else t for t in targets]
                    log(f"job {name}: self-scrape target localhost:9090 -> localhost:{prometheus_port} (9090 is taken here)")
            sds = job.pop("kubernetes_sd_configs", None)
            if sds is None:
                continue
            file_sds = []
            self.sd_jobs[name] = []
            for index, sd in enumerate(sds):
                unknown = set(sd) - {"role", "namespaces", "selectors", "api_server", "attach_metadata"}
                if unknown or sd.get("role") not in SD_ROLES:
                    raise MonitoringError(f"job {name}: kubernetes_sd_config not understood: {sd}")
                if sd.get("selectors") or sd.get("api_server") or sd.get("attach_metadata"):
                    raise MonitoringError(f"job {name}: selectors/api_server/attach_metadata are not modelled: {sd}")
                namespaces = sd.get("namespaces") or {}
                if namespaces.get("own_namespace"):
                    raise MonitoringError(f"job {name}: namespaces.own_namespace is not modelled")
                path = sd_dir / f"{name}-{index}.json"
                self.sd_jobs[name].append({"role": sd["role"], "namespaces": namespaces.get("names"), "file": path})
                file_sds.append({"files": [str(path)]})
                scope = f"namespaces {namespaces['names']}" if namespaces.get("names") else "all namespaces"
                if sd["role"] == "pod":
                    log(f"job {name}: kubernetes_sd_configs role pod ({scope}) -> file_sd {path.name}")
                else:
                    log(f"job {name}: kubernetes_sd_configs role {sd['role']} -> file_sd {path.name}, "
                        "always empty: no Kubernetes API lists its objects in this run")
            job["file_sd_configs"] = file_sds
            if any(sd["role"] == "pod" for sd in sds):
                self._check_relabel_inputs(name, job.get("relabel_configs") or [])

        if "alerting" in config:
            raise MonitoringError("the rendered configuration already has an alerting section; expected none")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager_url.split("//", 1)[1]]}]}]}
        log(f"alerting -> {self.alertmanager_url}: the test's addition (the chart ships no Alertmanager, "
            "prometheus.alertmanager.enabled=false)")
        return config

    def _check_relabel_inputs(self, job: str, relabels: list[dict]) -> None:
        for relabel in relabels:
            for label in relabel.get("source_labels") or []:
                if not label.startswith("__meta_kubernetes_"):
                    continue
                if label in POD_META_LABELS or label.startswith(POD_META_PREFIXES):
                    continue
                raise MonitoringError(
                    f"job {job}: relabeling reads {label}, which the cluster-free pod view does not produce")

    def _write_targets(self) -> None:
        for job, sds in self.sd_jobs.items():
            for sd in sds:
                groups = []
                if sd["role"] == "pod":
                    for pod in self.pods:
                        if sd["namespaces"] and pod.namespace not in sd["namespaces"]:
                            continue
                        groups.extend(pod_targets(pod))
                tmp = sd["file"].with_suffix(".tmp")
                tmp.write_text(json.dumps(groups, indent=1))
                os.replace(tmp, sd["file"])  # whole files only: Prometheus watches the directory

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logfile = self.workdir / f"{name}.log"
        self.logs[name] = logfile
        handle = logfile.open("w")
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.workdir, start_new_session=True)
        handle.close()
        self.procs[name] = proc
        log(f"started {name} (pid {proc.pid}): {' '.join(argv)}")
        return proc

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs.get(name)
        if not path or not path.exists():
            return f"(no log for {name})"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {name}| {line}" for line in text)

    def _wait_ready(self, name: str, url: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise MonitoringError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        log(f"{name} ready at {url}")
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise MonitoringError(f"{name} not ready after {timeout:.0f}s:\n{self.tail(name)}")

    def start(self) -> None:
        for tool in ("prometheus", "promtool", "prometheus-alertmanager"):
            if not shutil.which(tool):
                raise MonitoringError(f"{tool} not found on PATH (Debian packages prometheus, prometheus-alertmanager)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()

        webhook = self.receiver.start()
        log(f"webhook receiver at {webhook}")

        am_port = free_port()
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"
        am_config = {
            "route": {
                "receiver": "test-webhook",
                "group_by": ["alertname"],
                "group_wait": f"{GROUP_WAIT_S}s",
                "group_interval": f"{GROUP_INTERVAL_S}s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "test-webhook", "webhook_configs": [{"url": webhook, "send_resolved": True}]}],
        }
        am_dir = self.workdir / "alertmanager"
        am_dir.mkdir(exist_ok=True)
        (am_dir / "alertmanager.yml").write_text(yaml.safe_dump(am_config, sort_keys=False))
        log(f"Alertmanager route (test configuration): group_wait {GROUP_WAIT_S}s, group_interval {GROUP_INTERVAL_S}s")
        self._spawn("alertmanager", [
            "prometheus-alertmanager",
            f"--config.file={am_dir / 'alertmanager.yml'}",
            f"--storage.path={am_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ])

        prom_port = free_port(9090)
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        self.config = self._build_config(prom_port)
        prom_dir = self.workdir / "prometheus"
        prom_dir.mkdir(exist_ok=True)
        config_path = prom_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self._write_targets()
        check = subprocess.run(["promtool", "check", "config", str(config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise MonitoringError(f"promtool check config {config_path} failed:\n{check.stdout}{check.stderr}")
        log(f"promtool check config: ok ({config_path})")
        self._wait_ready("alertmanager", self.alertmanager_url)
        self._spawn("prometheus", [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--web.enable-lifecycle",
        ])
        self._wait_ready("prometheus", self.prometheus_url)
        self._check_alertmanager_discovered()

    def _check_alertmanager_discovered(self, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            active = self._api("/api/v1/alertmanagers")["activeAlertmanagers"]
            if active:
                log(f"Prometheus sends alerts to {[a['url'] for a in active]}")
                return
            time.sleep(0.5)
        raise MonitoringError("Prometheus lists no active Alertmanager")

    def update_pods(self, pods: list[Pod]) -> None:
        self.pods = list(pods)
        self._write_targets()
        log(f"discovery files rewritten: {len(self.pods)} pods ({', '.join(p.name for p in self.pods)})")

    def stop(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log(f"stopped {name} (pid {proc.pid})")
        self.procs.clear()
        self.receiver.stop()

    def __enter__(self) -> "Monitoring":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ Prometheus API

    def _api(self, path: str, params: dict | None = None) -> dict:
        url = self.prometheus_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            raise MonitoringError(f"{path}: HTTP {error.code}: {body.get('error', body)}") from None
        if body.get("status") != "success":
            raise MonitoringError(f"{path}: {body}")
        return body["data"]

    def _assert_running(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise MonitoringError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    # ------------------------------------------------------------------ targets

    def wait_for_targets(self, timeout: float = 60) -> list[dict]:
        """Waits until every job with targets has them all up and every pod annotated
        `prometheus.io/scrape: "true"` is scraped by some job. Prints the targets; raises
        MonitoringError on timeout. Returns the active targets."""
        deadline = time.time() + timeout
        problems: list[str] = []
        active: list[dict] = []
        while True:
            self._assert_running()
            data = self._api("/api/v1/targets", {"state": "any"})
            active = data["activeTargets"]
            problems = []
            scraped = {t["discoveredLabels"].get("__meta_kubernetes_pod_name") for t in active}
            for pod in self.pods:
                wanted = pod.annotations.get("prometheus.io/scrape") == "true" and pod.phase == "Running"
                if wanted and pod.name not in scraped:
                    problems.append(f"pod {pod.name} ({pod.ip}) is annotated for scraping but no job keeps it")
            for target in active:
                if target["health"] != "up":
                    problems.append(f"job {target['labels']['job']} target {target['scrapeUrl']}: "
                                    f"{target['health']} {target.get('lastError') or ''}".rstrip())
            if not problems or time.time() >= deadline:
                break
            time.sleep(1)
        self._print_targets(active, data["droppedTargets"])
        if problems:
            raise MonitoringError(f"targets not up after {timeout:.0f}s:\n  " + "\n  ".join(problems))
        log("every target is up")
        return active

    def _print_targets(self, active: list[dict], dropped: list[dict]) -> None:
        by_job: dict[str, list[dict]] = {}
        for target in active:
            by_job.setdefault(target["labels"]["job"], []).append(target)
        for job in [j["job_name"] for j in self.config.get("scrape_configs", [])]:
            targets = by_job.get(job, [])
            if not targets:
                log(f"  job {job}: no targets")
            for t in targets:
                log(f"  job {job}: {t['scrapeUrl']} pod={t['labels'].get('pod', '-')} "
                    f"namespace={t['labels'].get('namespace', '-')} {t['health']} {t.get('lastError') or ''}".rstrip())
        log(f"  ({len(dropped)} discovered targets dropped by the chart's relabeling)")

    def _jobs_with_targets(self) -> set[str]:
        return {t["labels"]["job"] for t in self._api("/api/v1/targets")["activeTargets"]}

    def _cluster_only_jobs(self) -> set[str]:
        """Jobs discovered through Kubernetes objects this run does not have (not role pod)."""
        return {job for job, sds in self.sd_jobs.items() if all(sd["role"] != "pod" for sd in sds)}

    # ------------------------------------------------------------------ dashboard and rules

    def _grafana_intervals(self, dashboard: dict) -> dict[str, str]:
        """Grafana's built-in variables for a panel of this dashboard on this Prometheus.

        $__interval is the panel's range over its data points, at least the datasource's minimum
        interval (its `timeInterval`, else the scrape interval); for the dashboard's default range
        on a panel of ~1000 points it is that minimum. $__rate_interval is
        max($__interval + scrape interval, 4 × scrape interval), Grafana's definition.
        """
        scrape = self.scrape_interval
        minimum = scrape
        for cm in configmaps(self.docs):
            for text in (cm.get("data") or {}).values():
                if "datasources:" not in text:
                    continue
                for ds in (yaml.safe_load(text) or {}).get("datasources") or []:
                    if ds.get("type") == "prometheus" and (ds.get("jsonData") or {}).get("timeInterval"):
                        minimum = parse_duration(ds["jsonData"]["timeInterval"])
        time_from = (dashboard.get("time") or {}).get("from", "now-6h")
        match = re.fullmatch(r"now-(\w+)", time_from)
        range_s = parse_duration(match.group(1)) if match else 6 * 3600
        interval = max(minimum, range_s / 1000)
        rate_interval = max(interval + scrape, 4 * scrape)
        return {
            "__interval": promql_duration(interval),
            "__interval_ms": str(int(interval * 1000)),
            "__rate_interval": promql_duration(rate_interval),
            "__range": promql_duration(range_s),
            "__range_s": str(int(range_s)),
            "__range_ms": str(int(range_s * 1000)),
        }

    def _variable_values(self, dashboard: dict, failures: list[str]) -> tuple[dict[str, str], list[Query]]:
        values: dict[str, str] = {}
        checks: list[Query] = []
        for var in (dashboard.get("templating") or {}).get("list") or []:
            name, kind = var["name"], var.get("type")
            if kind == "datasource":
                continue
            options: list[str] = []
            if kind == "query":
                query = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
                match = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*", query)
                result = re.fullmatch(r"\s*query_result\((.*)\)\s*", query)
                if match:
                    selector, label = match.group(1), match.group(2)
                    options = self._api(f"/api/v1/label/{label}/values", {"match[]": selector})
                    checks.append(Query(f"variable ${name}", selector))
                elif result:
                    checks.append(Query(f"variable ${name}", result.group(1)))
                else:
                    failures.append(f"variable ${name}: query {query!r} not understood")
                    continue
                if match and not options:
                    failures.append(f"variable ${name}: {query} lists no values")
            elif kind == "custom":
                options = [o.get("value") for o in var.get("options") or []] or \
                    [v.strip() for v in str(var.get("query", "")).split(",") if v.strip()]
            elif kind in ("constant", "textbox"):
                options = [str(var.get("query", ""))]
            elif kind == "interval":
                options = [v.strip() for v in str(var.get("query", "")).split(",") if v.strip()]
            current = (var.get("current") or {}).get("value")
            if var.get("includeAll") and (current in (None, "$__all", ["$__all"]) or not current):
                values[name] = var.get("allValue") or "(" + "|".join(re.escape(o) for o in options) + ")"
            elif current and current != "$__all":
                values[name] = current[0] if isinstance(current, list) else current
            else:
                values[name] = options[0] if options else ""
        return values, checks

    @staticmethod
    def _substitute(expr: str, values: dict[str, str]) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1) or match.group(2) or match.group(3)
            return values.get(name, match.group(0))

        # ${name}, ${name:format}, [[name]], $name (longest names first through the regex).
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", replace, expr)

    def _dashboard_queries(self, failures: list[str]) -> tuple[list[Query], dict[str, str]]:
        dashboard = json.loads(self.dashboard.read_text())
        values = self._grafana_intervals(dashboard)
        variables, variable_checks = self._variable_values(dashboard, failures)
        values.update(variables)
        datasource_vars = {v["name"]: v.get("query") for v in (dashboard.get("templating") or {}).get("list") or []
                           if v.get("type") == "datasource"}
        queries: list[Query] = []
        for panel, target in dashboard_targets(dashboard):
            expr = target.get("expr")
            if not expr or target.get("hide"):
                continue
            substituted = self._substitute(expr, values)
            title = panel.get("title") or "untitled"
            where = f"panel {title!r}" + (f" ({target['legendFormat']})" if target.get("legendFormat") else "")
            kind = _datasource_type(target.get("datasource") or panel.get("datasource"), datasource_vars)
            if kind != "prometheus":
                self.other_datasources.append(f"{where}: a {kind} query, not Prometheus")
                continue
            if "$" in substituted:
                failures.append(f"{where}: a variable left unsubstituted in {substituted}")
                continue
            queries.append(Query(where, substituted))
        for check in variable_checks:
            check.expr = check.basis = self._substitute(check.expr, values)
        return queries + variable_checks, values

    def _evaluate(self, expr: str, window: float) -> tuple[str, str]:
        """('ok'|'empty'|'nan'|'error', detail): an instant query now; when it has no finite
        value, a range query over the last `window` seconds at the scrape interval."""
        try:
            return self._evaluate_unchecked(expr, window)
        except MonitoringError as error:
            return "error", str(error)

    def _evaluate_unchecked(self, expr: str, window: float) -> tuple[str, str]:
        data = self._api("/api/v1/query", {"query": expr})
        samples = _samples(data)
        finite = [v for v in samples if math.isfinite(v)]
        if finite:
            shown = ", ".join(f"{v:.4g}" for v in finite[:3]) + (" …" if len(finite) > 3 else "")
            extra = f" ({len(samples) - len(finite)} more series NaN)" if len(finite) < len(samples) else ""
            return "ok", f"{len(finite)} series now: {shown}{extra}"
        end = time.time()
        data = self._api("/api/v1/query_range", {
            "query": expr, "start": end - window, "end": end, "step": self.scrape_interval})
        last = None
        for series in data["result"]:
            for ts, value in series["values"]:
                if math.isfinite(float(value)) and (last is None or ts > last[0]):
                    last = (ts, float(value))
        if last:
            return "ok", f"no value now; last {last[1]:.4g} {end - last[0]:.0f}s ago (range over {window:.0f}s)"
        return ("nan", "only NaN values") if samples or data["result"] else ("empty", "no series")

    def _why_empty(self, expr: str, jobs_present: set[str]) -> tuple[str, str] | None:
        """('unverifiable'|'not covered', reason) when the expression cannot have data here."""
        names = metric_names(expr)
        cluster_jobs = self._cluster_only_jobs()
        cluster = sorted(n for n in names if n.startswith(CLUSTER_METRIC_PREFIXES))
        cluster += sorted(f'job="{j}"' for j in job_selectors(expr) if j in cluster_jobs)
        if cluster:
            return "unverifiable", f"cluster-only series {', '.join(cluster)}"
        scrape_jobs = {j["job_name"] for j in self.config.get("scrape_configs", [])}
        needed = set(job_selectors(expr))
        for name in names:
            for job in scrape_jobs:
                if name.startswith(job.replace("-", "_") + "_"):
                    needed.add(job)
        absent = sorted(j for j in needed if j in scrape_jobs and j not in jobs_present)
        if absent:
            return "not covered", f"no {', '.join(absent)} pod in this run"
        return None

    def check_dashboard(self, keda_queries: list[str] | None = None, window: float = 600) -> list[str]:
        """Every dashboard query (panels in rows included, variables substituted as Grafana
        does), every query variable, every recording rule and the KEDA trigger query must return
        finite data. Queries that only a cluster can answer are listed as unverifiable."""
        began = time.time()
        self._assert_running()
        failures: list[str] = []
        self.other_datasources = []
        window = min(window, max(60.0, time.time() - self.started_at))
        queries, values = self._dashboard_queries(failures)
        log(f"dashboard {self.dashboard.name}: {len(queries)} queries; substitutions "
            + ", ".join(f"${k}={v}" for k, v in sorted(values.items()) if not k.endswith(("_ms", "_s"))))
        for group_name, rule in self._rules("record"):
            queries.append(Query(f"recording rule {rule['record']}", rule["record"], rule["expr"]))
        jobs_present = self._jobs_with_targets()
        unverifiable: list[str] = []
        not_covered: list[str] = []
        passed = 0
        for q in queries:
            status, detail = self._evaluate(q.expr, window)
            if status == "ok":
                passed += 1
                log(f"  ok    {q.source}: {detail}")
                continue
            why = None if status == "error" else self._why_empty(q.basis, jobs_present)
            if why and why[0] == "unverifiable":
                unverifiable.append(f"{q.source}: {why[1]}")
                log(f"  n/a   {q.source}: unverifiable without a cluster ({why[1]})")
            elif why:
                not_covered.append(f"{q.source}: {why[1]}")
                log(f"  skip  {q.source}: not covered ({why[1]})")
            else:
                missing = self._missing_metrics(q.basis)
                note = (f"; never scraped: {', '.join(missing)}" if missing else
                        "; its metrics were scraped: too little data in the window yet? (rate() needs two scrapes)")
                failures.append(f"{q.source}: {detail} for {q.expr}{note}")
                log(f"  FAIL  {q.source}: {detail}{note}\n        {q.expr}")
        failures += self._check_keda(keda_queries)
        log(f"check_dashboard: {passed} with data, {len(unverifiable)} unverifiable without a cluster, "
            f"{len(not_covered)} not covered by this run's pods, {len(failures)} failed "
            f"({time.time() - began:.1f}s)")
        for line in unverifiable:
            log(f"  unverifiable without a cluster: {line}")
        for line in not_covered:
            log(f"  not covered: {line}")
        for line in self.other_datasources:
            log(f"  not checked here: {line}")
        return failures

    def _missing_metrics(self, expr: str) -> list[str]:
        return [n for n in sorted(metric_names(expr))
                if not self._api("/api/v1/series", {"match[]": n, "start": self.started_at})]

    def _check_keda(self, extra: list[str] | None) -> list[str]:
        queries: list[tuple[str, str]] = []
        for doc in self.docs:
            if doc.get("kind") != "ScaledObject":
                continue
            for trigger in (doc.get("spec") or {}).get("triggers") or []:
                if trigger.get("type") == "prometheus":
                    queries.append((f"ScaledObject {doc['metadata']['name']} trigger", trigger["metadata"]["query"]))
        for q in list(extra or []) + self.keda_queries:
            queries.append(("KEDA query (given)", q))
        if not queries:
            values = self.dashboard.resolve().parents[1] / "values.yaml"
            default = ((yaml.safe_load(values.read_text()) or {}).get("autoscaling") or {}).get("keda", {}).get("query") \
                if values.exists() else None
            if not default:
                log("  no KEDA trigger query: the render has no ScaledObject and none was given")
                return []
            queries.append((f"KEDA query (chart default in {values.name}; no keda render given)", default))
        failures = []
        for source, query in queries:
            data = self._api("/api/v1/query", {"query": query})
            samples = _samples(data)
            if len(samples) == 1 and math.isfinite(samples[0]):
                log(f"  ok    {source}: {query} = {samples[0]:.4g}")
            else:
                failures.append(f"{source}: {query} returned {samples or 'nothing'}; KEDA needs one number")
                log(f"  FAIL  {failures[-1]}")
        return failures

    def _rules(self, kind: str):
        for name, doc in self.rule_docs.items():
            for group in doc.get("groups") or []:
                for rule in group.get("rules") or []:
                    if kind in rule:
                        yield group.get("name", name), rule

    # ------------------------------------------------------------------ fault drill

    def expected_alerts(self) -> dict[str, dict]:
        """The chart's alerting rules that the inference fault must fire, with why."""
        expected = {}
        for _, rule in self._rules("alert"):
            reasons = [why for why, pattern in FAULT_SIGNALS.items() if pattern.search(rule["expr"])]
            if reasons:
                expected[rule["alert"]] = {"rule": rule, "reasons": reasons}
        return expected

    def _active_alerts(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for alert in self._api("/api/v1/alerts")["alerts"]:
            name = alert["labels"]["alertname"]
            if name not in out or alert["state"] == "firing":
                out[name] = alert
        return out

    def fault_drill(self, stop: Callable[[], object], timeout: float | None = None,
                    expected: list[str] | None = None) -> list[str]:
        """Stops every inference process with `stop()` while load is offered and waits for the
        chart's alerts about it to reach the webhook, firing, through Alertmanager."""
        self._assert_running()
        failures: list[str] = []
        candidates = self.expected_alerts()
        if expected is not None:
            unknown = set(expected) - {r["alert"] for _, r in self._rules("alert")}
            if unknown:
                return [f"expected alerts not among the chart's rules: {sorted(unknown)}"]
            candidates = {n: candidates.get(n, {"rule": r, "reasons": ["requested"]})
                          for _, r in self._rules("alert") for n in [r["alert"]] if n in expected}
        if not candidates:
            return ["no alerting rule of the chart describes inference being unavailable or the queue growing"]
        for name, info in candidates.items():
            log(f"expected alert {name} (for {info['rule'].get('for', '0s')}): {'; '.join(info['reasons'])}")
        for _, rule in self._rules("alert"):
            if rule["alert"] not in candidates:
                log(f"not expected: {rule['alert']} (its expression reads none of the fault's signals)")

        # Negative check: after a fresh rule evaluation on healthy processes, none is active.
        healthy_since = time.time()
        deadline = healthy_since + 3 * self.evaluation_interval + 10
        while True:
            groups = self._api("/api/v1/rules")["groups"]
            fresh = all(_ts(g.get("lastEvaluation")) > healthy_since for g in groups)
            active = {n: a for n, a in self._active_alerts().items() if n in candidates}
            if fresh and not active:
                break
            if time.time() > deadline:
                states = ", ".join(f"{n} {a['state']} since {a.get('activeAt')}" for n, a in active.items())
                return [f"before the fault, with everything healthy, expected-fault alerts are active: {states or '(rules not evaluated)'}"]
            time.sleep(1)
        delivered_before = [d for d in self.receiver.snapshot() if _firing_names(d.payload) & set(candidates)]
        if delivered_before:
            return [f"before the fault, the webhook already got {sorted(_firing_names(delivered_before[0].payload))} firing"]
        log("negative check: no expected alert pending or firing while healthy")

        if timeout is None:
            timeout = max(self._alert_budget(info["rule"]) for info in candidates.values())
            log(f"timeout {timeout:.0f}s = longest `for` + 3 scrape intervals + 2 evaluation intervals "
                f"+ group_wait {GROUP_WAIT_S}s + 30s slack")
        seen_before = len(self.receiver.snapshot())
        stopped_at = time.time()
        log(f"stopping every inference process at {_clock(stopped_at)}")
        stop()
        log(f"stop() returned after {time.time() - stopped_at:.1f}s")
        timeline: dict[str, dict[str, float | None]] = {n: {"pending": None, "firing": None, "delivered": None}
                                                          for n in candidates}
        others: dict[str, dict[str, float | None]] = {}
        payload_problems: list[str] = []
        while True:
            self._assert_running()
            now = time.time()
            for name, alert in self._active_alerts().items():
                entry = timeline.get(name) or others.setdefault(name, {"pending": None, "firing": None, "delivered": None})
                if entry["pending"] is None:
                    entry["pending"] = _ts(alert.get("activeAt")) or now
                if alert["state"] == "firing" and entry["firing"] is None:
                    entry["firing"] = now
            for delivery in self.receiver.snapshot()[seen_before:]:
                for name in _firing_names(delivery.payload):
                    entry = timeline.get(name) or others.setdefault(name, {"pending": None, "firing": None, "delivered": None})
                    if entry["delivered"] is None:
                        entry["delivered"] = delivery.at
                        if name in candidates:
                            payload_problems += _payload_problems(delivery.payload, candidates[name]["rule"])
            if all(e["delivered"] for e in timeline.values()) or now - stopped_at > timeout:
                break
            time.sleep(1)

        log(f"timeline (seconds after the stop at {_clock(stopped_at)}; pending = Prometheus activeAt, "
            "firing = first seen firing by the API poll, delivered = webhook received it):")
        for name, entry in list(timeline.items()) + list(others.items()):
            cells = "  ".join(f"{k} {_rel(entry[k], stopped_at)}" for k in ("pending", "firing", "delivered"))
            tag = "" if name in timeline else "  (not expected; informational)"
            log(f"  {name:<24} {cells}{tag}")
            if name in timeline and not entry["delivered"]:
                failures.append(f"alert {name} was not delivered firing within {timeout:.0f}s "
                                f"(pending {_rel(entry['pending'], stopped_at)}, firing {_rel(entry['firing'], stopped_at)})")
        failures += payload_problems
        log(f"fault drill: {'passed' if not failures else 'FAILED'} in {time.time() - healthy_since:.0f}s "
            f"({len(self.receiver.snapshot())} webhook notifications in total)")
        if failures:
            for name in self.procs:
                log(f"last lines of {name}'s log:\n{self.tail(name, 15)}")
        return failures

    def _alert_budget(self, rule: dict) -> float:
        hold = parse_duration(rule.get("for", "0s"))
        return hold + 3 * self.scrape_interval + 2 * self.evaluation_interval + GROUP_WAIT_S + 30


def _datasource_type(datasource, variables: dict[str, str]) -> str:
    """The plugin type behind a panel's or target's datasource; a `${var}` uid resolves through
    the dashboard's datasource variable. No datasource means the default one: Prometheus here."""
    if not datasource:
        return "prometheus"
    if isinstance(datasource, str):
        datasource = {"uid": datasource}
    uid = str(datasource.get("uid") or "")
    match = re.fullmatch(r"\$\{?(\w+)\}?", uid)
    if match and match.group(1) in variables:
        return str(variables[match.group(1)])
    return str(datasource.get("type") or "prometheus")


def _samples(data: dict) -> list[float]:
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [float(result[1])]
    if kind == "vector":
        return [float(s["value"][1]) for s in result]
    if kind == "matrix":
        return [float(v) for s in result for _, v in s["values"]]
    return []


def _ts(text: str | None) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp from the Prometheus API (0 if absent)."""
    if not text or text.startswith("0001-"):
        return 0.0
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 10)}"


def _rel(ts: float | None, origin: float) -> str:
    return "      -" if ts is None else f"{ts - origin:+7.1f}s"


def _firing_names(payload: dict) -> set[str]:
    return {a["labels"]["alertname"] for a in payload.get("alerts") or []
            if a.get("status") == "firing" and "alertname" in (a.get("labels") or {})}


def _payload_problems(payload: dict, rule: dict) -> list[str]:
    problems = []
    if payload.get("version") != "4":
        problems.append(f"webhook payload version {payload.get('version')!r}, expected '4'")
    for alert in payload.get("alerts") or []:
        if alert["labels"].get("alertname") != rule["alert"]:
            continue
        for key, value in (rule.get("labels") or {}).items():
            if alert["labels"].get(key) != value:
                problems.append(f"alert {rule['alert']}: label {key}={alert['labels'].get(key)!r}, rule says {value!r}")
    return problems
