"""Every rendered probe, run as the kubelet runs it, against the running container.

httpGet and tcpSocket go from the root namespace (the node) to the pod's address; exec runs the
command inside the container's namespaces as its user. A probe passes when it succeeds within
initialDelaySeconds + periodSeconds x failureThreshold (+ SLACK) from the container's start,
Kubernetes' defaults applied. The startup probe comes first: the others' windows start once it
has passed, as on a kubelet. The time printed is from the container's start.
"""

from __future__ import annotations

import http.client
import shlex
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from .workload import ContainerPlan, PodPlan, RenderError

SLACK_SECONDS = 5.0
POLL_SECONDS = 0.5
ORDER = ("startupProbe", "readinessProbe", "livenessProbe")


@dataclass
class ProbeResult:
    pod: str
    container: str
    kind: str
    action: str
    ok: bool
    detail: str
    seconds: float

    def line(self) -> str:
        return (f"probe {self.pod}/{self.container} {self.kind}: {self.action} -> "
                f"{self.detail} ({self.seconds:.1f}s)")


def window(probe: dict) -> float:
    return (probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10)
            * probe.get("failureThreshold", 3) + SLACK_SECONDS)


def http_get(address: str, plan: ContainerPlan, spec: dict, timeout: float) -> tuple[bool, str]:
    port = plan.port_number(spec["port"])
    host = spec.get("host") or address
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    if spec.get("scheme", "HTTP").upper() == "HTTPS":
        # The kubelet does not verify the certificate of an HTTPS probe.
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", spec.get("path", "/"), headers=headers)
        status = conn.getresponse().status
        return 200 <= status < 400, f"HTTP {status}"
    except OSError as e:
        return False, str(e) or type(e).__name__
    finally:
        conn.close()


def tcp_socket(address: str, plan: ContainerPlan, spec: dict, timeout: float) -> tuple[bool, str]:
    port = plan.port_number(spec["port"])
    try:
        with socket.create_connection((spec.get("host") or address, port), timeout=timeout):
            return True, "connected"
    except OSError as e:
        return False, str(e)


def exec_command(pid: int, plan: ContainerPlan, spec: dict, timeout: float) -> tuple[bool, str]:
    command = ["nsenter", "--target", str(pid), "--mount", "--net", "--wd",
               "setpriv", "--reuid", str(plan.uid), "--regid", str(plan.gid), "--clear-groups",
               *spec["command"]]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    return done.returncode == 0, f"exit {done.returncode}"


def describe(probe: dict) -> str:
    if "httpGet" in probe:
        spec = probe["httpGet"]
        return f"GET {spec.get('scheme', 'HTTP').lower()}://:{spec['port']}{spec.get('path', '/')}"
    if "tcpSocket" in probe:
        return f"TCP :{probe['tcpSocket']['port']}"
    if "exec" in probe:
        return "exec " + shlex.join(probe["exec"]["command"])
    raise RenderError(f"probe kind {sorted(probe)} is not emulated")


def attempt(pod: PodPlan, plan: ContainerPlan, pid: int, probe: dict) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        return http_get(pod.ip, plan, probe["httpGet"], timeout)
    if "tcpSocket" in probe:
        return tcp_socket(pod.ip, plan, probe["tcpSocket"], timeout)
    if "exec" in probe:
        return exec_command(pid, plan, probe["exec"], timeout)
    raise RenderError(f"probe kind {sorted(probe)} is not emulated")


def check(pod: PodPlan, plan: ContainerPlan, pid: int, kind: str, alive: Callable[[], bool],
          since: float | None = None, origin: float | None = None) -> ProbeResult:
    """Polls one probe until it succeeds, its window (counted from `since`, the container's start
    or the startup probe's success; default now) is over, or the process has died. The time
    reported counts from `origin` (default: `since`)."""
    probe = plan.probes[kind]
    action = describe(probe)
    since = time.monotonic() if since is None else since
    start = since if origin is None else origin
    deadline = since + window(probe)
    detail = "not tried"
    while time.monotonic() < deadline:
        ok, detail = attempt(pod, plan, pid, probe)
        if ok:
            return ProbeResult(pod.name, plan.name, kind, action, True, detail, time.monotonic() - start)
        if not alive():
            detail += "; the process has exited"
            break
        time.sleep(POLL_SECONDS)
    return ProbeResult(pod.name, plan.name, kind, action, False, detail, time.monotonic() - start)


def check_container(pod: PodPlan, plan: ContainerPlan, pid: int, alive: Callable[[], bool],
                    started: float) -> list[ProbeResult]:
    """Every probe of the container, in the kubelet's order; times count from its start."""
    results = []
    since = started
    for kind in ORDER:
        if kind in plan.probes:
            result = check(pod, plan, pid, kind, alive, since, origin=started)
            results.append(result)
            if kind == "startupProbe":
                if not result.ok:
                    break
                since = started + result.seconds
    return results
