"""A task's command run as in its pod: the filesystem the KFP launcher gives the user's
command, in a private mount namespace of this machine, so that the package's entrypoint runs
unchanged (no hook of any kind for the emulator in it).

In a pod the launcher copies every input artifact to its local path and the command writes its
outputs to theirs: component/launcher_v2.go LocalPathForURI (2.2.0 :714, 2.17.0 :1239) maps
gs:// to /gcs/, minio:// to /minio/ and s3:// to /s3/, absolute paths in the container. Before
2.15 the ExecutorOutput goes to /tmp/kfp_outputs/output_metadata.json
(component.OutputMetadataFilepath), and a pod's /tmp is its own. Here each task's pod folder
holds `gcs/`, `minio/`, `s3/` and `tmp/`; the command sees them at /gcs, /minio, /s3 and /tmp
(bind mounts over a root made of the machine's own top-level folders), and sees nothing of the
machine's /tmp but the paths the emulator shares (the ML Metadata store a cluster serves).

Needs Linux mount namespaces: root, or an unprivileged user namespace (unshare -r).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence

MIRRORS = ("gcs", "minio", "s3")  # LocalPathForURI's folders
PRIVATE = (*MIRRORS, "tmp")

# Runs inside the new mount namespace: a tmpfs root holding a bind of each top-level entry of
# this machine's /, then the pod's own folders over /gcs, /minio, /s3 and /tmp, then the shared
# paths at their own places; the command runs chrooted there, in the pod's working folder.
_SETUP = r"""
set -eu
pod=$1 workdir=$2 shared=$3; shift 3
new=$pod/.root
mkdir -p "$new"
mount -t tmpfs pod-root "$new"
for entry in /*; do
  name=${entry#/}
  case " gcs minio s3 tmp " in *" $name "*) continue;; esac
  if [ -L "$entry" ]; then cp -P "$entry" "$new/$name"
  elif [ -d "$entry" ]; then mkdir "$new/$name"; mount --rbind "$entry" "$new/$name"
  else touch "$new/$name"; mount --bind "$entry" "$new/$name"; fi
done
for name in gcs minio s3 tmp; do
  mkdir -p "$new/$name" "$pod/$name"
  mount --bind "$pod/$name" "$new/$name"
done
chmod 1777 "$new/tmp"
for path in $shared; do
  if [ -d "$path" ]; then mkdir -p "$new$path"
  else mkdir -p "$(dirname "$new$path")"; touch "$new$path"; fi
  mount --bind "$path" "$new$path"
done
exec chroot "$new" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
"""


def host_path(pod: str, path: str) -> str:
    """Where a path the command sees in its pod (/minio/..., /tmp/...) lies on this machine."""
    parts = path.lstrip("/").split("/", 1)
    if not path.startswith("/") or parts[0] not in PRIVATE:
        raise ValueError(f"{path} is not in a pod's own folders {PRIVATE}.")
    return os.path.join(pod, *parts)


def run_in_pod(
    pod: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    workdir: str,
    shared: Sequence[str] = (),
    timeout_s: float | None = None,
) -> subprocess.CompletedProcess:
    """Runs `argv` as the container command of a pod whose own folders are under `pod`.

    Args:
      pod: this task's pod folder (made if absent).
      argv: the command and its arguments, as the spec gives them.
      env: the container's environment.
      workdir: the container's working folder (the image's WORKDIR).
      shared: paths of this machine the command also sees at their own place, under its
        private /tmp too (files or folders; no spaces).
    """
    os.makedirs(pod, exist_ok=True)
    unshare = ["unshare", "--mount", "--propagation", "private", "--fork"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    for path in shared:
        if any(c.isspace() for c in path):
            raise ValueError(f"shared path {path!r}: no spaces, please.")
    command = [*unshare, "sh", "-c", _SETUP, "pod", pod, workdir, " ".join(shared), *argv]
    try:
        done = subprocess.run(
            command, env=dict(env), capture_output=True, text=True, timeout=timeout_s
        )
    finally:
        _remove_root(pod)
    if done.returncode != 0 and "mount" in done.stderr and "Operation not permitted" in done.stderr:
        raise RuntimeError(
            "the KFP emulator runs each task in a mount namespace, as in its pod, and this "
            f"machine refused one ({shlex.join(unshare)}): run as root, or allow unprivileged "
            f"user namespaces.\n{done.stderr[-1000:]}"
        )
    return done


def _remove_root(pod: str) -> None:
    """The empty mount point the namespace's root was made on (its mounts died with it)."""
    try:
        os.rmdir(os.path.join(pod, ".root"))
    except OSError:
        pass
