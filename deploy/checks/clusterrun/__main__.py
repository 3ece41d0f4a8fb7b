"""The cluster-free run of the rendered deployment; see scripts/cluster-run.sh.

    python -m clusterrun --bin-dir target/debug [--only hpa keda ...] [--max-images 60]
    python -m clusterrun cleanup      # what a killed run left: namespaces, bridge, mount points
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .cluster import Cluster
from .image import load_images
from .monitoring import Monitoring, MonitoringError
from .network import Network, remove_leftovers
from .sandbox import MountPoints
from .walk import CHART_PATH, Overrides, Setup, Walk
from .walkthrough import WalkthroughError
from .workload import RenderError, find

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "k8s" / "README.md"
DASHBOARD = ROOT / CHART_PATH / "dashboards" / "inference-harness.json"
STATE_DIR = Path("/var/tmp/clusterrun")
RELEASE = "harness"
NAMESPACE = "inference-harness"
WRONG_PROBE_PORT = 8001
# Requests of the control walkthrough, which waits out the load tester's drain timeout.
CONTROL_IMAGES = 10
# Load offered while the fault drill has every inference pod stopped: the queue must grow.
DRILL_LOAD_SECONDS = 300


@dataclass
class Run:
    """One release started and driven through README walkthroughs."""

    name: str
    walks: list[str]
    helm_sets: list[str] = field(default_factory=list)
    monitoring: bool = False
    max_images: int | None = None  # None: --max-images


RUNS = [
    # Long enough (about 40 s of the workload's ramp) for every rate() on the dashboard to
    # have two scrapes of each series.
    Run("hpa", ["chart"], monitoring=True, max_images=200),
    Run("keda", ["chart"], ["autoscaling.mode=keda"]),
    Run("none", ["chart"], ["autoscaling.mode=none"]),
    Run("predictive+in-cluster-load-tester", ["in-cluster"], ["autoscaling.mode=predictive"]),
    Run("k8s", ["plain"]),
]

UNVERIFIABLE = [
    "scheduling (nodes, resource requests, topology spread) and kubelet/cgroup CPU and memory limits",
    "the HorizontalPodAutoscaler controller and metrics-server (the HPA object is rendered only)",
    "KEDA's ScaledObject (no KEDA operator; its trigger query is checked against the real Prometheus)",
    "the predictive autoscaler's Kubernetes API reads and scale writes (no API server; covered by "
    "the autoscaler's tower_test scenarios)",
    "NetworkPolicy enforcement (no CNI), seccomp profiles, image builds and pulls, rolling updates",
    "the Prometheus, Grafana and kube-state-metrics subcharts (CI stubs; a real Prometheus with the "
    "chart's configuration stands in)",
]


def stage_dirs() -> dict[str, Path]:
    """Local folders that hold what the Dockerfile's other build stages make: the onnxruntime
    library, installed from the same pinned wheel (ORT_DYLIB_PATH, scripts/install-onnxruntime.sh)."""
    library = os.environ.get("ORT_DYLIB_PATH")
    return {"onnxruntime": Path(library).resolve().parent} if library else {}


class Results:
    """Checks counted for the closing line; a control's inner checks print as what they are."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.passed = 0
        self.failed: list[str] = []

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        if ok:
            self.passed += 1
            print(f"{self.prefix}ok    {name}", flush=True)
        else:
            self.failed.append(name)
            print(f"{self.prefix}FAIL  {name}: {detail}", flush=True)


def log(message: str) -> None:
    print(message, flush=True)


def stub_chart(work: Path) -> Path:
    """A copy of the chart whose dependencies are CI-only stubs (as scripts/verify-deploy.sh)."""
    chart = work / "chart" / "inference-metrics"
    shutil.copytree(ROOT / CHART_PATH, chart, ignore=shutil.ignore_patterns("charts"))
    for dep in yaml.safe_load((chart / "Chart.yaml").read_text())["dependencies"]:
        lowest = re.search(r">=\s*([0-9]+\.[0-9]+\.[0-9]+)", dep["version"]).group(1)
        stub = chart / "charts" / dep["name"]
        stub.mkdir(parents=True)
        (stub / "Chart.yaml").write_text(
            f"apiVersion: v2\nname: {dep['name']}\nversion: {lowest}\n"
            "description: CI-only stub standing in for the real chart in offline checks.\n"
            "type: application\n")
    return chart


def keda_queries(setup: Setup) -> list[str]:
    """The KEDA trigger queries of the keda render, for the real Prometheus to answer."""
    log("      the KEDA trigger query, from a render in mode keda:")
    walk = Walk(setup, "keda-query", Overrides(["autoscaling.mode=keda"]))
    walk.render([RELEASE, CHART_PATH, "--namespace", NAMESPACE])
    return [t["metadata"]["query"] for d in walk.docs if d.get("kind") == "ScaledObject"
            for t in d["spec"]["triggers"] if t.get("type") == "prometheus"]


def monitoring_hooks(setup: Setup, results: Results, walk_of: Callable[[], Walk]):
    """(on_started, after, stop) for the run with Prometheus, Alertmanager and the dashboard."""
    holder: dict = {}

    def on_started(cluster: Cluster) -> None:
        mon = Monitoring(rendered_docs=cluster.docs, pods=cluster.pods(), workdir=setup.work / "monitoring",
                         dashboard=DASHBOARD, keda_queries=keda_queries(setup))
        holder["mon"] = mon
        mon.start()
        try:
            mon.wait_for_targets(timeout=60)
            results.check("hpa: Prometheus scrapes every pod with the chart's configuration", True)
        except MonitoringError as e:
            results.check("hpa: Prometheus scrapes every pod with the chart's configuration", False, str(e))

    def after(cluster: Cluster) -> None:
        mon = holder["mon"]
        mon.update_pods(cluster.pods())
        failures = mon.check_dashboard()
        if failures:
            # A recording rule may not have been evaluated since its rate() got two scrapes.
            wait = mon.scrape_interval + mon.evaluation_interval
            log(f"   dashboard: {len(failures)} queries without data; once more after {wait:.0f}s")
            time.sleep(wait)
            failures = mon.check_dashboard()
        results.check("hpa: every dashboard query returns data", not failures, "; ".join(map(str, failures)))

        def stop_inference() -> None:
            walk_of().offer_load(DRILL_LOAD_SECONDS)
            cluster.stop(f"{RELEASE}-inference")
            mon.update_pods(cluster.pods())

        failures = mon.fault_drill(stop=stop_inference)
        results.check("hpa: fault drill: the chart's alerts reach the webhook through Alertmanager",
                      not failures, "; ".join(failures))

    def stop() -> None:
        if "mon" in holder:
            holder["mon"].stop()

    return on_started, after, stop


def run_one(setup: Setup, results: Results, run: Run, readme: str) -> None:
    log(f"\n== {run.name}: k8s/README.md walkthrough {', '.join(run.walks)}")
    walk = Walk(setup, run.name, Overrides(run.helm_sets, run.max_images))
    after, stop_monitoring = None, lambda: None
    if run.monitoring:
        walk.on_started, after, stop_monitoring = monitoring_hooks(setup, results, lambda: walk)
    started = time.monotonic()
    try:
        walk.run(run.walks, readme)
        walk.finish()
        if after and walk.cluster:
            after(walk.cluster)
    except (WalkthroughError, RenderError) as e:
        log(f"   stopped: {e}")
    finally:
        stop_monitoring()
        walk.stop_cluster()
        setup.mount_points.remove_all()
    log(f"   {run.name}: {time.monotonic() - started:.0f}s")


def control(setup: Setup, results: Results) -> None:
    """The checker can fail: a probe on a wrong port, and a port-forward to a wrong Service."""
    log("\n== control: a copy of the hpa render with the inference readiness probe on a wrong port")
    walk = Walk(setup, "control", Overrides())
    try:
        walk.render([RELEASE, CHART_PATH, "--namespace", NAMESPACE])
        deployment = find(walk.docs, "Deployment", f"{RELEASE}-inference")
        assert deployment is not None
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        probe["httpGet"]["port"] = WRONG_PROBE_PORT
        outcome = Results(prefix="      (inside the control) ")
        walk.setup = copy.copy(setup)
        walk.setup.check = outcome.check
        walk.ensure_started()
        results.check("control: the readiness probe on a wrong port fails",
                      any("readinessProbe" in f and "inference" in f for f in outcome.failed),
                      f"failures seen: {outcome.failed}")
        try:
            walk.port_forward(["kubectl", "-n", NAMESPACE, "port-forward", f"svc/{RELEASE}-dispatchr", "8080:8080"])
            results.check("control: a port-forward to a misspelt Service fails", False, "it was accepted")
        except WalkthroughError as e:
            results.check("control: a port-forward to a misspelt Service fails", True, str(e))
    finally:
        walk.stop_cluster()
        setup.mount_points.remove_all()


def misspell_inference_service(docs: list[dict]) -> str:
    deployment = find(docs, "Deployment", f"{RELEASE}-dispatcher")
    assert deployment is not None
    for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if item["name"] == "INFERENCE_DNS":
            item["value"] = item["value"].replace("-headless", "-headles")
            return f"INFERENCE_DNS={item['value']}"
    raise RenderError("the dispatcher has no INFERENCE_DNS")


def control_walkthrough(setup: Setup, results: Results, readme: str) -> None:
    """The walkthrough fails when the dispatcher's environment names a Service that is not there."""
    log("\n== control: the walkthrough with a misspelt inference Service in the dispatcher's env")
    outcome = Results(prefix="      (inside the control) ")
    inner = copy.copy(setup)
    inner.check = outcome.check
    walk = Walk(inner, "control-env", Overrides(max_images=CONTROL_IMAGES))
    walk.mutate = misspell_inference_service
    try:
        walk.run(["chart"], readme)
        walk.finish()
    except (WalkthroughError, RenderError) as e:
        log(f"   stopped: {e}")
    finally:
        walk.stop_cluster()
        setup.mount_points.remove_all()
    results.check("control: a misspelt Service name in the dispatcher's env fails the walkthrough",
                  bool(outcome.failed), "every check passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", default="run", choices=["run", "cleanup"])
    parser.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "debug")
    parser.add_argument("--tools", type=Path, default=ROOT / ".tools" / "bin")
    parser.add_argument("--only", nargs="*", help="run names: " + ", ".join(r.name for r in RUNS) + ", control")
    parser.add_argument("--max-images", type=int, default=60)
    args = parser.parse_args()
    mount_points = MountPoints(STATE_DIR)
    if args.action == "cleanup":
        remove_leftovers()
        mount_points.remove_all()
        return 0
    if os.geteuid() != 0:
        log("cluster-run: needs root (network and mount namespaces)")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    remove_leftovers()
    mount_points.remove_all()
    results = Results()
    bin_dir = args.bin_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="cluster-run-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        setup = Setup(root=ROOT, bin_dir=bin_dir, work=work, stub_chart=stub_chart(work),
                      helm=str(args.tools / "helm"), kubectl=str(args.tools / "kubectl"),
                      images=load_images(ROOT / "Dockerfile", ROOT, bin_dir, stage_dirs()),
                      mount_points=mount_points,
                      max_images=args.max_images, check=results.check, log=log)
        readme = README.read_text()
        try:
            for run in RUNS:
                if not args.only or run.name in args.only:
                    run_one(setup, results, run, readme)
            if not args.only or "control" in args.only:
                control(setup, results)
                control_walkthrough(setup, results, readme)
        finally:
            Network().down()
            mount_points.remove_all()
    log("\nNot verifiable without a cluster (see k8s/README.md, \"What the cluster-free run shows\"):")
    for item in UNVERIFIABLE:
        log(f"  - {item}")
    log(f"\ncluster run: {results.passed} passed, {len(results.failed)} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
