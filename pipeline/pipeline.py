"""The image-classification pipeline, built once and run by any runner (local or Kubeflow).

ImageExampleGen -> StatisticsGen -> SchemaGen -> LabelSchema -> ExampleValidator
                -> Trainer -> Evaluator (vs. the latest blessed model) -> Pusher
"""

from __future__ import annotations

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components import ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import code_version
from components.baseline_evaluator import BaselineEvaluator
from components.image_evaluator import ImageEvaluator
from components.image_example_gen import FeatureNames, ImageExampleGen, ImageOptions
from components.image_example_gen.component import default_output_config
from components.label_schema import LabelSchema
from pipeline import configs, metrics
from trainer.model import EVAL_SIGNATURE, PROBABILITIES
from trainer.options import TrainerOptions

TRAINER_RUN_FN = "trainer.model.run_fn"
# Where the Evaluator's baseline (the latest blessed model) comes from.
BASELINE_FROM_RESOLVER = "resolver"  # TFX's Resolver: LocalDagRunner, Vertex AI Pipelines
BASELINE_FROM_METADATA_SERVICE = "metadata_service"  # the Evaluator asks (open-source KFP)
# The project code each of our steps runs (folders and files under the source root): its hash is
# the step's `code_version` execution property, so TFX's cache key changes with the code and an
# edit or an upgrade reruns the step (components/code_version.py).
# ImageExampleGen's code: every later step of ours imports it (options, the labels.txt reader).
_EXAMPLES_CODE = ("components/image_example_gen", "components/progress.py")
STEP_CODE = {
    "ImageExampleGen": _EXAMPLES_CODE,
    "LabelSchema": ("components/label_schema", *_EXAMPLES_CODE),
    "Trainer": ("trainer", *_EXAMPLES_CODE),
    "Evaluator": (
        "components/image_evaluator",
        "components/baseline_evaluator",
        "pipeline/metrics.py",  # the eval config's metric module
        *_EXAMPLES_CODE,
    ),
}


def statistics_options(features: FeatureNames = FeatureNames()) -> tfdv.StatsOptions:
    """TFDV statistics over every example, in memory that does not grow with the dataset.

    Without a schema TFDV takes the encoded images for a categorical text feature and counts
    every distinct value in a Beam grouping (top values, unique count): on the contest's 88,000
    photos that held all 8.8 GB of them and StatisticsGen died at 21 GiB. So:
      - the image feature is an image domain: TFDV treats it as bytes (sizes, no value counts),
        and the semantic-domain statistics still give it the image statistics (format
        histogram, `domain_info: image_domain`) that SchemaGen carries into the schema;
      - `id` and `path` are not categorical (one value per example: a count of each says
        nothing, and held 340 MB more at 88,000 photos than at 22,000);
      - top values and unique counts come from TFDV's sketches (Misra-Gries, KMV) over every
        example, in memory bounded by the sketch sizes instead of the number of distinct
        values: exact up to 1,024 labels (top values) and 16,384 (unique count), approximate
        beyond. The exact count of every class is ImageExampleGen's report.json.
    """
    schema = schema_pb2.Schema()
    image = schema.feature.add(name=features.image, type=schema_pb2.BYTES)
    image.image_domain.SetInParent()
    for name in (features.id, features.path):
        unique = schema.feature.add(name=name, type=schema_pb2.BYTES)
        unique.string_domain.is_categorical = schema_pb2.StringDomain.CATEGORICAL_NO
    return tfdv.StatsOptions(
        enable_semantic_domain_stats=True, schema=schema, use_sketch_based_topk_uniques=True
    )


def eval_config(
    options: ImageOptions,
    min_accuracy: float = configs.MIN_ACCURACY,
    top_k: int = configs.TOP_K,
    min_class_accuracy: float | None = None,
) -> tfma.EvalConfig:
    """Multiclass evaluation: top-k accuracy and every metric per class (slices on the label
    name); blessing needs the overall accuracy at least `min_accuracy` and at most
    MAX_ACCURACY_DROP below the latest blessed model.

    The accuracy thresholds are per-slice thresholds on the overall slice only: a threshold on
    the metric itself would apply to every class slice too, and with hundreds of classes of a
    few eval images each no model would ever be pushed. `min_class_accuracy` (opt-in) adds a
    floor that every class slice must reach.
    """
    overall = [tfma.SlicingSpec()]
    thresholds = [
        tfma.PerSliceMetricThreshold(
            slicing_specs=overall,
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy})
            ),
        ),
        tfma.PerSliceMetricThreshold(
            slicing_specs=overall,
            threshold=tfma.MetricThreshold(
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -configs.MAX_ACCURACY_DROP},
                )
            ),
        ),
    ]
    if min_class_accuracy is not None:
        thresholds.append(
            tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec(feature_keys=[options.features.label_name])],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": min_class_accuracy}
                    )
                ),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=EVAL_SIGNATURE,
                label_key=options.features.label,
                prediction_key=PROBABILITIES,
                preprocessing_function_names=[],
            )
        ],
        slicing_specs=[
            *overall,
            tfma.SlicingSpec(feature_keys=[options.features.label_name]),
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name=metrics.TopKAccuracy.__name__,
                        module=metrics.__name__,
                        config=f'"top_k": 1, "name": "{metrics.ACCURACY}"',
                        per_slice_thresholds=thresholds,
                    ),
                    tfma.MetricConfig(
                        class_name=metrics.TopKAccuracy.__name__,
                        module=metrics.__name__,
                        config=f'"top_k": {top_k}, "name": "{metrics.TOP_K_ACCURACY}"',
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    images: str,
    serving_dir: str,
    image_options: ImageOptions = ImageOptions(),
    trainer_options: TrainerOptions = TrainerOptions(),
    input_config: example_gen_pb2.Input | None = None,
    eval_percent: int = configs.EVAL_PERCENT,
    train_steps: int | RuntimeParameter = configs.TRAIN_STEPS,
    eval_steps: int = configs.EVAL_STEPS,
    min_accuracy: float = configs.MIN_ACCURACY,
    min_class_accuracy: float | None = None,
    metadata_connection_config=None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
    baseline: str = BASELINE_FROM_RESOLVER,
) -> Pipeline:
    """Builds the pipeline. Knows no paths of its own: runners pass roots and locations.

    Args:
      pipeline_name: name in ML Metadata (and on Kubeflow).
      pipeline_root: where artifacts go (a folder or gs:// URI).
      images: the image root (a folder or gs:// URI), or a RuntimeParameter.
      serving_dir: where blessed models are pushed.
      image_options: labels CSV, label level, checks, feature names.
      trainer_options: image size, batch size, augmentation, class weights.
      input_config: pre-split trees: one input split per top folder.
      eval_percent: eval share of the hash split (when input_config has one split).
      train_steps: training steps; on Kubeflow a RuntimeParameter (ptype str) holding the whole
        TrainArgs as JSON, since KFP v2 in TFX 1.16 cannot take a parameter inside a proto.
      eval_steps: eval batches per evaluation round during training.
      min_accuracy: the overall eval accuracy a model needs to be blessed and pushed.
      min_class_accuracy: opt-in: the accuracy every class needs as well (None: no floor).
      metadata_connection_config: ML Metadata connection (local runs; None on Kubeflow).
      beam_pipeline_args: Beam options for the data steps (Dataflow, Flink, Spark ...).
      enable_cache: reuse results of unchanged steps.
      baseline: where the latest blessed model comes from: BASELINE_FROM_RESOLVER (TFX's
        Resolver node) or BASELINE_FROM_METADATA_SERVICE (the Evaluator's executor asks ML
        Metadata; for backends that cannot run resolver nodes).
    """
    if baseline not in (BASELINE_FROM_RESOLVER, BASELINE_FROM_METADATA_SERVICE):
        raise ValueError(f"unknown baseline source {baseline!r}.")
    if not 0.0 <= min_accuracy <= 1.0:
        raise ValueError(f"min accuracy must be between 0 and 1, got {min_accuracy}.")
    if min_class_accuracy is not None and not 0.0 <= min_class_accuracy <= 1.0:
        raise ValueError(f"min class accuracy must be between 0 and 1, got {min_class_accuracy}.")
    input_config = input_config or example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]
    )
    _check_split_names(input_config)
    example_gen = ImageExampleGen(
        input_base=images,
        options=image_options,
        input_config=input_config,
        output_config=default_output_config(input_config, image_options, eval_percent),
    )
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"],
        stats_options=statistics_options(image_options.features),
    )
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
    )
    label_schema = LabelSchema(
        schema=schema_gen.outputs["schema"], examples=example_gen.outputs["examples"]
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=label_schema.outputs["curated_schema"],
    )
    trainer_options = _with_features(trainer_options, image_options)
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=label_schema.outputs["curated_schema"],
        train_args=_train_args(train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=eval_steps),
        custom_config=trainer_options.to_dict(),
    )
    evaluation = eval_config(image_options, min_accuracy, min_class_accuracy=min_class_accuracy)
    resolvers = []
    if baseline == BASELINE_FROM_RESOLVER:
        model_resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        resolvers.append(model_resolver)
        evaluator = ImageEvaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=model_resolver.outputs["model"],
            eval_config=evaluation,
        ).with_id("Evaluator")
    else:
        evaluator = BaselineEvaluator(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            eval_config=evaluation,
        ).with_id("Evaluator")
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    )
    for step in (example_gen, label_schema, trainer, evaluator):
        code_version.stamp(step, STEP_CODE[step.id])
    return Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            label_schema,
            example_validator,
            trainer,
            *resolvers,
            evaluator,
            pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or []),
    )


def _check_split_names(input_config: example_gen_pb2.Input) -> None:
    """A pre-split tree must give the Trainer its train split and the Evaluator its eval split;
    said here, before anything runs, not by the Trainer after conversion and statistics."""
    names = [split.name for split in input_config.splits]
    if len(names) > 1 and not {"train", "eval"} <= set(names):
        raise ValueError(
            f"input splits {names} need a 'train' and an 'eval' split (the Trainer learns from "
            "train, the Evaluator blesses on eval): name them so, e.g. with "
            "components.image_example_gen.options.split_folders_config(['training', 'validation'])."
        )


def _train_args(train_steps):
    if isinstance(train_steps, RuntimeParameter):
        return train_steps
    return trainer_pb2.TrainArgs(num_steps=train_steps)


def _with_features(trainer_options: TrainerOptions, image_options: ImageOptions) -> TrainerOptions:
    """The trainer reads the feature names the ImageExampleGen writes."""
    import dataclasses

    return dataclasses.replace(trainer_options, features=image_options.features)
