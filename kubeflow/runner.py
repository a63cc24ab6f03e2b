"""Compiles the pipeline for Kubeflow Pipelines (KFP v2 / Vertex AI Pipelines).

The same `create_pipeline(...)` as local runs, compiled by `KubeflowV2DagRunner` (the v1
`KubeflowDagRunner` is deprecated in TFX 1.16) into a PipelineJob JSON. Nothing is written to the
pipeline root at compile time: the trainer is reached by import path from the image, so TFX has
no module file to package.

Runtime parameters (set at submit time): `images` (the image root) and `train_args` (TrainArgs as
JSON, e.g. '{"num_steps": 2000}'). TFX 1.16 on KFP v2 passes a RuntimeParameter only as a whole
execution property, not inside a proto field, so the step count travels as the whole TrainArgs.
"""

from __future__ import annotations

import json
import os

from tfx import v1 as tfx

from components.image_example_gen import ImageOptions
from pipeline import configs
from pipeline.pipeline import create_pipeline
from trainer.options import TrainerOptions

IMAGES_PARAMETER = "images"
TRAIN_ARGS_PARAMETER = "train_args"


def train_args_json(train_steps: int) -> str:
    return json.dumps({"num_steps": int(train_steps)})


def compile_pipeline(
    pipeline_root: str,
    images: str,
    image: str,
    output_file: str,
    labels_csv: str | None = None,
    serving_dir: str | None = None,
    train_steps: int = configs.TRAIN_STEPS,
    image_options: ImageOptions | None = None,
    trainer_options: TrainerOptions = TrainerOptions(),
    min_accuracy: float = configs.MIN_ACCURACY,
    beam_pipeline_args: list[str] | None = None,
    pipeline_name: str = configs.PIPELINE_NAME,
) -> dict:
    """Writes the PipelineJob spec to `output_file` and returns it.

    Args:
      pipeline_root: where artifacts go on the cluster (gs://bucket/path, or a mounted path).
      images: default of the `images` runtime parameter.
      image: the container image every step runs in (see kubeflow/Dockerfile).
      output_file: the compiled spec (.json).
      labels_csv: labels CSV URI; default labels from folders.
      serving_dir: where blessed models are pushed; default PIPELINE_ROOT/serving.
      train_steps: default of the `train_args` runtime parameter.
      beam_pipeline_args: Beam options of the data steps, e.g. for Dataflow.
    """
    if not image:
        raise ValueError("give the container image (--image) the steps run in.")
    if image_options is None:
        image_options = ImageOptions(labels_csv=labels_csv)
    images_parameter = tfx.dsl.experimental.RuntimeParameter(
        name=IMAGES_PARAMETER, ptype=str, default=images
    )
    train_args = tfx.dsl.experimental.RuntimeParameter(
        name=TRAIN_ARGS_PARAMETER, ptype=str, default=train_args_json(train_steps)
    )
    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        images=images_parameter,
        serving_dir=serving_dir or os.path.join(pipeline_root, "serving"),
        image_options=image_options,
        trainer_options=trainer_options,
        train_steps=train_args,
        min_accuracy=min_accuracy,
        beam_pipeline_args=beam_pipeline_args,
    )
    output_dir, output_name = os.path.split(os.path.abspath(output_file))
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=output_dir,
        output_filename=output_name,
    )
    return runner.run(
        pipeline,
        parameter_values={
            IMAGES_PARAMETER: images,
            TRAIN_ARGS_PARAMETER: train_args_json(train_steps),
        },
    )
