"""One rendered release, running: pods started as processes, their probes checked, Service
names kept up to date in every namespace's hosts file as pods become ready or stop."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import probes, sandbox, services
from .image import Image
from .network import Network
from .pods import Pod
from .workload import PodPlan, by_kind, fill_containers, find, pod_plans

STOP_GRACE_SECONDS = 10.0


@dataclass
class Running:
    pod: PodPlan
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: float = 0.0
    ready: bool = False

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())


class Cluster:
    def __init__(self, docs: list[dict], namespace: str, images: dict[str, Image], work: Path,
                 network: Network, mount_points: sandbox.MountPoints, log) -> None:
        self.docs = docs
        self.namespace = namespace
        self.images = images
        self.work = work
        self.network = network
        self.mount_points = mount_points
        self.log = log
        self.running: list[Running] = []

    def fs_group(self, pod: PodPlan) -> int | None:
        deployment = find(self.docs, "Deployment", pod.deployment)
        assert deployment is not None
        return (deployment["spec"]["template"]["spec"].get("securityContext") or {}).get("fsGroup")

    def start(self, skip: set[str]) -> list[probes.ProbeResult]:
        """Starts every pod, checks every probe; the pods whose readiness passed become ready."""
        for plan in pod_plans(self.docs, self.namespace, skip):
            _, plan.ip = self.network.add(plan.name)
            fill_containers(self.docs, plan, self.images)
            self.running.append(Running(plan))
        self.publish()
        for run in self.running:
            netns = "clusterrun-" + run.pod.name
            for container in run.pod.containers:
                process = sandbox.start(netns, run.pod, container, self.fs_group(run.pod), self.work,
                                        self.mount_points)
                run.processes[container.name] = process
                run.started = time.monotonic()
                self.log(f"started {run.pod.name}/{container.name} at {run.pod.ip} (pid {process.pid}): "
                         f"{' '.join(container.argv)}")
        results = []
        for run in self.running:
            results += self.check_probes(run)
        self.publish()
        return results

    def check_probes(self, run: Running) -> list[probes.ProbeResult]:
        results = []
        for container in run.pod.containers:
            process = run.processes[container.name]
            found = probes.check_container(run.pod, container, process.pid,
                                           lambda p=process: p.poll() is None, run.started)
            if process.poll() is not None:
                self.log(f"{run.pod.name}/{container.name} exited with {process.returncode}; its last lines:")
                for line in self.log_tail(run.pod, container.name):
                    self.log("  | " + line)
            results += found
        run.ready = all(r.ok for r in results)
        return results

    def log_tail(self, pod: PodPlan, container: str, lines: int = 8) -> list[str]:
        path = self.work / "logs" / f"{pod.name}_{container}.log"
        return path.read_text(errors="replace").splitlines()[-lines:]

    def services(self) -> list[services.ServiceRecord]:
        """The Services as DNS answers them now: only ready, running pods behind headless ones."""
        ready = {r.pod.name for r in self.running if r.ready and r.alive()}
        return services.records(self.docs, [r.pod for r in self.running], ready)

    def publish(self) -> None:
        """Every namespace's hosts file from the Services and the pods that are ready now."""
        self.network.write_hosts(services.hosts_lines(self.services(), self.namespace))

    def service_table(self) -> list[str]:
        return [f"service {r.name}{' (headless)' if r.headless else ''} ports {r.ports} -> "
                f"{', '.join(r.addresses) or 'no address'}" for r in self.services()]

    def pods(self) -> list[Pod]:
        return [r.pod.as_pod(ready=r.ready and r.alive()) for r in self.running]

    def dead(self) -> list[str]:
        return [r.pod.name for r in self.running if not r.alive()]

    def stop(self, deployment: str | None = None) -> None:
        """SIGTERM, then SIGKILL after the grace period, for one Deployment's pods or all."""
        chosen = [r for r in self.running if deployment in (None, r.pod.deployment)]
        for run in chosen:
            run.ready = False
            for process in run.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for run in chosen:
            for process in run.processes.values():
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if deployment is not None:
            self.publish()

    def deployments(self) -> list[str]:
        return [d["metadata"]["name"] for d in by_kind(self.docs, "Deployment")]
