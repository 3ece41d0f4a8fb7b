"""Pod networking without a cluster: one network namespace per pod on a private bridge.

Every pod gets its own namespace, a veth pair onto the bridge and an address in POD_SUBNET; the
root namespace (where the probes and Prometheus run, like a node's kubelet) holds the bridge's
own address. No namespace has a default route, so nothing leaves the bridge. Names resolve from
a private hosts file per namespace (`ip netns exec` mounts /etc/netns/NAME/hosts over
/etc/hosts); the resolv.conf beside it names no server, so a name missing from the hosts file
fails at once instead of being asked of any DNS server.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BRIDGE = "clusterrun0"
POD_SUBNET = "10.244.77"
NODE_IP = f"{POD_SUBNET}.1"
PREFIX_LEN = 24
NETNS_PREFIX = "clusterrun-"
NETNS_CONFIG = Path("/etc/netns")
RESOLV_CONF = "# cluster-free run: names resolve from the hosts file only\noptions ndots:1\n"
LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def ours() -> list[str]:
    listing = ip("netns", "list").stdout.split("\n")
    return [line.split()[0] for line in listing if line.startswith(NETNS_PREFIX)]


def netns_pids(name: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", name, check=False).stdout.split()]


class Network:
    def __init__(self) -> None:
        self.next_host = 10
        self.namespaces: dict[str, str] = {}  # netns name -> address

    def up(self) -> None:
        remove_leftovers()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{NODE_IP}/{PREFIX_LEN}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")

    def add(self, name: str) -> tuple[str, str]:
        """A namespace for `name` with its own address; returns (netns name, address)."""
        netns = NETNS_PREFIX + name
        address = f"{POD_SUBNET}.{self.next_host}"
        veth = f"crv{self.next_host}"
        self.next_host += 1
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", BRIDGE, "up")
        ip("-n", netns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        config = NETNS_CONFIG / netns
        config.mkdir(parents=True, exist_ok=True)
        (config / "resolv.conf").write_text(RESOLV_CONF)
        (config / "hosts").write_text(LOCALHOST)
        self.namespaces[netns] = address
        return netns, address

    def write_hosts(self, records: list[tuple[str, list[str]]]) -> None:
        """Every namespace's hosts file: its own name, then the Services. Written in place, so
        the file a running process has mounted changes with it (as DNS answers would)."""
        services = "".join(f"{address}\t{' '.join(names)}\n" for address, names in records)
        for netns, address in self.namespaces.items():
            own = f"{address}\t{netns.removeprefix(NETNS_PREFIX)}\n"
            with open(NETNS_CONFIG / netns / "hosts", "r+") as f:
                f.seek(0)
                f.write(LOCALHOST + own + services)
                f.truncate()

    def down(self) -> None:
        remove_leftovers()


def remove_leftovers() -> None:
    """Everything a run (this one, or one that was killed) left: namespaces, bridge, config."""
    for netns in ours():
        for pid in netns_pids(netns):
            subprocess.run(["kill", "-KILL", str(pid)], check=False)
        ip("netns", "delete", netns, check=False)
        shutil.rmtree(NETNS_CONFIG / netns, ignore_errors=True)
    for stale in NETNS_CONFIG.glob(NETNS_PREFIX + "*") if NETNS_CONFIG.exists() else []:
        shutil.rmtree(stale, ignore_errors=True)
    if ip("link", "show", BRIDGE, check=False).returncode == 0:
        ip("link", "delete", BRIDGE, check=False)
