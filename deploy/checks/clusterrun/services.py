"""Service names as the cluster's DNS would answer them, from the running pods.

A headless Service (clusterIP: None) answers with every ready pod its selector matches; a
ClusterIP Service with one backend answers with that pod's address, which is only the same as
the Service's when `port` and the resolved `targetPort` agree. Anything else would need a
Service address with its own port mapping and balancing (kube-proxy), which this run does not
have: it is refused loudly rather than approximated.
"""

from __future__ import annotations

from dataclasses import dataclass

from .workload import PodPlan, RenderError, by_kind

CLUSTER_DOMAIN = "cluster.local"


@dataclass
class ServiceRecord:
    name: str
    headless: bool
    addresses: list[str]
    ports: list[int]


def names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def selects(service: dict, pod: PodPlan) -> bool:
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(pod.labels.get(k) == v for k, v in selector.items())


def check_ports(service: dict, backends: list[PodPlan]) -> list[int]:
    ports = []
    for port in service["spec"].get("ports") or []:
        target = port.get("targetPort", port["port"])
        for pod in backends:
            numbers = set()
            for container in pod.containers:
                try:
                    numbers.add(container.port_number(target))
                except RenderError:
                    continue
            if not numbers:
                raise RenderError(f"Service {service['metadata']['name']}: targetPort {target!r} "
                                  f"names no port of pod {pod.name}")
            if int(port["port"]) not in numbers:
                raise RenderError(f"Service {service['metadata']['name']}: port {port['port']} -> "
                                  f"targetPort {target} needs a Service address with its own port "
                                  "mapping, which this run does not emulate")
        ports.append(int(port["port"]))
    return ports


def records(docs: list[dict], pods: list[PodPlan], ready: set[str]) -> list[ServiceRecord]:
    """The Services that answer, given which pods run and which of them are ready."""
    result = []
    for service in by_kind(docs, "Service"):
        name = service["metadata"]["name"]
        headless = service["spec"].get("clusterIP") == "None"
        backends = [p for p in pods if selects(service, p)]
        ports = check_ports(service, backends)
        if headless:
            publish_all = service["spec"].get("publishNotReadyAddresses", False)
            addresses = [p.ip for p in backends if publish_all or p.name in ready]
        elif len(backends) > 1:
            raise RenderError(f"Service {name}: {len(backends)} backends need kube-proxy's "
                              "balancing, which this run does not emulate")
        else:
            addresses = [p.ip for p in backends]
        result.append(ServiceRecord(name, headless, addresses, ports))
    return result


def hosts_lines(found: list[ServiceRecord], namespace: str) -> list[tuple[str, list[str]]]:
    return [(address, names(r.name, namespace)) for r in found for address in r.addresses]
