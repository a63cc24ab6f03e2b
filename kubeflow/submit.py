"""Starts a run of a compiled `.yaml` package on an open-source Kubeflow Pipelines cluster.

The backend takes the pipeline root from the run (driver/root_dag.go: the run's
`pipeline_root`, else the namespace's `kfp-launcher` ConfigMap, else
minio://mlpipeline/v2/artifacts), never from the package. With no root given, the run goes to
the namespace's default: on multi-user Kubeflow from 1.11 (KFP 2.15) the profile's own
minio://mlpipeline/private-artifacts/<ns>/v2/artifacts, the only prefix its key may write. The
run is created with kfp's own documented call, `Client.create_run_from_pipeline_package`.
"""

from __future__ import annotations

from imgtfx.kubeflow.target import KFP, check_pipeline_root, platform_of
from imgtfx.pipeline.run_config import IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER, train_args_json


def submit(
    package: str,
    host: str | None,
    pipeline_root: str | None = None,
    images: str | None = None,
    train_steps: int | None = None,
    run_name: str | None = None,
    experiment: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    client=None,
) -> str:
    """Creates the run; returns its id.

    Args:
      package: a `.yaml` from `imgtfx compile`.
      host: the KFP API endpoint (e.g. http://ml-pipeline-ui.kubeflow); None: kfp's own
        default (KF_PIPELINES_ENDPOINT, or in-cluster).
      pipeline_root: where the run's artifacts go (gs://, s3:// or minio://BUCKET/PATH); None:
        the root the package was compiled with, if any, else the namespace's default root.
      images, train_steps: runtime parameters over the package's defaults.
      namespace: the profile namespace of a multi-user Kubeflow.
      token: a bearer token for the KFP API (multi-user Kubeflow from outside the cluster);
        None: kfp's own (a pod's service-account token in the cluster).

    Raises:
      ValueError: not a .yaml package, or a root the launcher rejects.
      SubmitError: the KFP API refused the run or could not be reached.
    """
    if platform_of(package) != KFP:
        raise ValueError(f"{package}: submit a .yaml package (a .json runs on Vertex AI).")
    if pipeline_root is None:
        pipeline_root = compiled_root(package)
    if pipeline_root is not None:
        check_pipeline_root(pipeline_root)
    arguments = {}
    if images:
        arguments[IMAGES_PARAMETER] = images
    if train_steps is not None:
        arguments[TRAIN_ARGS_PARAMETER] = train_args_json(train_steps)
    try:
        if client is None:
            import kfp

            client = kfp.Client(host=host, namespace=namespace, existing_token=token)
        result = client.create_run_from_pipeline_package(
            package,
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            namespace=namespace,
            pipeline_root=pipeline_root,
        )
    except Exception as e:  # noqa: BLE001 - kfp's and urllib3's own errors, said in one line
        raise SubmitError(f"KFP at {host or 'its in-cluster address'}: {_reason(e)}") from None
    return result.run_id


class SubmitError(RuntimeError):
    """The KFP API refused the run or could not be reached; the message says which."""


def _reason(error: Exception) -> str:
    status = getattr(error, "status", None)
    if status:  # kfp_server_api's ApiException
        body = str(getattr(error, "body", "") or "").strip().splitlines()
        return f"HTTP {status} {getattr(error, 'reason', '')}" + (
            f": {body[0][:200]}" if body else ""
        )
    return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"


def compiled_root(package: str) -> str | None:
    """The root `imgtfx compile --pipeline-root` wrote into the package (its
    defaultPipelineRoot), which the backend itself never reads; None when compiled without."""
    import yaml

    with open(package, encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f), None) or {}
    return spec.get("defaultPipelineRoot")
