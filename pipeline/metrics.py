"""Top-k accuracy as a TFMA-native metric: the Evaluator's per-class slices at any class count.

TFMA computes a Keras metric (tf_keras' SparseCategoricalAccuracy) per slice by calling its
`update_state` eagerly, and every call goes through AutoGraph's converted_call: measured 65 s for
the 1,050 slices of 1,049 classes on 4,400 eval images, ~60 ms a slice whatever its size, so
hours at 200,000 classes. This metric is a Beam CombineFn over two counters per slice, in numpy.

It keeps the Keras metrics' names and meaning (configs.ACCURACY, configs.TOP_K_ACCURACY), so
thresholds, results and reports read the same:
  sparse_categorical_accuracy        top_k=1
  sparse_top_k_categorical_accuracy  top_k=k
An example counts as right when fewer than k classes score strictly higher than its label (the
rule of tf.math.in_top_k, which Keras' top-k accuracy uses).
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from pipeline.configs import ACCURACY


class TopKAccuracy(metric_types.Metric):
    """Share of examples whose label is among the k highest-scoring classes."""

    def __init__(self, top_k: int = 1, name: str = ACCURACY):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        super().__init__(
            metric_util.merge_per_key_computations(_top_k_accuracy), name=name, top_k=top_k
        )


metric_types.register_metric(TopKAccuracy)


def _top_k_accuracy(
    name: str,
    top_k: int = 1,
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
            combiner=_TopKAccuracyCombiner(key, eval_config, top_k, example_weighted),
        )
    ]


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
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            example_weighted=self._example_weighted,
            flatten=False,
            allow_none=True,
        ):
            if label is None or prediction is None:
                continue
            scores = np.asarray(prediction, dtype=np.float64).reshape(-1)
            index = int(np.asarray(label).reshape(-1)[0])
            weight = float(metric_util.safe_to_scalar(weight))
            inside = 0 <= index < scores.size
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
