"""Top-k accuracy and GAP as TFMA-native metrics: the Evaluator's per-class slices at any count.

TFMA computes a Keras metric (tf_keras' SparseCategoricalAccuracy) per slice by calling its
`update_state` eagerly, and every call goes through AutoGraph's converted_call: measured 65 s for
the 1,050 slices of 1,049 classes on 4,400 eval images, ~60 ms a slice whatever its size, so
hours at 200,000 classes. This metric is a Beam CombineFn over two counters per slice, in numpy.

It keeps the Keras metrics' names and meaning (properties.ACCURACY, properties.TOP_K_ACCURACY), so
thresholds, results and reports read the same:
  sparse_categorical_accuracy        top_k=1
  sparse_top_k_categorical_accuracy  top_k=k
An example counts as right when fewer than k classes score strictly higher than its label (the
rule of tf.math.in_top_k, which Keras' top-k accuracy uses).

GAP (properties.GAP), the landmark contests' score: see `global_average_precision`.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from imgtfx.components.image_evaluator.properties import ACCURACY, GAP


class TopKAccuracy(metric_types.Metric):
    """Share of examples whose label is among the k highest-scoring classes."""

    def __init__(self, top_k: int = 1, name: str = ACCURACY, prediction_key: str = ""):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        super().__init__(
            metric_util.merge_per_key_computations(_top_k_accuracy),
            name=name,
            top_k=top_k,
            prediction_key=prediction_key,
        )


metric_types.register_metric(TopKAccuracy)


def _top_k_accuracy(
    name: str,
    top_k: int = 1,
    prediction_key: str = "",
    eval_config=None,
    model_name: str = "",
    output_name: str = "",
    sub_key=None,
    aggregation_type=None,
    class_weights=None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        example_weighted=example_weighted,
    )
    return [
        metric_types.MetricComputation(
            keys=[key],
            preprocessors=None,
            combiner=_TopKAccuracyCombiner(
                key, _reading(eval_config, prediction_key), top_k, example_weighted
            ),
        )
    ]


def _reading(eval_config, prediction_key: str):
    """`eval_config` with its models' prediction key set to `prediction_key` (when given): a
    metric of one of the model's other outputs, e.g. the scores of one prediction method."""
    if not prediction_key or eval_config is None:
        return eval_config
    from tensorflow_model_analysis.proto import config_pb2

    config = config_pb2.EvalConfig()
    config.CopyFrom(eval_config)
    for spec in config.model_specs:
        spec.prediction_key = prediction_key
    return config


def _answered(scores: np.ndarray) -> bool:
    """Scores of zeros are no prediction: the model refused the image or abstained
    (trainer/serving.py); such a query is never a hit and takes no rank in GAP."""
    return bool(scores.size) and float(np.max(scores)) > 0


def _labelled_scores(element, key, eval_config, example_weighted: bool = False):
    """(class scores, label index, weight) of each example of `element` that has both."""
    for label, prediction, weight in metric_util.to_label_prediction_example_weight(
        element,
        eval_config=eval_config,
        model_name=key.model_name,
        output_name=key.output_name,
        example_weighted=example_weighted,
        flatten=False,
        allow_none=True,
    ):
        if label is None or prediction is None:
            continue
        scores = np.asarray(prediction, dtype=np.float64).reshape(-1)
        index = int(np.asarray(label).reshape(-1)[0])
        yield scores, index, float(metric_util.safe_to_scalar(weight))


class _TopKAccuracyCombiner(beam.CombineFn):
    """Accumulates (weighted hits, weighted examples)."""

    def __init__(self, key, eval_config, top_k: int, example_weighted: bool):
        self._key = key
        self._eval_config = eval_config
        self._top_k = top_k
        self._example_weighted = example_weighted

    def create_accumulator(self) -> list[float]:
        return [0.0, 0.0]

    def add_input(self, accumulator: list[float], element) -> list[float]:
        for scores, index, weight in _labelled_scores(
            element, self._key, self._eval_config, self._example_weighted
        ):
            inside = 0 <= index < scores.size and _answered(scores)
            hit = inside and int(np.count_nonzero(scores > scores[index])) < self._top_k
            accumulator[0] += weight * hit
            accumulator[1] += weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[float]]) -> list[float]:
        hits = total = 0.0
        for accumulator in accumulators:
            hits += accumulator[0]
            total += accumulator[1]
        return [hits, total]

    def extract_output(self, accumulator: list[float]) -> dict:
        hits, total = accumulator
        return {self._key: hits / total if total else float("nan")}


def global_average_precision(
    confidences: np.ndarray,
    correct: np.ndarray,
    has_label: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
) -> float:
    """GAP, the score of the Google Landmark Recognition challenges and the Dacon contest.

    At most one prediction (a label and its confidence) per query; sorted by confidence over all
    queries, GAP = (1/M) sum_i P(i) rel(i): P(i) the share of correct predictions among the
    first i, rel(i) 1 where the i-th is correct, M the number of queries that have a correct
    label at all (`has_label`; a query without one, a photo of no landmark, still takes a rank
    and lowers the precision of those after it). A query that abstained (`predicted` False)
    takes no rank and, when it has a label, stays in M, as in the official metric
    (tensorflow/models research/delf google_landmarks_dataset/metrics.py). Equal confidences
    are ranked wrong ones first, so that a tie never flatters a model and the score does not
    depend on the queries' order. NaN when no query has a label.
    """
    confidences = np.asarray(confidences, np.float64).reshape(-1)
    correct = np.asarray(correct, bool).reshape(-1)
    has_label = np.ones_like(correct) if has_label is None else np.asarray(has_label, bool)
    total = int(np.count_nonzero(has_label))
    if not total:
        return float("nan")
    if predicted is not None:
        ranked = np.asarray(predicted, bool).reshape(-1)
        confidences, correct = confidences[ranked], correct[ranked]
    order = np.lexsort((correct, -confidences))  # by confidence, then wrong before right
    hits = correct[order]
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float(np.sum(precision[hits]) / total)


class GlobalAveragePrecision(metric_types.Metric):
    """GAP of the top class of every example (`global_average_precision`). A label outside the
    classes (index < 0 or past the scores) is a query without a correct label. `prediction_key`
    reads another output of the model than the model spec's (one prediction method's scores)."""

    def __init__(self, name: str = GAP, prediction_key: str = ""):
        super().__init__(
            metric_util.merge_per_key_computations(_gap), name=name, prediction_key=prediction_key
        )


metric_types.register_metric(GlobalAveragePrecision)


def _gap(
    name: str,
    prediction_key: str = "",
    eval_config=None,
    model_name: str = "",
    output_name: str = "",
    sub_key=None,
) -> metric_types.MetricComputations:
    """TFMA passes only the arguments named here (merge_per_key_computations reads them):
    GAP takes no weights, classes or aggregation."""
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, sub_key=sub_key
    )
    return [
        metric_types.MetricComputation(
            keys=[key],
            preprocessors=None,
            combiner=_GapCombiner(key, _reading(eval_config, prediction_key)),
        )
    ]


class _GapCombiner(beam.CombineFn):
    """Accumulates (confidence, correct, has_label, predicted) per query: 18 bytes an eval
    example, in each slice it belongs to (overall and its class). GAP ranks all queries of a
    slice at once, so no fixed-size summary computes it exactly."""

    def __init__(self, key, eval_config):
        self._key = key
        self._eval_config = eval_config

    def create_accumulator(self) -> list[list]:
        return [[], [], [], []]

    def add_input(self, accumulator: list[list], element) -> list[list]:
        for scores, index, _ in _labelled_scores(element, self._key, self._eval_config):
            best = int(np.argmax(scores))
            accumulator[0].append(float(scores[best]))
            accumulator[1].append(best == index)
            accumulator[2].append(0 <= index < scores.size)
            accumulator[3].append(_answered(scores))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[list]]) -> list[list]:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for column, values in zip(merged, accumulator, strict=True):
                column.extend(values)
        return merged

    def extract_output(self, accumulator: list[list]) -> dict:
        return {self._key: global_average_precision(*accumulator)}
