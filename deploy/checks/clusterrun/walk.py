"""Carrying out one walkthrough of k8s/README.md against a cluster-free release."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from . import probes
from .cluster import Cluster
from .image import Image
from .network import Network
from .sandbox import MountPoints
from .walkthrough import (Forward, UserMachine, WalkthroughError, blocks, check_report, commands,
                          rendered_secrets, forward_addresses, kubectl_namespace, report_stats,
                          secret_lookup, summary)
from .workload import ContainerPlan, RenderError

CHART_PATH = "helm/inference-metrics"
USER_MACHINE = "user-machine"


@dataclass
class Setup:
    """What every walkthrough shares: paths, tools and the log."""

    root: Path
    bin_dir: Path
    work: Path
    stub_chart: Path
    helm: str
    kubectl: str
    images: dict[str, Image]
    mount_points: MountPoints
    max_images: int
    check: Callable[[str, bool, str], None]
    log: Callable[[str], None]


@dataclass
class Overrides:
    """What CI changes in the README's commands, each said in the log when applied."""

    helm_sets: list[str] = field(default_factory=list)
    max_images: int | None = None  # None: Setup.max_images

    def apply(self, command: str, default_images: int) -> tuple[str, list[str]]:
        max_images = self.max_images or default_images
        said = []
        if "/runLoadTest" in command:
            if "-d '{}'" not in command:
                raise WalkthroughError("a /runLoadTest command without the body '{}' cannot be shortened for CI")
            command = command.replace("-d '{}'", f"-d '{{\"maxImages\": {max_images}}}'")
            said.append(f"body '{{}}' -> '{{\"maxImages\": {max_images}}}' (a short run for CI)")
        if re.search(r'"totalRequests": \d+', command):
            command = re.sub(r'"totalRequests": \d+', f'"totalRequests": {max_images}', command)
            said.append(f"totalRequests -> {max_images}, the requests the shortened run plans")
        return command, said


def kubectl_verb(words: list[str]) -> str:
    """The verb of a kubectl command line, past `-n NAMESPACE` and other leading flags."""
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-n", "--namespace") else rest[1:]
    if not rest:
        raise WalkthroughError(f"no verb in {' '.join(words)}")
    return rest[0]


class Walk:
    def __init__(self, setup: Setup, name: str, overrides: Overrides,
                 on_started: Callable[[Cluster], None] | None = None) -> None:
        self.setup = setup
        self.name = name
        self.overrides = overrides
        self.on_started = on_started
        self.namespace = "default"
        self.release_args: list[str] | None = None
        self.docs: list[dict] = []
        self.forwards: list[Forward] = []
        self.cluster: Cluster | None = None
        self.network: Network | None = None
        self.user: UserMachine | None = None
        self.reports: list[dict] = []
        # A control's change to every render, returning what it changed.
        self.mutate: Callable[[list[dict]], str] | None = None

    # --- the cluster side ---------------------------------------------------------------

    def render(self, args: list[str]) -> None:
        release, chart, *flags = args
        if chart.rstrip("/") != CHART_PATH:
            raise WalkthroughError(f"helm: only {CHART_PATH} can be rendered here, not {chart}")
        self.namespace = kubectl_namespace(flags, "default")
        kept = [f for f in flags if f not in ("--create-namespace", "--reuse-values", "--wait")]
        command = [self.setup.helm, "template", release, str(self.setup.stub_chart), *kept]
        for value in self.overrides.helm_sets:
            command += ["--set", value]
        if self.overrides.helm_sets:
            self.setup.log(f"      CI adds --set {' --set '.join(self.overrides.helm_sets)}")
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.setup.root, check=False)
        if done.returncode != 0:
            raise WalkthroughError(f"helm template failed: {done.stderr.strip()}")
        (self.setup.work / f"render-{self.name}.yaml").write_text(done.stdout)
        self.docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        if self.mutate:
            self.setup.log(f"      control: the render changed: {self.mutate(self.docs)}")
        self.release_args = args

    def helm(self, words: list[str]) -> None:
        action, args = words[1], words[2:]
        if action == "upgrade" and "--reuse-values" in args and self.release_args:
            args = self.release_args + [a for a in args[2:] if a != "--reuse-values"]
        if self.cluster is not None:
            self.stop_cluster()
        self.render(args)
        self.setup.log(f"      -> helm template with the same arguments: {len(self.docs)} objects "
                       "(subcharts are CI stubs); the pods start when a later command needs them")

    def apply(self, words: list[str]) -> None:
        target = self.setup.root / words[words.index("-f") + 1]
        files = sorted(target.glob("*.yaml")) if target.is_dir() else [target]
        for path in files:
            self.docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in self.docs:
            self.namespace = doc.get("metadata", {}).get("namespace") or self.namespace
        self.setup.log(f"      -> {len(files)} manifest files read: {', '.join(p.name for p in files)}")

    def create_secret(self, command: str) -> None:
        script = command.replace("kubectl", shlex.quote(self.setup.kubectl), 1) + " --dry-run=client -o yaml"
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise WalkthroughError(f"kubectl create secret failed: {done.stderr.strip()}")
        self.docs.append(yaml.safe_load(done.stdout))
        self.setup.log("      -> the Secret as kubectl renders it (--dry-run=client)")

    def ensure_started(self) -> Cluster:
        if self.cluster is not None:
            return self.cluster
        if not self.docs:
            raise WalkthroughError("a command needs the cluster before anything was installed")
        self.network = Network()
        self.network.up()
        netns, address = self.network.add(USER_MACHINE)
        self.user = UserMachine(netns, self.setup.root, self.setup.work / f"user-env-{self.name}.sh",
                                "/usr/local/bin:/usr/bin:/bin")
        self.setup.log(f"      the user's machine: namespace {netns} at {address}")
        self.cluster = Cluster(self.docs, self.namespace, self.setup.images, self.setup.work,
                               self.network, self.setup.mount_points, lambda m: self.setup.log("      " + m))
        for result in self.cluster.start(skip=set()):
            self.setup.check(f"{self.name}: {result.line()}", result.ok, result.detail)
        for run in self.cluster.running:
            for container in run.pod.containers:
                problems = self.cluster.security_problems(run, container)
                self.setup.check(f"{self.name}: {run.pod.name}/{container.name} runs as {container.uid}:"
                                 f"{container.gid}{', no new privileges' * container.no_new_privileges}"
                                 f"{', no capabilities' * container.drop_all_capabilities}"
                                 f"{', read-only /' * container.read_only_root}", not problems, "; ".join(problems))
            for container in run.pod.containers:
                wanted = container.env.get("INFERENCE_RUNTIME")
                if wanted:
                    found = inference_runtime(run.pod.ip, container)
                    self.setup.check(f"{self.name}: {run.pod.name}/{container.name} runs the runtime "
                                     f"its environment names ({wanted})", found == wanted,
                                     f"inference_runtime_info says {found!r}")
        for line in self.cluster.service_table():
            self.setup.log("      " + line)
        if self.on_started:
            self.on_started(self.cluster)
        return self.cluster

    def stop_cluster(self) -> None:
        if self.user:
            self.user.stop()
        if self.cluster:
            self.cluster.stop()
        if self.network:
            self.network.down()
        self.cluster = self.network = self.user = None
        self.forwards = []

    # --- the README's commands ------------------------------------------------------------

    def kubectl(self, command: str, words: list[str]) -> None:
        verb = kubectl_verb(words)
        if verb == "apply":
            self.apply(words)
        elif verb == "create" and "secret" in words:
            self.create_secret(command)
        elif verb == "rollout":
            cluster = self.ensure_started()
            names = [w.split("/", 1)[1] for w in words if w.startswith("deployment/")]
            unknown = [n for n in names if n not in cluster.deployments()]
            if unknown:
                raise WalkthroughError(f"no Deployment {', '.join(unknown)} in the render")
            self.setup.log(f"      -> the pods' probes above: {', '.join(names)} rolled out")
        elif verb == "get":
            cluster = self.ensure_started()
            for pod in cluster.pods():
                self.setup.log(f"      pod {pod.name} {pod.ip} {'Ready' if pod.ready else 'NotReady'}")
            self.setup.log("      (Services as listed above; HorizontalPodAutoscaler and ScaledObject: no controller runs here)")
        elif verb == "port-forward":
            self.port_forward(words)
        elif verb == "logs":
            self.setup.log("      -> the pod logs are in " + str(self.setup.work / "logs"))
        else:
            raise WalkthroughError(f"kubectl {verb}: not emulated")

    def port_forward(self, words: list[str]) -> None:
        cluster = self.ensure_started()
        target = next(w for w in words if w.startswith(("svc/", "service/")))
        service = target.split("/", 1)[1]
        local, _, remote = next(w for w in words if re.fullmatch(r"\d+:\d+", w)).partition(":")
        found = {r.name: r for r in cluster.services()}
        if service not in found and service.startswith(self.subchart_prefixes()):
            self.setup.log(f"      -> skipped: Service {service} belongs to a subchart, a CI stub here")
            return
        if service not in found:
            raise WalkthroughError(f"no Service {service} in the render")
        if int(remote) not in found[service].ports:
            raise WalkthroughError(f"Service {service} has no port {remote} (ports {found[service].ports})")
        self.forwards.append(Forward(int(local), service, int(remote)))
        self.setup.log(f"      -> 127.0.0.1:{local} now means {service}.{self.namespace}.svc:{remote}")

    def subchart_prefixes(self) -> tuple[str, ...]:
        if not self.release_args:
            return ()
        chart = yaml.safe_load((self.setup.root / CHART_PATH / "Chart.yaml").read_text())
        return tuple(f"{self.release_args[0]}-{d['name']}" for d in chart.get("dependencies") or [])

    def user_command(self, command: str) -> None:
        self.ensure_started()
        assert self.user is not None
        command = forward_addresses(command, self.forwards, self.namespace)
        command, said = self.overrides.apply(command, self.setup.max_images)
        for note in said:
            self.setup.log(f"      CI override: {note}")
        command = command.replace("./target/release/", str(self.setup.bin_dir) + "/")
        if re.search(r"\bload-tester serve\b", command):
            self.serve(command)
            return
        # Logged before a Secret's value replaces its `kubectl get secret`, which stays unprinted.
        self.setup.log(f"      $ {command}")
        command = secret_lookup(command, rendered_secrets(self.docs))
        done = self.user.bash(command)
        for line in done.stdout.splitlines()[:12]:
            self.setup.log(f"      | {line}")
        if done.returncode != 0:
            raise WalkthroughError(f"exit {done.returncode}: {done.stderr.strip()[-400:]}")
        if "/generateReport" in command:
            stats = report_stats(done.stdout)
            if stats is None:
                raise WalkthroughError("the /generateReport answer is not the statistics JSON")
            self.reports.append(stats)

    def offer_load(self, seconds: int, rate: int = 2) -> None:
        """A steady load from the walkthrough's load tester (used by the fault drill)."""
        assert self.user is not None
        body = json.dumps({"workload": [rate] * seconds})
        command = forward_addresses(
            f"curl -sS -X POST http://127.0.0.1:3003/runLoadTest -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)}", self.forwards, self.namespace)
        done = self.user.bash(command)
        if done.returncode != 0:
            raise WalkthroughError(f"could not offer load for the fault drill: {done.stderr.strip()}")
        self.setup.log(f"      load offered: {rate}/s for {seconds}s ({done.stdout.strip()})")

    def serve(self, command: str) -> None:
        assert self.user is not None
        words = shlex.split(command)
        listen = words[words.index("--listen") + 1] if "--listen" in words else "127.0.0.1:3003"
        self.setup.log(f"      $ {command} &   (in the background, as in its own terminal)")
        process = self.user.serve(command, self.setup.work / "logs" / f"user-load-tester-{self.name}.log")
        self.user.wait_http(f"http://{listen.replace('0.0.0.0', '127.0.0.1')}/healthz", process)
        self.setup.log(f"      load tester on the user's machine answers at {listen}")

    def execute(self, command: str) -> None:
        first = command.split()[0]
        words = shlex.split(command) if first in ("minikube", "helm", "kubectl", "cargo") else []
        if first == "minikube":
            self.setup.log("      -> skipped: no minikube here")
        elif first == "helm" and words[1] in ("repo", "dependency"):
            self.setup.log("      -> skipped: the CI-only stub subcharts stand in for the dependencies")
        elif first == "helm" and words[1] in ("install", "upgrade"):
            self.helm(words)
        elif first == "kubectl":
            self.kubectl(command, words)
        elif first == "cargo" and words[1] == "build":
            self.setup.log(f"      -> skipped: the binaries were built before the run ({self.setup.bin_dir})")
        else:
            self.user_command(command)

    def run(self, walks: list[str], readme: str) -> None:
        for walk in walks:
            for number, block in enumerate(blocks(readme, walk), 1):
                for command in commands(block):
                    self.setup.log(f"  [{walk} {number}] {command}")
                    try:
                        self.execute(command)
                    except (WalkthroughError, RenderError, subprocess.TimeoutExpired) as e:
                        self.setup.check(f"{self.name}: {command[:70]}", False, str(e))
                        raise

    def finish(self) -> None:
        """The report's accounting, then every pod still alive and live."""
        if not self.reports:
            self.setup.check(f"{self.name}: the walkthrough produced a report", False, "no /generateReport answer")
        for stats in self.reports:
            problems = check_report(stats)
            self.setup.check(f"{self.name}: report {summary(stats)}", not problems, "; ".join(problems))
        if self.cluster is None:
            return
        dead = self.cluster.dead()
        self.setup.check(f"{self.name}: every pod still running after the walkthrough", not dead,
                         f"exited: {dead}")
        for run in self.cluster.running:
            for container in run.pod.containers:
                if "livenessProbe" in container.probes:
                    process = run.processes[container.name]
                    result = probes.check(run.pod, container, process.pid, "livenessProbe",
                                          lambda p=process: p.poll() is None)
                    self.setup.check(f"{self.name}: still live: {result.pod}/{result.container}",
                                     result.ok, result.detail)


def inference_runtime(ip: str, container: ContainerPlan) -> str | None:
    """The `runtime` label of the inference container's `inference_runtime_info` metric."""
    port = next((p.container_port for p in container.ports), None)
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as e:
        return f"unreachable: {e}"
    match = re.search(r'^inference_runtime_info\{[^}]*runtime="([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else None
