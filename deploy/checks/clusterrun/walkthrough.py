"""k8s/README.md's walkthrough, followed command by command without a cluster.

The commands are the README's own: every fenced block preceded by `<!-- cluster-run: WALK... -->`
belongs to each walkthrough WALK named there, in order. Editing such a block changes what this run executes.
Commands that need a cluster are carried out by the run instead, and it says how:

  helm repo add / helm dependency update   the CI-only stub subcharts stand in (offline)
  helm install / helm upgrade              `helm template` with the same arguments: the render
                                           this run starts
  kubectl apply -f / create secret         the manifests (the secret via --dry-run=client)
  kubectl rollout status / get / logs      the pods' probes / the pod and Service table / a log
  kubectl port-forward svc/S L:R           127.0.0.1:L in later commands becomes S.NS.svc:R
  kubectl -n NS get secret S -o jsonpath   the rendered Secret's value (not printed)
  cargo build                              the binaries built before the run
  minikube ...                             nothing (no cluster)

Every other command runs as written, in bash, on "the user's machine": a network namespace of
its own on the pods' bridge, in the repository root. `... load-tester serve ...` runs in the
background there, as in its own terminal. Exported variables carry over between commands.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = re.compile(r"<!--\s*cluster-run:\s*([\w\s-]+?)\s*-->")
COMMAND_TIMEOUT_SECONDS = 300
SERVER_START_SECONDS = 30


class WalkthroughError(Exception):
    pass


def blocks(readme: str, walk: str) -> list[list[str]]:
    """The fenced blocks marked for `walk`, as lists of lines."""
    found = []
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        match = MARKER.search(line)
        if not match or walk not in match.group(1).split():
            continue
        start = next(j for j in range(i + 1, len(lines)) if lines[j].strip())
        if not lines[start].startswith("```"):
            raise WalkthroughError(f"k8s/README.md line {i + 1}: the marker is not followed by a code block")
        end = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("```"))
        found.append(lines[start + 1:end])
    if not found:
        raise WalkthroughError(f"k8s/README.md has no blocks marked `cluster-run: {walk}`")
    return found


def commands(block: list[str]) -> list[str]:
    """Commands of a block: continuation lines joined, comments and blank lines dropped."""
    result: list[str] = []
    current = ""
    for raw in block:
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
        elif line.endswith(("|", "&&")):
            current += line + " "
        else:
            result.append((current + line.strip()).strip())
            current = ""
    return result


@dataclass
class Forward:
    local_port: int
    service: str
    port: int


@dataclass
class Outcome:
    command: str
    output: str


@dataclass
class UserMachine:
    """Where the user's commands run: a namespace, the repository as working directory."""

    netns: str
    root: Path
    state: Path
    path: str
    background: list[subprocess.Popen] = field(default_factory=list)

    def bash(self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        script = (f"set -euo pipefail\n[ -f {shlex.quote(str(self.state))} ] && . {shlex.quote(str(self.state))}\n"
                  f"cd {shlex.quote(str(self.root))}\n{command}\n"
                  f"export -p > {shlex.quote(str(self.state))}\n")
        return subprocess.run(["ip", "netns", "exec", self.netns, "env", "-i", f"PATH={self.path}",
                               "HOME=/root", "bash", "-c", script],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def serve(self, command: str, log: Path) -> subprocess.Popen:
        script = (f"[ -f {shlex.quote(str(self.state))} ] && . {shlex.quote(str(self.state))}\n"
                  f"cd {shlex.quote(str(self.root))}\nexec {command}\n")
        process = subprocess.Popen(["ip", "netns", "exec", self.netns, "env", "-i", f"PATH={self.path}",
                                    "HOME=/root", "bash", "-c", script],
                                   stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.background.append(process)
        return process

    def wait_http(self, url: str, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.bash(f"curl -sf -m 2 {shlex.quote(url)} >/dev/null", timeout=10).returncode == 0:
                return
            if process.poll() is not None:
                break
            time.sleep(0.5)
        raise WalkthroughError(f"the server did not answer {url}")

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.background.clear()


def kubectl_namespace(words: list[str], default: str) -> str:
    for flag in ("-n", "--namespace"):
        if flag in words:
            return words[words.index(flag) + 1]
    return default


def secret_lookup(command: str, secrets: dict[str, dict[str, str]]) -> str:
    """`kubectl -n NS get secret S -o jsonpath='{.data.K}'` -> the rendered value, base64."""
    pattern = re.compile(r"kubectl(?: -n \S+)? get secret (\S+)(?: -n \S+)? -o jsonpath='\{\.data\.(\w+)\}'")

    def value(match: re.Match) -> str:
        name, key = match.group(1), match.group(2)
        if key not in secrets.get(name, {}):
            raise WalkthroughError(f"no Secret {name} with key {key} in the render")
        return "printf %s " + shlex.quote(secrets[name][key])

    return pattern.sub(value, command)


def forward_addresses(command: str, forwards: list[Forward], namespace: str) -> str:
    for forward in forwards:
        target = f"{forward.service}.{namespace}.svc:{forward.port}"
        command = re.sub(rf"\b(127\.0\.0\.1|localhost):{forward.local_port}\b", target, command)
    return command


def report_stats(output: str) -> dict | None:
    """The statistics in a /generateReport answer printed by a walkthrough command."""
    try:
        answer = json.loads(output)
    except json.JSONDecodeError:
        return None
    return answer.get("stats", answer) if isinstance(answer, dict) else None


def rendered_secrets(docs: list[dict]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs if d.get("kind") == "Secret"}


def check_report(stats: dict) -> list[str]:
    """missing is 0 and every request sent is accounted for exactly once."""
    problems = []
    fates = stats["succeeded"] + stats["failed"] + stats["rejected"] + stats["sendErrors"]
    if stats["sent"] == 0:
        problems.append("no request was sent")
    if stats["missing"] != 0:
        problems.append(f"missing is {stats['missing']} (first ids: {(stats.get('missingIdsSample') or [])[:3]})")
    if fates != stats["sent"]:
        problems.append(f"sent {stats['sent']} != succeeded + failed + rejected + sendErrors = {fates}")
    if stats["succeeded"] == 0:
        problems.append("no request succeeded")
    return problems


def summary(stats: dict) -> str:
    line = (f"sent {stats['sent']}, succeeded {stats['succeeded']}, failed {stats['failed']}, "
            f"rejected {stats['rejected']}, send errors {stats['sendErrors']}, missing {stats['missing']}")
    if "delivery" in stats:
        line += f", delivery {json.dumps(stats['delivery'], separators=(',', ':'))}"
    return line

