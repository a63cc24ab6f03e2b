"""ImageExampleGen in a TFX pipeline of your own, beside TFX's standard components.

    python examples/own_pipeline/pipeline.py --images IMAGE_ROOT --root OUTPUT_FOLDER

ImageExampleGen -> StatisticsGen -> SchemaGen -> LabelSchema (the schema curation images need)
-> ExampleValidator; Transform and Trainer with module files (modules/); TFX's Evaluator with a
plain EvalConfig; BulkInferrer over the eval split with the blessed model; Pusher. On
LocalDagRunner with an SQLite ML Metadata store; the guide is docs/guides/own-pipeline.md.

The module files lie in a folder of their own: TFX packs every .py file beside a module file
into the user-code wheel it installs (with pip), so an edit of this file would rerun them.
"""

from __future__ import annotations

import argparse
import os
import sys

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from imgtfx.components.image_example_gen import ImageExampleGen
from imgtfx.components.label_schema import LabelSchema
from imgtfx.pipeline.pipeline import statistics_options

MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules")
# Beam's DirectRunner in this process. The SDK image is never started by it, but naming it keeps
# TFX from packaging itself into a new temporary folder (49 MB, never deleted) at every Beam step.
ONE_PROCESS = [
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
    "--sdk_container_image=apache/beam_python3.10_sdk:2.61.0",
]


def create_pipeline(
    images: str,
    root: str,
    train_steps: int = 100,
    min_accuracy: float = 0.5,
    beam_args: list[str] = ONE_PROCESS,
) -> tfx.dsl.Pipeline:
    """The pipeline over the image tree `images`, writing under `root`."""
    example_gen = ImageExampleGen(input_base=images)
    examples = example_gen.outputs["examples"]
    # The image feature as an image domain: TFDV's default statistics would count every
    # distinct image as a category, all of them held in memory.
    statistics = tfx.components.StatisticsGen(examples=examples, stats_options=statistics_options())
    inferred = tfx.components.SchemaGen(
        statistics=statistics.outputs["statistics"], infer_feature_shape=True
    )
    # `label` in [0, classes) and `label_name` one of labels.txt; orientation, format and
    # source_format loosened to what a later run may hold (a sideways phone photo, a GIF).
    curated = LabelSchema(schema=inferred.outputs["schema"], examples=examples)
    schema = curated.outputs["curated_schema"]
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema
    )
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema,
        module_file=os.path.join(MODULES, "preprocessing.py"),
    )
    trainer = tfx.components.Trainer(
        module_file=os.path.join(MODULES, "model.py"),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=5),
    )
    accuracy = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy})
    )
    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        eval_config=tfma.EvalConfig(
            model_specs=[tfma.ModelSpec(label_key="label")],
            slicing_specs=[tfma.SlicingSpec()],
            metrics_specs=[
                tfma.MetricsSpec(
                    metrics=[
                        tfma.MetricConfig(class_name="ExampleCount"),
                        tfma.MetricConfig(
                            class_name="SparseCategoricalAccuracy", threshold=accuracy
                        ),
                    ]
                )
            ],
        ),
    )
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=examples,
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec=tfx.proto.DataSpec(example_splits=["eval"]),
        model_spec=tfx.proto.ModelSpec(),
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(root, "serving")
            )
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name="own-image-pipeline",
        pipeline_root=os.path.join(root, "pipeline"),
        components=[
            example_gen,
            statistics,
            inferred,
            curated,
            validator,
            transform,
            trainer,
            evaluator,
            bulk_inferrer,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")
        ),
        beam_pipeline_args=beam_args,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="the image root")
    parser.add_argument("--root", required=True, help="where the pipeline writes")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--min-accuracy", type=float, default=0.5)
    args = parser.parse_args(argv)
    tfx.orchestration.LocalDagRunner().run(
        create_pipeline(args.images, args.root, args.train_steps, args.min_accuracy)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
