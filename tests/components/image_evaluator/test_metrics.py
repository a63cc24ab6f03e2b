"""The Evaluator's TFMA-native metrics: GAP (the landmark contests' score) against sums done
by hand, and top-k accuracy against Keras'."""

from __future__ import annotations

import numpy as np
import pytest

from imgtfx.components.image_evaluator.metrics import global_average_precision


def combined(metric, labels, scores, cut: int) -> float:
    """The metric's one value, its combiner fed labels[:cut] and labels[cut:] in two
    accumulators and merged, as Beam combines them."""
    from tensorflow_model_analysis.metrics import metric_types

    (computation,) = metric.computations()
    combiner = computation.combiner
    halves = []
    for part in (slice(0, cut), slice(cut, len(labels))):
        accumulator = combiner.create_accumulator()
        for label, score in zip(labels[part], scores[part], strict=True):
            inputs = metric_types.StandardMetricInputs(
                label=np.array([label]), prediction=score, example_weight=np.array([1.0])
            )
            accumulator = combiner.add_input(accumulator, inputs)
        halves.append(accumulator)
    [(key, value)] = combiner.extract_output(combiner.merge_accumulators(halves)).items()
    assert key.name == metric.name
    return value


def test_gap_is_the_precision_at_each_correct_rank_over_the_queries_with_a_label():
    # Ranked by confidence: right (0.9), wrong (0.8), right (0.7), a photo of no landmark
    # (0.6, wrong by definition), right (0.5). M = 4 queries with a label (one of them wrong,
    # 0.1). P at the correct ranks: 1/1, 2/3, 3/5.
    confidences = [0.7, 0.9, 0.5, 0.8, 0.6, 0.1]
    correct = [True, True, True, False, False, False]
    has_label = [True, True, True, True, False, True]
    expected = (1 / 1 + 2 / 3 + 3 / 5) / 5
    assert global_average_precision(confidences, correct, has_label) == pytest.approx(expected)
    # The query without a label counts in the ranking, not in M: with a label it would be
    # wrong and in M, and the score is lower.
    labelled = (1 / 1 + 2 / 3 + 3 / 5) / 6
    assert global_average_precision(confidences, correct) == pytest.approx(labelled)


def test_equal_confidences_rank_the_wrong_prediction_first_whatever_the_order():
    # Two at 0.9, one right and one wrong: wrong first, so P at the right one is 1/2.
    for confidences, correct in (([0.9, 0.9, 0.4], [True, False, True]),
                                 ([0.9, 0.9, 0.4], [False, True, True])):  # fmt: skip
        assert global_average_precision(confidences, correct) == pytest.approx((1 / 2 + 2 / 3) / 3)


def test_gap_edge_cases():
    assert global_average_precision([0.5, 0.4], [True, True]) == pytest.approx(1.0)
    assert global_average_precision([0.5, 0.4], [False, False]) == 0.0
    assert np.isnan(global_average_precision([0.5], [False], [False]))


def test_the_evaluator_metric_ranks_the_top_class_of_each_example_over_merged_accumulators():
    from imgtfx.components.image_evaluator.metrics import GlobalAveragePrecision

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, 300)
    labels[::50] = -1  # not a class of the model: a query without a correct label
    scores = rng.random((300, 20))
    scores[::4, :] = 0.0
    scores[np.arange(0, 300, 4), np.maximum(labels[::4], 0)] = 2.0  # a quarter sure and right
    value = combined(GlobalAveragePrecision(), labels, scores, 120)
    best = scores.argmax(axis=1)
    # By hand: sort by confidence (wrong first in a tie), sum the precision at right ranks.
    rows = sorted(zip(scores.max(axis=1), best == labels, strict=True), key=lambda r: (-r[0], r[1]))
    hits = precision_sum = 0
    for rank, (_, right) in enumerate(rows, start=1):
        if right:
            hits += 1
            precision_sum += hits / rank
    assert value == pytest.approx(precision_sum / int(np.sum(labels >= 0)))
    assert 0.2 < value < 1.0  # the sure quarter first: far above chance


def test_native_top_k_accuracy_matches_keras_metrics():
    """The Evaluator's TFMA-native accuracy (a numpy combiner per slice) gives what tf_keras'
    SparseCategoricalAccuracy and SparseTopKCategoricalAccuracy give on the same predictions."""
    import tf_keras as keras

    from imgtfx.components.image_evaluator.metrics import TopKAccuracy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 50, 400)
    scores = rng.random((400, 50))
    scores[::3, :] = 0.0
    scores[np.arange(0, 400, 3), labels[::3]] = 1.0  # a third certainly right
    for k, reference in ((1, keras.metrics.SparseCategoricalAccuracy()),
                         (3, keras.metrics.SparseTopKCategoricalAccuracy(k=3))):  # fmt: skip
        name = "sparse_categorical_accuracy" if k == 1 else "sparse_top_k_categorical_accuracy"
        value = combined(TopKAccuracy(top_k=k, name=name), labels, scores, 200)
        reference.update_state(labels, scores)
        assert value == pytest.approx(float(reference.result()), abs=1e-6), k  # Keras: float32
        assert 0.3 < value < 1.0


def official_gap(predictions: dict, solution: dict) -> float:
    """GAP as the official recognition metric defines it, on its own data shapes: `predictions`
    {query id: (label, score)} for the queries that answered, `solution` {query id: [true
    labels]} for every query (an empty list for a photo of no landmark); ranked by score, ties
    by id; M the queries with a true label."""
    expected = sum(1 for labels in solution.values() if labels)
    ranked = sorted(predictions.items(), key=lambda item: (-item[1][1], item[0]))
    correct = total = 0.0
    for rank, (query, (label, _)) in enumerate(ranked, start=1):
        if label in solution[query]:
            correct += 1
            total += correct / rank
    return total / expected


@pytest.mark.parametrize("seed", range(40))
def test_gap_equals_the_official_definition_on_random_cases(seed):
    """Several true labels a query, photos of no landmark, queries that abstain: equal where no
    two scores tie; with ties, never above it (a tie ranks the wrong prediction first)."""
    rng = np.random.default_rng(seed)
    queries = int(rng.integers(1, 60))
    solution, predictions = {}, {}
    tied = seed % 2 == 1  # scores from a few values: many ties
    for q in range(queries):
        query = f"q{q:03d}"
        solution[query] = list(rng.choice(8, size=int(rng.integers(0, 3)), replace=False))
        if rng.random() < 0.8:  # the rest abstain
            score = float(rng.integers(0, 4)) / 4 if tied else float(rng.random())
            predictions[query] = (int(rng.integers(0, 8)), score)
    if not any(solution.values()):
        solution["q000"] = [1]
    ids = sorted(solution)
    answered = np.array([query in predictions for query in ids])
    confidences = np.array([predictions.get(query, (0, 0.0))[1] for query in ids])
    correct = np.array(
        [query in predictions and predictions[query][0] in solution[query] for query in ids]
    )
    has_label = np.array([bool(solution[query]) for query in ids])
    ours = global_average_precision(confidences, correct, has_label, answered)
    theirs = official_gap(predictions, solution)
    if tied:
        assert ours <= theirs + 1e-12
    else:
        assert ours == pytest.approx(theirs)


def test_an_abstained_query_takes_no_rank_but_counts_when_it_has_a_label():
    # Right (0.9), an abstained photo of a landmark, right (0.5): P = 1, 2/2; M = 3.
    value = global_average_precision([0.9, 0.7, 0.5], [True, False, True], None, [1, 0, 1])
    assert value == pytest.approx((1 + 1) / 3)
    # A photo of no landmark that abstains costs nothing; answering wrongly first costs rank 1.
    assert global_average_precision([0.9, 0.8], [False, True], [False, True], [0, 1]) == 1.0
    assert global_average_precision([0.9, 0.8], [False, True], [False, True]) == 0.5


def test_a_row_of_zeros_is_no_prediction_for_both_metrics():
    """The served scores of an image the model refused or abstained on are zeros
    (trainer/serving.py): GAP gives it no rank (it stays in M) and accuracy never counts it a
    hit, even where its label is class 0, which argmax of zeros would name."""
    from imgtfx.components.image_evaluator.metrics import GlobalAveragePrecision, TopKAccuracy

    labels = np.array([0, 1, 0, 2])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert combined(TopKAccuracy(top_k=1), labels, scores, 2) == pytest.approx(2 / 4)
    assert combined(TopKAccuracy(top_k=3), labels, scores, 2) == pytest.approx(2 / 4)
    # Two answered, both right; M = 4: (1/1 + 2/2) / 4.
    assert combined(GlobalAveragePrecision(), labels, scores, 2) == pytest.approx(0.5)
    predicted = [True, True, False, False]
    expected = global_average_precision(
        [0.9, 0.7, 0, 0], [True, True, True, False], None, predicted
    )
    assert expected == pytest.approx(0.5)
