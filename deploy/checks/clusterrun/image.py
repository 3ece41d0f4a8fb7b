"""What each image of the root Dockerfile holds, read from the Dockerfile itself.

A runtime stage gives its ENV, WORKDIR, USER, ENTRYPOINT, CMD and the files it COPYs. The
cluster-free run lays those files out from the repository (the binaries from the build
directory, and what another build stage makes from a local folder holding the same thing, such
as the onnxruntime library installed from the same pinned wheel) at the same paths, so a pod
sees what the image would give it. `${NAME}` in ENV values takes the Dockerfile's ARG defaults.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# The runtime base image's own configuration (gcr.io/distroless/cc-debian12:nonroot). It is not
# in the repository and cannot be pulled here, so it is written down once: a stage inherits it.
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}
BASE_IMAGE_WORKDIR = "/home/nonroot"
BASE_IMAGE_USER = "65532"

# Where the build stage puts the binaries (`cp target/release/... /out/bin/`).
BUILD_BIN_DIR = "/out/bin/"


class DockerfileError(Exception):
    pass


@dataclass
class ImageFile:
    """One path the image provides: a repository file or folder, a binary, or an empty folder."""

    dest: str
    source: Path | None  # None: an empty folder made by the build stage
    is_dir: bool
    owner: str | None = None


@dataclass
class Image:
    target: str
    env: dict[str, str] = field(default_factory=lambda: dict(BASE_IMAGE_ENV))
    workdir: str = BASE_IMAGE_WORKDIR
    user: str = BASE_IMAGE_USER
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    files: list[ImageFile] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        result.append((keyword.upper(), rest.strip()))
        current = ""
    return result


def exec_form(stage: str, keyword: str, value: str) -> list[str]:
    if not value.startswith("["):
        raise DockerfileError(f"stage {stage}: {keyword} in shell form needs a shell the image lacks")
    return list(json.loads(value))


def parse_env(value: str) -> dict[str, str]:
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def substitute(value: str, args: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced by the ARG values in scope; an unknown name is an error."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in args:
            raise DockerfileError(f"${{{name}}} has no ARG value in scope")
        return args[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, value)


def copy_files(
    stage: str, value: str, root: Path, bin_dir: Path, stage_dirs: dict[str, Path]
) -> list[ImageFile]:
    words = shlex.split(value)
    options = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    *sources, dest = paths
    from_stage = options.get("--from")
    owner = options.get("--chown")
    files = []
    for source in sources:
        if from_stage and source.startswith(BUILD_BIN_DIR):
            binary = bin_dir / source.removeprefix(BUILD_BIN_DIR)
            target = dest if not dest.endswith("/") else dest + binary.name
            files.append(ImageFile(target, binary, is_dir=False, owner=owner))
        elif from_stage in stage_dirs:
            files.append(ImageFile(dest.rstrip("/"), stage_dirs[from_stage], is_dir=True, owner=owner))
        elif from_stage and from_stage != "build":
            raise DockerfileError(
                f"stage {stage}: COPY --from={from_stage} {source}: no local folder stands in for "
                f"that stage's output (for onnxruntime: export ORT_DYLIB_PATH, see "
                f"scripts/install-onnxruntime.sh)"
            )
        elif from_stage:
            files.append(ImageFile(dest.rstrip("/") or "/", None, is_dir=True, owner=owner))
        else:
            local = root / source
            if not local.exists():
                raise DockerfileError(f"stage {stage}: COPY source {source} is not in the repository")
            if local.is_dir():
                files.append(ImageFile(dest.rstrip("/"), local, is_dir=True, owner=owner))
            else:
                target = dest + local.name if dest.endswith("/") else dest
                files.append(ImageFile(target, local, is_dir=False, owner=owner))
    return files


def load_images(
    dockerfile: Path, root: Path, bin_dir: Path, stage_dirs: dict[str, Path] | None = None
) -> dict[str, Image]:
    """Every named stage built on the runtime base image, by target name. `stage_dirs` gives,
    for a build stage a runtime stage copies from, the local folder that holds its output."""
    stage_dirs = stage_dirs or {}
    images: dict[str, Image] = {}
    current: Image | None = None
    global_args: dict[str, str] = {}
    stage_args: dict[str, str] = {}
    seen_from = False
    for keyword, value in instructions(dockerfile.read_text()):
        if keyword == "ARG":
            name, _, default = value.partition("=")
            if not seen_from:
                global_args[name] = default
            else:
                stage_args[name] = default or global_args.get(name, "")
            continue
        if keyword == "FROM":
            seen_from = True
            stage_args = {}
            words = value.split()
            runtime = words[0] == "${RUNTIME_IMAGE}" and len(words) == 3 and words[1].upper() == "AS"
            current = Image(target=words[2]) if runtime else None
            if current:
                images[current.target] = current
        elif current is None:
            continue
        elif keyword == "ENV":
            env = parse_env(value)
            current.env.update({k: substitute(v, stage_args) for k, v in env.items()})
        elif keyword == "WORKDIR":
            current.workdir = value
        elif keyword == "USER":
            current.user = value
        elif keyword == "ENTRYPOINT":
            current.entrypoint = exec_form(current.target, keyword, value)
            current.cmd = []
        elif keyword == "CMD":
            current.cmd = exec_form(current.target, keyword, value)
        elif keyword == "COPY":
            current.files.extend(copy_files(current.target, value, root, bin_dir, stage_dirs))
    return images


def image_target(image: str) -> str:
    """`inference-harness/inference:0.1.0` -> `inference`: the repository's last path segment."""
    name = image.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]
