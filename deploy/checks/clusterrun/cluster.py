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
from .workload import ContainerPlan, PodPlan, by_kind, fill_containers, find, pod_plans

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

    def security_problems(self, run: Running, container: ContainerPlan) -> list[str]:
        """What the running process shows of its security context, against the render."""
        pid = run.processes[container.name].pid
        try:
            status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if ":\t" in line)
            mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except OSError as e:
            return [f"cannot read /proc/{pid}: {e}"]
        problems = []
        if status["Uid"].split()[:2] != [str(container.uid)] * 2 or status["Gid"].split()[:2] != [str(container.gid)] * 2:
            problems.append(f"uid/gid {status['Uid'].split()[0]}/{status['Gid'].split()[0]}, "
                            f"expected {container.uid}/{container.gid}")
        if container.no_new_privileges and status.get("NoNewPrivs", "").strip() != "1":
            problems.append("no_new_privs is not set")
        if container.drop_all_capabilities and any(int(status[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")):
            problems.append(f"capabilities left: CapEff {status['CapEff'].strip()} CapBnd {status['CapBnd'].strip()}")
        root = next((m.split() for m in mounts if m.split()[4] == "/"), None)
        if container.read_only_root and (root is None or "ro" not in root[5].split(",")):
            problems.append("/ is not mounted read-only")
        return problems

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
