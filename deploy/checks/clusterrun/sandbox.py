"""One container as a process: its pod's network namespace, a private mount namespace that
lays out the image's files and the pod's volumes, and the container's user and security context.

    ip netns exec NETNS unshare -m --propagation private sh -c SETUP

SETUP mounts a tmpfs at each top folder of the image's files and binds the repository's files
(and the built binaries) onto their image paths, mounts the volumes (emptyDir as tmpfs;
ConfigMap, Secret and service account files read-only), remounts / read-only when
readOnlyRootFilesystem is set (only inside this mount namespace), then
`exec setpriv ... env -i ... ARGV` in the image's working directory as the container's user.
Folders that must exist on the host as mount points are made and later removed.
"""

from __future__ import annotations

import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .workload import ContainerPlan, PodPlan, RenderError

MOUNT_POINTS_FILE = "mount-points"


@dataclass
class Entry:
    """A path the container must see: a bound file or folder, or an empty folder."""

    path: str
    source: Path | None
    is_dir: bool
    owner: str | None = None


def overlay_root(entry: Entry) -> str:
    """Where a tmpfs goes so that the entry can be made: its topmost ancestor the host lacks
    (made as a mount point); else a folder entry itself, a file entry its parent folder. What
    the tmpfs hides on the host is hidden inside this mount namespace only."""
    pure = PurePosixPath(entry.path)
    chain = [*reversed(pure.parents), pure] if entry.is_dir else list(reversed(pure.parents))
    for folder in chain:
        if str(folder) != "/" and not Path(folder).exists():
            return str(folder)
    return entry.path if entry.is_dir else str(pure.parent)


def readable_by_others(path: Path) -> bool:
    """The image's files must be readable by its non-root user. Only the file or folder itself
    counts: the container reaches it through the bind mount, not through its host path."""
    wanted = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
    return path.stat().st_mode & wanted == wanted


def outermost(paths: set[str]) -> list[str]:
    keep = [p for p in paths if not any(PurePosixPath(p).is_relative_to(o) and p != o for o in paths)]
    return sorted(keep)


class MountPoints:
    """Host folders made as mount points, remembered in a file so that a later run removes what
    a killed one left."""

    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / MOUNT_POINTS_FILE
        state_dir.mkdir(parents=True, exist_ok=True)

    def ensure(self, path: str) -> None:
        created = []
        for folder in [*reversed(PurePosixPath(path).parents), PurePosixPath(path)]:
            if not Path(folder).exists():
                Path(folder).mkdir()
                created.append(str(folder))
        if created:
            with self.file.open("a") as f:
                f.writelines(c + "\n" for c in created)

    def remove_all(self) -> None:
        if not self.file.exists():
            return
        for folder in reversed(self.file.read_text().split()):
            try:
                Path(folder).rmdir()
            except OSError:
                pass
        self.file.unlink()


def entries(plan: ContainerPlan) -> list[Entry]:
    result = [Entry(f.dest, f.source, f.is_dir, f.owner) for f in plan.image.files]
    if plan.workdir != "/":
        result.append(Entry(plan.workdir, None, True, plan.image.user))
    result += [Entry(v.path, None, True) for v in plan.volumes]
    return result


def image_script(items: list[Entry], roots: list[str], read_only: bool) -> list[str]:
    q = shlex.quote
    lines = [f"mount -t tmpfs -o mode=0755 image-files {q(r)}" for r in roots]
    for entry in items:
        if entry.path not in roots:
            parent = str(PurePosixPath(entry.path).parent)
            make = f"mkdir -p {q(entry.path)}" if entry.is_dir else f"mkdir -p {q(parent)} && touch {q(entry.path)}"
            lines.append(make)
        if entry.source is not None:
            lines.append(f"mount --bind -o ro {q(str(entry.source))} {q(entry.path)}")
        if entry.owner:
            lines.append(f"chown {q(entry.owner)} {q(entry.path)}")
    if read_only:
        lines += [f"mount -o remount,bind,ro {q(r)}" for r in roots]
    return lines


def volume_script(plan: ContainerPlan, files_dir: Path) -> list[str]:
    q = shlex.quote
    lines = []
    for volume in plan.volumes:
        if volume.files is None:
            lines.append(f"mount -t tmpfs -o mode=0777 emptydir-{q(volume.name)} {q(volume.path)}")
            continue
        source = files_dir / volume.name
        source.mkdir(parents=True, exist_ok=True)
        source.chmod(0o755)
        for key, data in volume.files.items():
            (source / key).write_bytes(data)
            (source / key).chmod(0o644)
        lines.append(f"mount --bind -o ro {q(str(source))} {q(volume.path)}")
    return lines


def exec_line(plan: ContainerPlan, fs_group: int | None) -> str:
    groups = ["--groups", str(fs_group)] if fs_group is not None else ["--clear-groups"]
    setpriv = ["setpriv", "--reuid", str(plan.uid), "--regid", str(plan.gid), *groups]
    if plan.no_new_privileges:
        setpriv.append("--no-new-privs")
    if plan.drop_all_capabilities:
        setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
    env = [f"{k}={v}" for k, v in plan.env.items()]
    return shlex.join(["exec", *setpriv, "env", "-i", *env, *plan.argv])


def setup_script(plan: ContainerPlan, files_dir: Path, fs_group: int | None,
                 mount_points: MountPoints) -> str:
    items = entries(plan)
    roots = outermost({overlay_root(e) for e in items})
    for entry in items:
        if entry.source and any(entry.source.is_relative_to(r) for r in roots):
            raise RenderError(f"{entry.source} would be hidden by the tmpfs for {entry.path}")
        if entry.source and not readable_by_others(entry.source):
            raise RenderError(f"{entry.source} is not readable by the container's user {plan.uid}")
    for root in roots:
        mount_points.ensure(root)
    lines = ["set -e", *image_script(items, roots, plan.read_only_root), *volume_script(plan, files_dir)]
    if plan.read_only_root:
        lines.append("mount -o remount,bind,ro /")
    lines.append(f"cd {shlex.quote(plan.workdir)}")
    lines.append(exec_line(plan, fs_group))
    return "\n".join(lines)


def start(netns: str, pod: PodPlan, plan: ContainerPlan, fs_group: int | None, work: Path,
          mount_points: MountPoints) -> subprocess.Popen:
    """The container's process; its output goes to WORK/logs/POD_CONTAINER.log."""
    files_dir = work / "volumes" / pod.name / plan.name
    script = setup_script(plan, files_dir, fs_group, mount_points)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "scripts").mkdir(parents=True, exist_ok=True)
    (work / "scripts" / f"{pod.name}_{plan.name}.sh").write_text(script + "\n")
    log = (work / "logs" / f"{pod.name}_{plan.name}.log").open("wb")
    return subprocess.Popen(
        ["ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
