"""Starts a run of a compiled `.yaml` package on an open-source Kubeflow Pipelines cluster.

The backend takes the pipeline root from the run (driver/root_dag.go: the run's
`pipeline_root`, else the namespace's `kfp-launcher` ConfigMap, else
minio://mlpipeline/v2/artifacts), never from the package. With no root given, the run goes to
the namespace's default: on multi-user Kubeflow from 1.11 (KFP 2.15) the profile's own
minio://mlpipeline/private-artifacts/<ns>/v2/artifacts, the only prefix its key may write. The
run is created with kfp's own documented call, `Client.create_run_from_pipeline_package`.
"""

from __future__ import annotations

from kubeflow.target import KFP, check_pipeline_root, platform_of
from pipeline.run_config import IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER, train_args_json


def submit(
    package: str,
    host: str | None,
    pipeline_root: str | None = None,
    images: str | None = None,
    train_steps: int | None = None,
    run_name: str | None = None,
    experiment: str | None = None,
    namespace: str | None = None,
    client=None,
) -> str:
    """Creates the run; returns its id.

    Args:
      package: a `.yaml` from `imgtfx compile`.
      host: the KFP API endpoint (e.g. http://ml-pipeline-ui.kubeflow); None: kfp's own
        default (KF_PIPELINES_ENDPOINT, or in-cluster).
      pipeline_root: where the run's artifacts go (gs://, s3:// or minio://BUCKET/PATH); None:
        the namespace's default root.
      images, train_steps: runtime parameters over the package's defaults.
      namespace: the profile namespace of a multi-user Kubeflow.

    Raises:
      ValueError: not a .yaml package, or a root the launcher rejects.
    """
    if platform_of(package) != KFP:
        raise ValueError(f"{package}: submit a .yaml package (a .json runs on Vertex AI).")
    if pipeline_root is not None:
        check_pipeline_root(pipeline_root)
    arguments = {}
    if images:
        arguments[IMAGES_PARAMETER] = images
    if train_steps is not None:
        arguments[TRAIN_ARGS_PARAMETER] = train_args_json(train_steps)
    if client is None:
        import kfp

        client = kfp.Client(host=host, namespace=namespace)
    result = client.create_run_from_pipeline_package(
        package,
        arguments=arguments,
        run_name=run_name,
        experiment_name=experiment,
        namespace=namespace,
        pipeline_root=pipeline_root,
    )
    return result.run_id
