"""A task's command run as in its pod: the filesystem, name resolution and identity a KFP pod
gives the user's command, in a private mount namespace of this machine, so that the package's
entrypoint runs unchanged (no hook of any kind for the emulator in it).

Filesystem. The launcher copies every input artifact to its local path and the command writes
its outputs to theirs: component/launcher_v2.go LocalPathForURI (2.2.0 :714, 2.17.0 :1239)
maps gs:// to /gcs/, minio:// to /minio/ and s3:// to /s3/, emptyDirs from 2.3.0
(compiler/argocompiler/container.go@2.3.0:37-45, @2.17.0:59-70, writable by any user).
Before 2.15 the ExecutorOutput goes to /tmp/kfp_outputs/output_metadata.json, and a pod's /tmp
is its own. Here
each task's pod folder holds `gcs/`, `minio/`, `s3/`, `tmp/`, `run/` and the image's HOME; the
command sees them at their places (bind mounts over a root made of this machine's own
top-level folders) and sees nothing of the machine's /tmp but the paths the emulator shares
(the code and the interpreter, as the image holds them; volumes; the ML Metadata store a
cluster serves). A top-level folder other users may not enter (/root) is an empty one in the
pod, with only the shared paths in it.

Names. /etc/hosts is the cluster's DNS for its services (cluster.py hosts): a pod finds KFP's
object store by `seaweedfs.kubeflow` or `minio-service.kubeflow` as on a cluster.

Identity. The service account's namespace file (/var/run/secrets/kubernetes.io/serviceaccount/
namespace, where the launcher and the baseline lookup read it). The command runs as the
image's USER (or the administrator's runAsUser), and from 2.16 with every capability dropped
and no privilege escalation (compiler/argocompiler/security_context.go@2.16.0, @2.17.0:92-120:
allowPrivilegeEscalation false, capabilities drop ALL): setpriv's --no-new-privs, an empty
bounding set and no inheritable capabilities.

Needs Linux mount namespaces: root (to change user and drop capabilities), or an unprivileged
user namespace (unshare -r; then the command keeps the mapped root user).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence

MIRRORS = ("gcs", "minio", "s3")  # LocalPathForURI's folders
PRIVATE = (*MIRRORS, "tmp", "run")
NAMESPACE_FILE = "run/secrets/kubernetes.io/serviceaccount/namespace"  # /var/run -> /run


@dataclasses.dataclass(frozen=True)
class Security:
    """Who the command runs as: `user`:`group` (None: this process's), and whether with no
    capabilities and no privilege escalation."""

    user: int | None = None
    group: int | None = None
    drop_capabilities: bool = False

    def setpriv(self) -> list[str]:
        if os.geteuid() != 0:  # a user namespace maps only this user: it stays
            return []
        command = [shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin") or "setpriv"]
        if self.user is not None:
            command += [f"--reuid={self.user}", f"--regid={self.group or 0}", "--clear-groups"]
        if self.drop_capabilities:
            command += ["--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"]
        return command if len(command) > 1 else []


# Runs inside the new mount namespace: a tmpfs root holding a bind of each top-level entry of
# this machine's /, then the pod's own folders over its private ones, the pod's /etc/hosts,
# then the shared paths at their own places; the command runs chrooted there, as the pod's
# user, in the pod's working folder.
_SETUP = r"""
set -eu
pod=$1 workdir=$2 shared=$3 private=$4 setpriv=$5; shift 5
command_path=$PATH; PATH=/usr/sbin:/usr/bin:/sbin:/bin  # the setup's tools, then the pod's
new=$pod/.root
mkdir -p "$new"
mount -t tmpfs pod-root "$new"
chmod 755 "$new"
for entry in /*; do
  name=${entry#/}
  case " $private " in *" $name "*) continue;; esac
  if [ -L "$entry" ]; then cp -P "$entry" "$new/$name"
  elif [ -d "$entry" ] && [ "$(stat -c %A "$entry" | cut -c10)" = "-" ]; then
    mkdir -m 755 "$new/$name"  # others may not enter it: only the shared paths in it
  elif [ -d "$entry" ]; then mkdir "$new/$name"; mount --rbind "$entry" "$new/$name"
  else touch "$new/$name"; mount --bind "$entry" "$new/$name"; fi
done
for name in $private; do
  mkdir -p "$new/$name" "$pod/$name"
  mount --bind "$pod/$name" "$new/$name"
done
if [ -f "$pod/hosts" ]; then mount --bind "$pod/hosts" "$new/etc/hosts"; fi
for path in $shared; do
  if [ -d "$path" ]; then mkdir -p "$new$path"
  else mkdir -p "$(dirname "$new$path")"; touch "$new$path"; fi
  mount --bind "$path" "$new$path"
done
chroot=$(command -v chroot); PATH=$command_path
exec "$chroot" "$new" $setpriv /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
"""


def host_path(pod: str, path: str) -> str:
    """Where a path the command sees in its pod (/minio/..., /tmp/...) lies on this machine."""
    parts = path.lstrip("/").split("/", 1)
    if not path.startswith("/") or parts[0] not in PRIVATE:
        raise ValueError(f"{path} is not in a pod's own folders {PRIVATE}.")
    return os.path.join(pod, *parts)


def prepare(
    pod: str,
    hosts: str | None = None,
    namespace: str | None = None,
    home: str | None = None,
    owner: Security = Security(),
) -> None:
    """The pod's own folders, as its volumes and image give them: the launcher's mirrors
    (emptyDirs) and /tmp writable by anyone, the image's HOME as the image leaves it (its
    user's, `owner`, group-writable: kubeflow/Dockerfile), /etc/hosts and the namespace
    file."""
    for name in MIRRORS:
        os.makedirs(os.path.join(pod, name), exist_ok=True)
        os.chmod(os.path.join(pod, name), 0o777)
    os.makedirs(os.path.join(pod, "tmp"), exist_ok=True)
    os.chmod(os.path.join(pod, "tmp"), 0o1777)
    if hosts is not None:
        with open(os.path.join(pod, "hosts"), "w", encoding="utf-8") as f:
            f.write(hosts)
    if namespace is not None:
        path = os.path.join(pod, NAMESPACE_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(namespace)
    if home:
        folder = os.path.join(pod, home.lstrip("/"))
        os.makedirs(folder, exist_ok=True)
        give(folder, owner)
        os.chmod(folder, 0o2775)


def give(path: str, security: Security) -> None:
    """`path` and what is under it owned by the pod's user, as what the launcher (which runs as
    that user in the pod) writes there is."""
    if security.user is None or os.geteuid() != 0:
        return
    for folder, folders, names in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in folders + names)]:
            os.lchown(name, security.user, security.group or 0)


def run_in_pod(
    pod: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    workdir: str,
    shared: Sequence[str] = (),
    timeout_s: float | None = None,
    security: Security = Security(),
    home: str | None = None,
) -> subprocess.CompletedProcess:
    """Runs `argv` as the container command of a pod whose own folders are under `pod`
    (prepare() makes them as a cluster would; with none, a bare pod).

    Args:
      pod: this task's pod folder (made if absent).
      argv: the command and its arguments, as the spec gives them.
      env: the container's environment.
      workdir: the container's working folder (the image's WORKDIR).
      shared: paths of this machine the command also sees at their own place, under its
        private /tmp too (files or folders; no spaces).
      security: the user and capabilities the command runs with.
      home: the image's HOME, a folder of the pod's own (prepare made it).
    """
    os.makedirs(pod, exist_ok=True)
    unshare = ["unshare", "--mount", "--propagation", "private", "--fork"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    for path in shared:
        if any(c.isspace() for c in path):
            raise ValueError(f"shared path {path!r}: no spaces, please.")
    private = list(PRIVATE)
    if home:
        private.append(home.strip("/").split("/")[0])
    command = [
        *unshare,
        "sh",
        "-c",
        _SETUP,
        "pod",
        pod,
        workdir,
        " ".join(shared),
        " ".join(private),
        " ".join(security.setpriv()),
        *argv,
    ]
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
