"""The image-classification pipeline, built once and run by any runner (local or Kubeflow).

ImageExampleGen -> StatisticsGen -> SchemaGen -> LabelSchema -> ExampleValidator
                -> Trainer -> Evaluator (vs. the latest blessed model) -> Pusher
"""

from __future__ import annotations

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components import ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.orchestration.data_types import RuntimeParameter
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from imgtfx.components import code_version
from imgtfx.components.baseline_evaluator import BaselineEvaluator
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_evaluator import ImageEvaluator, metrics, properties
from imgtfx.components.image_example_gen import ImageExampleGen
from imgtfx.components.image_example_gen.component import SOURCES as IMAGE_EXAMPLE_GEN_SOURCES
from imgtfx.components.label_schema import LabelSchema
from imgtfx.pipeline import configs
from imgtfx.pipeline.run_config import (
    IMAGES_PARAMETER,
    TRAIN_ARGS_PARAMETER,
    RunConfig,
    train_args_json,
)
from imgtfx.trainer.model import EVAL_SIGNATURE, PROBABILITIES, scores_of
from imgtfx.trainer.options import PREDICT_BY

TRAINER_RUN_FN = "imgtfx.trainer.training.run_fn"
# Where the Evaluator's baseline (the latest blessed model) comes from.
BASELINE_FROM_RESOLVER = "resolver"  # TFX's Resolver: LocalDagRunner, Vertex AI Pipelines
BASELINE_FROM_METADATA_SERVICE = "metadata_service"  # the Evaluator asks (open-source KFP)
# The project code each of our steps runs (folders and files under the source root): its hash is
# the step's `code_version` execution property, so TFX's cache key changes with the code and an
# edit or an upgrade reruns the step (components/code_version.py). Each step hashes its own code
# and the Examples contract it reads: a change to how the converter walks or checks a tree
# reruns ImageExampleGen, and later steps only when the examples it writes change.
_CONTRACT = ("components/examples",)
STEP_CODE = {
    "ImageExampleGen": IMAGE_EXAMPLE_GEN_SOURCES,  # the component stamps itself with them
    "LabelSchema": ("components/label_schema", *_CONTRACT),
    "Trainer": ("trainer", "components/counters.py", *_CONTRACT),
    "Evaluator": (
        "components/image_evaluator",
        "components/baseline_evaluator",
        "components/object_store.py",  # the baseline's copy out of KFP's store or S3
        *_CONTRACT,
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
        beyond. The exact count of every class is ImageExampleGen's report.json;
      - the fingerprint by which copies were grouped (`image_hash`) is left out: a count of
        its values says nothing, and the Trainer does not read it.
    """
    import dataclasses

    schema = schema_pb2.Schema()
    image = schema.feature.add(name=features.image, type=schema_pb2.BYTES)
    image.image_domain.SetInParent()
    for name in (features.id, features.path):
        unique = schema.feature.add(name=name, type=schema_pb2.BYTES)
        unique.string_domain.is_categorical = schema_pb2.StringDomain.CATEGORICAL_NO
    counted = [name for name in dataclasses.astuple(features) if name != features.image_hash]
    return tfdv.StatsOptions(
        enable_semantic_domain_stats=True,
        schema=schema,
        use_sketch_based_topk_uniques=True,
        feature_allowlist=counted,
    )


def eval_config(
    features: FeatureNames = FeatureNames(),
    min_accuracy: float = configs.MIN_ACCURACY,
    top_k: int = configs.TOP_K,
    min_class_accuracy: float | None = None,
    min_gap: float | None = None,
    methods: tuple[str, ...] = (),
) -> tfma.EvalConfig:
    """Multiclass evaluation: top-k accuracy, GAP and every metric per class (slices on the
    label name); blessing needs the overall accuracy at least `min_accuracy` and at most
    MAX_ACCURACY_DROP below the latest blessed model, and (opt-in) the overall GAP at least
    `min_gap`. Those read the served prediction (the chosen method's); `methods` (a model with
    a neighbour index) adds accuracy and GAP of each method's scores, side by side.

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
                slicing_specs=[tfma.SlicingSpec(feature_keys=[features.label_name])],
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": min_class_accuracy}
                    )
                ),
            )
        )
    gap_thresholds = []
    if min_gap is not None:
        gap_thresholds.append(
            tfma.PerSliceMetricThreshold(
                slicing_specs=overall,
                threshold=tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_gap})
                ),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=EVAL_SIGNATURE,
                label_key=features.label,
                prediction_key=PROBABILITIES,
                preprocessing_function_names=[],
            )
        ],
        slicing_specs=[
            *overall,
            tfma.SlicingSpec(feature_keys=[features.label_name]),
        ],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name=metrics.TopKAccuracy.__name__,
                        module=metrics.__name__,
                        config=f'"top_k": 1, "name": "{properties.ACCURACY}"',
                        per_slice_thresholds=thresholds,
                    ),
                    tfma.MetricConfig(
                        class_name=metrics.TopKAccuracy.__name__,
                        module=metrics.__name__,
                        config=f'"top_k": {top_k}, "name": "{properties.TOP_K_ACCURACY}"',
                    ),
                    tfma.MetricConfig(
                        class_name=metrics.GlobalAveragePrecision.__name__,
                        module=metrics.__name__,
                        config=f'"name": "{properties.GAP}"',
                        per_slice_thresholds=gap_thresholds,
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                    *(
                        _of_method(m, metrics.TopKAccuracy, properties.ACCURACY, '"top_k": 1, ')
                        for m in methods
                    ),
                    *(
                        _of_method(m, metrics.GlobalAveragePrecision, properties.GAP)
                        for m in methods
                    ),
                ]
            )
        ],
    )


def _of_method(method: str, metric, name: str, config: str = "") -> tfma.MetricConfig:
    """`metric` (a class of metrics.py) named `name`, on the scores of one prediction method."""
    return tfma.MetricConfig(
        class_name=metric.__name__,
        module=metrics.__name__,
        config=f'{config}"name": "{properties.by_method(name, method)}", '
        f'"prediction_key": "{scores_of(method)}"',
    )


def create_pipeline(
    config: RunConfig,
    pipeline_root: str,
    serving_dir: str,
    *,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    runtime_parameters: bool = False,
    baseline: str = BASELINE_FROM_RESOLVER,
    enable_cache: bool = True,
) -> Pipeline:
    """Builds the pipeline of `config`. Knows no paths of its own: runners pass where.

    Args:
      config: what to convert, train and bless.
      pipeline_root: where artifacts go (a folder or a bucket URI).
      serving_dir: where blessed models are pushed.
      metadata_connection_config: ML Metadata connection (local runs; None on Kubeflow).
      runtime_parameters: the image root and the TrainArgs become runtime parameters
        (IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER), the config's values their defaults, for a
        compiled pipeline.
      baseline: where the latest blessed model comes from: BASELINE_FROM_RESOLVER (TFX's
        Resolver node) or BASELINE_FROM_METADATA_SERVICE (the Evaluator's executor asks ML
        Metadata; for backends that cannot run resolver nodes).
      enable_cache: reuse results of unchanged steps.
    """
    if baseline not in (BASELINE_FROM_RESOLVER, BASELINE_FROM_METADATA_SERVICE):
        raise ValueError(f"unknown baseline source {baseline!r}.")
    features = config.image_options.features
    images, train_args = config.images, trainer_pb2.TrainArgs(num_steps=config.train_steps)
    if runtime_parameters:
        images = RuntimeParameter(name=IMAGES_PARAMETER, ptype=str, default=config.images)
        train_args = RuntimeParameter(
            name=TRAIN_ARGS_PARAMETER, ptype=str, default=train_args_json(config.train_steps)
        )
    example_gen = ImageExampleGen(
        input_base=images,
        options=config.image_options,
        split_folders=config.split_folders,
        eval_percent=config.eval_percent,
    )
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], stats_options=statistics_options(features)
    )
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
    )
    label_schema = LabelSchema(
        schema=schema_gen.outputs["schema"],
        examples=example_gen.outputs["examples"],
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=label_schema.outputs["curated_schema"],
    )
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=label_schema.outputs["curated_schema"],
        train_args=train_args,
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        custom_config=config.trainer_options.to_dict(),
    )
    evaluation = eval_config(
        features,
        config.min_accuracy,
        min_class_accuracy=config.min_class_accuracy,
        min_gap=config.min_gap,
        methods=PREDICT_BY if config.trainer_options.neighbours else (),
    )
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
        pipeline_name=config.pipeline_name,
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
        beam_pipeline_args=list(config.beam_args),
    )
