"""From rendered Kubernetes objects to the processes a kubelet would start.

Each Deployment becomes `replicas` pods; each container becomes one process plan: the argv
(`command` else the image's ENTRYPOINT, `args` else its CMD), the environment (the image's ENV
overlaid by the rendered `env`, with `valueFrom` resolved as the kubelet resolves it), the
working directory, the ports, the probes, the volumes and the security context.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from .image import Image, image_target
from .pods import Container, ContainerPort, Pod

# The kubelet gives every container the API server's Service address, whatever
# enableServiceLinks says. Nothing listens there in this run, and no route leads to it.
API_SERVER_HOST = "10.96.0.1"
API_SERVER_PORT = "443"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROBE_KINDS = ("startupProbe", "readinessProbe", "livenessProbe")


class RenderError(Exception):
    """The render asks for something the kubelet would refuse, or this run cannot emulate."""


@dataclass
class Volume:
    """A mounted volume: an emptyDir (tmpfs) or files (ConfigMap, Secret, service account)."""

    path: str
    name: str
    files: dict[str, bytes] | None  # None: an emptyDir
    read_only: bool = False


@dataclass
class ContainerPlan:
    name: str
    image: Image
    argv: list[str]
    env: dict[str, str]
    workdir: str
    ports: list[ContainerPort]
    probes: dict[str, dict]
    volumes: list[Volume]
    uid: int
    gid: int
    read_only_root: bool
    no_new_privileges: bool
    drop_all_capabilities: bool

    def port_number(self, port: int | str) -> int:
        """A probe's or Service's port: a number, or the name of one of this container's ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in self.ports:
            if p.name == port:
                return p.container_port
        raise RenderError(f"container {self.name}: no port named {port!r}")


@dataclass
class PodPlan:
    deployment: str
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: list[ContainerPlan] = field(default_factory=list)
    ip: str = ""

    def as_pod(self, ready: bool = True) -> Pod:
        return Pod(
            name=self.name,
            namespace=self.namespace,
            ip=self.ip,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            containers=[Container(c.name, list(c.ports)) for c in self.containers],
            ready=ready,
        )


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def find(docs: list[dict], kind: str, name: str) -> dict | None:
    for doc in by_kind(docs, kind):
        if doc["metadata"]["name"] == name:
            return doc
    return None


def replicas(docs: list[dict], deployment: dict) -> int:
    """The rendered count, else the scaler's minimum, else Kubernetes' default of 1."""
    if deployment["spec"].get("replicas") is not None:
        return int(deployment["spec"]["replicas"])
    name = deployment["metadata"]["name"]
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return int(hpa["spec"].get("minReplicas", 1))
    for scaled in by_kind(docs, "ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaled["spec"].get("minReplicaCount", 0))
    return 1


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity (`500m`, `1`, `256Mi`) as a number."""
    suffixes = {"m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
                "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30)}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or (match.group(2) and match.group(2) not in suffixes):
        raise RenderError(f"unsupported quantity {value!r}")
    return Decimal(match.group(1)) * suffixes.get(match.group(2), Decimal(1))


def resource_field(container: dict, ref: dict) -> str:
    """resourceFieldRef: the value divided by the divisor, rounded up, as the kubelet does."""
    section, _, resource = ref["resource"].partition(".")
    value = (container.get("resources", {}).get(section) or {}).get(resource)
    if value is None:
        raise RenderError(f"resourceFieldRef {ref['resource']}: not set on the container")
    divisor = quantity(ref.get("divisor", "1"))
    return str(math.ceil(quantity(value) / divisor))


def secret_value(docs: list[dict], namespace: str, ref: dict) -> str | None:
    secret = find(docs, "Secret", ref["name"])
    data = (secret or {}).get("data") or {}
    if ref["key"] in data:
        return base64.b64decode(data[ref["key"]]).decode()
    string_data = (secret or {}).get("stringData") or {}
    if ref["key"] in string_data:
        return string_data[ref["key"]]
    if ref.get("optional"):
        return None
    raise RenderError(f"env from Secret {namespace}/{ref['name']} key {ref['key']}: no such Secret or key")


def field_value(pod: PodPlan, path: str, spec: dict) -> str:
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "status.podIP": pod.ip,
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "spec.nodeName": "cluster-run",
    }
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return getattr(pod, match.group(1)).get(match.group(2), "")
    if path not in fields:
        raise RenderError(f"fieldRef {path}: not emulated")
    return fields[path]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` references (`$$(VAR)` stays literal)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def environment(docs: list[dict], pod: PodPlan, spec: dict, container: dict, image: Image) -> dict[str, str]:
    env = dict(image.env)
    env["HOSTNAME"] = pod.name
    env["KUBERNETES_SERVICE_HOST"] = API_SERVER_HOST
    env["KUBERNETES_SERVICE_PORT"] = API_SERVER_PORT
    if container.get("envFrom"):
        raise RenderError(f"container {container['name']}: envFrom is not emulated")
    for item in container.get("env") or []:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = expand(str(item.get("value", "")), env)
        elif "secretKeyRef" in source:
            value = secret_value(docs, pod.namespace, source["secretKeyRef"])
            if value is not None:
                env[item["name"]] = value
        elif "fieldRef" in source:
            env[item["name"]] = field_value(pod, source["fieldRef"]["fieldPath"], spec)
        elif "resourceFieldRef" in source:
            env[item["name"]] = resource_field(container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = (find(docs, "ConfigMap", ref["name"]) or {}).get("data", {})[ref["key"]]
        else:
            raise RenderError(f"env {item['name']}: valueFrom {sorted(source)} is not emulated")
    return env


def service_account_files(docs: list[dict], pod: PodPlan, spec: dict) -> dict[str, bytes] | None:
    """The token volume, if the pod and its ServiceAccount leave automounting on. The token and
    CA are placeholders: there is no API server to accept them."""
    account = find(docs, "ServiceAccount", spec.get("serviceAccountName", "default")) or {}
    if spec.get("automountServiceAccountToken", account.get("automountServiceAccountToken", True)) is False:
        return None
    return {"token": b"cluster-run-placeholder-token", "namespace": pod.namespace.encode(),
            "ca.crt": placeholder_ca()}


@functools.cache
def placeholder_ca() -> bytes:
    """A self-signed certificate for the service account volume's ca.crt."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=cluster-run-placeholder-ca", "-keyout", f"{tmp}/key.pem",
                        "-out", f"{tmp}/ca.crt"], check=True, capture_output=True)
        return Path(tmp, "ca.crt").read_bytes()


def volumes(docs: list[dict], pod: PodPlan, spec: dict, container: dict) -> list[Volume]:
    declared = {v["name"]: v for v in spec.get("volumes") or []}
    result = []
    for mount in container.get("volumeMounts") or []:
        volume = declared[mount["name"]]
        read_only = bool(mount.get("readOnly"))
        if "emptyDir" in volume:
            files = None
        elif "configMap" in volume:
            data = (find(docs, "ConfigMap", volume["configMap"]["name"]) or {}).get("data")
            if data is None:
                raise RenderError(f"volume {mount['name']}: no ConfigMap {volume['configMap']['name']}")
            files = {k: v.encode() for k, v in data.items()}
            read_only = True
        elif "secret" in volume:
            secret = find(docs, "Secret", volume["secret"]["secretName"])
            if secret is None:
                raise RenderError(f"volume {mount['name']}: no Secret {volume['secret']['secretName']}")
            files = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            read_only = True
        else:
            raise RenderError(f"volume {mount['name']}: kind {sorted(volume)} is not emulated")
        result.append(Volume(mount["mountPath"], mount["name"], files, read_only))
    token = service_account_files(docs, pod, spec)
    if token is not None:
        result.append(Volume(SERVICE_ACCOUNT_DIR, "kube-api-access", token, read_only=True))
    return result


def user_ids(image: Image, pod_context: dict, context: dict) -> tuple[int, int]:
    default_uid, _, default_gid = image.user.partition(":")
    if not default_uid.isdigit():
        raise RenderError(f"image {image.target}: USER {image.user} is not numeric")
    uid = context.get("runAsUser", pod_context.get("runAsUser", int(default_uid)))
    gid = context.get("runAsGroup", pod_context.get("runAsGroup", int(default_gid or 0)))
    if (context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) and uid == 0):
        raise RenderError(f"image {image.target}: runAsNonRoot, but it would run as root")
    return int(uid), int(gid)


def container_plan(docs: list[dict], pod: PodPlan, spec: dict, container: dict,
                   images: dict[str, Image]) -> ContainerPlan:
    target = image_target(container["image"])
    if target not in images:
        raise RenderError(f"container {container['name']}: image {container['image']} is no Dockerfile target")
    image = images[target]
    env = environment(docs, pod, spec, container, image)
    command = container.get("command") or image.entrypoint
    args = container.get("args") if "args" in container or "command" in container else image.cmd
    context = container.get("securityContext") or {}
    uid, gid = user_ids(image, spec.get("securityContext") or {}, context)
    return ContainerPlan(
        name=container["name"],
        image=image,
        argv=[expand(str(a), env) for a in [*command, *(args or [])]],
        env=env,
        workdir=container.get("workingDir") or image.workdir,
        ports=[ContainerPort(p.get("name"), int(p["containerPort"]), p.get("protocol", "TCP"))
               for p in container.get("ports") or []],
        probes={kind: container[kind] for kind in PROBE_KINDS if kind in container},
        volumes=volumes(docs, pod, spec, container),
        uid=uid,
        gid=gid,
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        no_new_privileges=context.get("allowPrivilegeEscalation") is False,
        drop_all_capabilities="ALL" in ((context.get("capabilities") or {}).get("drop") or []),
    )


def pod_plans(docs: list[dict], namespace: str, skip: set[str]) -> list[PodPlan]:
    """Every pod the Deployments ask for (IPs still empty), except Deployments named in skip."""
    plans = []
    for deployment in by_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        if name in skip:
            continue
        template = deployment["spec"]["template"]
        for index in range(replicas(docs, deployment)):
            plans.append(PodPlan(
                deployment=name,
                name=f"{name}-{index}",
                namespace=deployment["metadata"].get("namespace") or namespace,
                labels=dict(template["metadata"].get("labels") or {}),
                annotations=dict(template["metadata"].get("annotations") or {}),
            ))
    return plans


def fill_containers(docs: list[dict], plan: PodPlan, images: dict[str, Image]) -> None:
    """Container plans need the pod's IP (status.podIP), so they are built once it has one."""
    deployment = find(docs, "Deployment", plan.deployment)
    assert deployment is not None
    spec = deployment["spec"]["template"]["spec"]
    if spec.get("initContainers"):
        raise RenderError(f"Deployment {plan.deployment}: init containers are not emulated")
    plan.containers = [container_plan(docs, plan, spec, c, images) for c in spec["containers"]]
