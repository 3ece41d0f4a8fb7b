"""The pods of a cluster-free run, as the monitoring side sees them."""
from dataclasses import dataclass, field


@dataclass
class ContainerPort:
    name: str | None
    container_port: int
    protocol: str = "TCP"


@dataclass
class Container:
    name: str
    ports: list[ContainerPort] = field(default_factory=list)


@dataclass
class Pod:
    name: str
    namespace: str
    ip: str
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: list[Container]
    phase: str = "Running"
    ready: bool = True
