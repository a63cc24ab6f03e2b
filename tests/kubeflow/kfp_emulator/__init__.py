"""Executes a compiled package on this machine, the way the KFP v2 driver and launcher would.

No cluster, Docker engine or network is needed: each task's own container command (the
package's `python -m kubeflow.entrypoint ...`, or whatever the spec names) runs in a subprocess
of this environment, in dependency order, with the ExecutorInput JSON the driver builds and the
launcher substitutes for `{{$}}`, in a mount namespace that gives it its pod's filesystem
(pod.py: the launcher's /gcs, /minio, /s3 mirrors and a private /tmp). What the spec says is
what runs: its commands, arguments, environment, parameters and artifact wiring; the
entrypoint has no hook for the emulator.

A test tool, not shipped: it lives under tests/ and stays out of the wheel and the image.

Two launchers, chosen by the package:
- a `.yaml` KFP package runs as the open-source backend runs it on a KFP install (cluster.py:
  the release, the object store behind the services its manifests define, standalone or
  multi-user namespaces with their own keys and kfp-launcher roots, the pods' security), per
  release (read from kubeflow/pipelines `backend/src/v2/` and `manifests/` at tags 2.2.0-2.17.0,
  each behaviour cited beside its code): the root from the run, else the namespace's, else
  KFP's; the store session the root driver records; a pod per task (inputs downloaded before
  the command with the session's keys, outputs uploaded after it under the run's prefix);
  inputs rebuilt from ML Metadata (named by id, empty schema, metadata round-tripped); from 2.4
  a uuid in output URIs, from 2.5 the `executor-logs` output, from 2.15 output names and the
  outputFile under the task root, from 2.16 a failed task's logs uploaded and every capability
  dropped, from 2.17 the driver's placeholders; the ExecutorOutput parsed strictly and merged;
  no session for an input outside the root's bucket; parameters checked against the component's
  definitions; no `preCacheCheck` hook, no resolver executors; every task's outputs recorded in
  an ML Metadata store as the launcher records them, served as KFP's metadata service;
- a `.json` PipelineJob runs as Vertex does: ExampleGen's driver hook first, and resolver tasks
  answered from this run's history (nothing blessed before the first run, as on a new project).

What is emulated rather than read from the spec: the driver and launcher themselves, Kubernetes
(DNS, service links, secrets, ConfigMaps, the pod's filesystem and user) and the metadata
service's transport. The object store is not emulated: it is SeaweedFS (tests/helpers/seaweedfs.py),
whose answers and refusals are its own. Emulated behaviour is only as faithful as its citation:
tests/kubeflow shows TFX's bare entrypoint, and a package with the root a profile may not
write, failing under it as they fail on a cluster.

  spec.py      a package read with kfp's own loader; task order
  cluster.py   the install: services, namespaces, secrets, ConfigMaps; the root's session
  store.py     the launcher's buckets over the real store; providers config
  runner.py    LocalSpecRunner: the driver and the launcher, in a task's order
  launcher.py  their rules per release: uploads, merges, secrets, parameters, placeholders
  image.py     the image's USER, ENV and WORKDIR, read from kubeflow/Dockerfile
  pod.py       a task's command run in its pod's filesystem, names and identity
  metadata.py  ML Metadata filled as the launcher fills it, and served over gRPC
"""

from tests.kubeflow.kfp_emulator.cluster import DEFAULT_PIPELINE_ROOT, KUBEFLOW, Cluster
from tests.kubeflow.kfp_emulator.metadata import record_outputs
from tests.kubeflow.kfp_emulator.runner import LocalSpecRunner
from tests.kubeflow.kfp_emulator.spec import TaskFailed, load_spec

__all__ = [
    "DEFAULT_PIPELINE_ROOT",
    "KUBEFLOW",
    "Cluster",
    "LocalSpecRunner",
    "TaskFailed",
    "load_spec",
    "record_outputs",
]
