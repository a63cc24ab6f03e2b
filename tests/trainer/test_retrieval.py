"""The retrieval ops (trainer/retrieval.py) against a brute-force search and votes summed by
hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from imgtfx.trainer import retrieval


def unit_rows(rng, n: int, d: int) -> np.ndarray:
    rows = rng.normal(size=(n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_nearest_is_the_brute_force_search_of_a_float16_index(seed):
    rng = np.random.default_rng(seed)
    index = unit_rows(rng, 300, 64)
    queries = rng.normal(size=(20, 64)).astype(np.float32) * 3  # not normalised
    similarities, positions = retrieval.nearest(queries, tf.constant(index, tf.float16), k=5)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ index.T
    best = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(positions.numpy(), best)
    np.testing.assert_allclose(
        similarities.numpy(), np.take_along_axis(expected, best, axis=1), atol=2e-3
    )


def test_a_photo_of_the_index_finds_itself_first():
    rng = np.random.default_rng(7)
    index = unit_rows(rng, 1000, 512)
    similarities, positions = retrieval.nearest(index[[3, 500]], tf.constant(index, tf.float16), 3)
    assert list(positions.numpy()[:, 0]) == [3, 500]
    assert np.all(similarities.numpy()[:, 0] >= 0.99)


def test_k_larger_than_the_index_returns_the_whole_index():
    index = tf.constant(unit_rows(np.random.default_rng(1), 2, 8))
    similarities, _ = retrieval.nearest(index, index, k=5)
    assert similarities.shape == (2, 2)


def vote(similarities, labels, num_classes: int):
    """(label, confidence) as serving takes them from the label scores: their argmax (the lower
    label on a tie) and its score."""
    scores = retrieval.label_scores(similarities, labels, num_classes)
    return tf.argmax(scores, axis=-1), tf.reduce_max(scores, axis=-1)


def test_the_vote_sums_each_labels_similarities_over_k():
    similarities = tf.constant([[0.9, 0.5, 0.45, 0.4], [0.8, 0.7, -0.6, 0.1]])
    labels = tf.constant([[2, 0, 0, 0], [1, 3, 1, 1]])
    label, confidence = vote(similarities, labels, num_classes=4)
    # Query 0: label 0 sums 1.35 over three photos, beating the nearest photo's label 2 (0.9).
    # Query 1: label 1 sums 0.8 + 0.1 (the negative neighbour adds nothing), label 3 0.7.
    assert list(label.numpy()) == [0, 1]
    np.testing.assert_allclose(confidence.numpy(), [1.35 / 4, 0.9 / 4], rtol=1e-6)


def test_equal_sums_go_to_the_lower_label_and_no_similarity_gives_no_confidence():
    label, confidence = vote(tf.constant([[0.5, 0.5]]), tf.constant([[3, 1]]), 4)
    assert int(label[0]) == 1 and float(confidence[0]) == pytest.approx(0.25)
    label, confidence = vote(tf.constant([[-0.2, -0.3]]), tf.constant([[2, 2]]), 4)
    assert float(confidence[0]) == 0.0


def test_an_exported_index_names_each_train_photo_itself_first(tmp_path):
    """The index inside the SavedModel: every signature names each image's nearest train
    photos; a train photo finds itself at similarity >= 0.99; predict_by='neighbours' serves
    the neighbours' label scores as the prediction."""
    from imgtfx.trainer import model, serving
    from imgtfx.trainer.options import TrainerOptions
    from tests.trainer.test_serving import jpeg, linear_model

    keras_model = linear_model()
    vocabulary = ["a", "b", "c"]
    photos = [jpeg(seed=i) for i in range(9)]
    options = TrainerOptions(image_size=32, neighbours=3)
    serving.export(keras_model, vocabulary, options, str(tmp_path / "plain"))
    embed = tf.saved_model.load(str(tmp_path / "plain")).signatures[model.EMBED_SIGNATURE]
    embeddings = embed(images=tf.constant(photos))[model.EMBEDDING].numpy()
    index = retrieval.Index(
        embeddings.astype(np.float16),
        np.arange(9, dtype=np.int64) % 3,
        np.array([f"photo-{i}".encode() for i in range(9)]),
    )
    for predict_by in ("classifier", "neighbours"):
        path = str(tmp_path / predict_by)
        chosen = TrainerOptions(image_size=32, neighbours=3, predict_by=predict_by)
        serving.export(keras_model, vocabulary, chosen, path, index=index)
        served = tf.saved_model.load(path).signatures[model.IMAGES_SIGNATURE]
        out = served(images=tf.constant(photos + [b"garbage"]))
        ids = out[model.NEIGHBOUR_IDS].numpy()
        assert ids.shape == (10, 3)
        assert [i.decode() for i in ids[:9, 0]] == [f"photo-{i}" for i in range(9)]
        similarities = out[model.NEIGHBOUR_SIMILARITIES].numpy()
        assert np.all(similarities[:9, 0] >= 0.99) and np.all(np.diff(similarities[:9]) <= 1e-6)
        labels = out[model.NEIGHBOUR_LABELS].numpy()
        assert [x.decode() for x in labels[:9, 0]] == [vocabulary[i % 3] for i in range(9)]
        assert list(ids[9]) == [b""] * 3 and np.all(similarities[9] == 0)  # refused
        expected = retrieval.label_scores(
            similarities[:9], np.vectorize(lambda x: vocabulary.index(x.decode()))(labels[:9]), 3
        ).numpy()
        scores = out[model.PROBABILITIES].numpy()[:9]
        if predict_by == "neighbours":  # the classifier only breaks ties
            np.testing.assert_allclose(scores, expected, atol=retrieval.TIE_BREAK)
        else:
            assert not np.allclose(scores, expected)


def test_the_classifier_breaks_the_neighbours_ties_and_names_an_empty_votes_label():
    probabilities = tf.constant([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    votes = tf.constant([[0.4, 0.4, 0.0], [0.0, 0.0, 0.0]])  # a tie; no similar neighbour
    scores = retrieval.scores_by("neighbours", probabilities, votes).numpy()
    assert list(scores.argmax(axis=1)) == [1, 0]
    np.testing.assert_allclose(scores, votes.numpy(), atol=retrieval.TIE_BREAK)


def scene(seed: int, label: int | None) -> bytes:
    """A 32x32 JPEG: a landmark's photo (its own saturated colours, this photo's noise), or
    with no label a photo of no landmark (grey, of any brightness, with noise)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    if label is None:
        base = np.full((32, 32, 3), rng.uniform(40, 220))
    else:
        colours = np.random.default_rng(1000 + label).uniform(0, 255, (2, 2, 3))
        base = np.kron(colours, np.ones((16, 16, 1)))
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_folder_of_non_landmarks_lowers_what_non_landmark_queries_cost_in_gap(tmp_path):
    """The mechanism of --non-landmarks and --min-confidence on made photos: queries of no
    landmark take ranks and lower GAP; with a distractor folder (read as the Trainer reads it,
    a file that is no photo recorded as a reject) their scores fall below the landmarks' and the
    cost shrinks; under min_confidence they abstain and cost nothing."""
    from imgtfx.components.image_evaluator.metrics import global_average_precision
    from imgtfx.trainer import model, non_landmarks, serving
    from imgtfx.trainer.options import TrainerOptions
    from tests.trainer.test_serving import linear_model

    keras_model = linear_model()
    vocabulary = ["a", "b", "c"]
    train = [(scene(i, i % 3), i % 3) for i in range(18)]
    queries = [(scene(100 + i, i % 3), i % 3) for i in range(12)]
    strangers = [(scene(200 + i, None), -1) for i in range(12)]
    folder = tmp_path / "non-landmarks"
    folder.mkdir()
    for i in range(10):
        (folder / f"{i}.jpg").write_bytes(scene(300 + i, None))
    (folder / "notes.txt").write_text("not a photo")
    found = non_landmarks.read(str(folder), max_pixels=10**6)
    assert len(found.images) == 10
    assert [(r["path"], r["reason"].split(":")[0]) for r in found.rejects] == [
        (str(folder / "notes.txt"), "not_an_image")
    ]

    options = TrainerOptions(image_size=32, neighbours=3)
    embedder = model.keras.Model(keras_model.inputs, model.features_of(keras_model))
    index = retrieval.Index(
        retrieval.embed_images(embedder, [p for p, _ in train], options),
        np.array([label for _, label in train], np.int64),
        np.array([f"t{i}".encode() for i in range(len(train))]),
    )
    distractors = retrieval.embed_images(embedder, found.images, options)

    def gaps(path, distractors=None, **chosen):
        serving.export(
            keras_model, vocabulary, TrainerOptions(image_size=32, neighbours=3, **chosen),
            path, index=index, non_landmarks=distractors,
        )  # fmt: skip
        served = tf.saved_model.load(path).signatures[model.IMAGES_SIGNATURE]
        out = served(images=tf.constant([p for p, _ in queries + strangers]))
        scores = out[model.PROBABILITIES].numpy()
        best, index_out = scores.max(axis=1), out[model.CLASS_INDEX].numpy()[:, 0]
        truth = np.array([label for _, label in queries + strangers])
        predicted = index_out >= 0
        args = (best, index_out == truth, truth >= 0, predicted)
        landmarks = slice(0, len(queries))
        clean = global_average_precision(*(a[landmarks] for a in args))
        return clean, global_average_precision(*args), best, predicted

    clean, mixed, plain_best, _ = gaps(str(tmp_path / "index"))
    assert clean == pytest.approx(1.0)  # the landmarks' own photos are told apart
    assert clean - mixed > 0.1  # the strangers, ranked among them, cost GAP
    with_folder, mixed_folder, best, _ = gaps(str(tmp_path / "folder"), distractors)
    assert with_folder == pytest.approx(clean)  # the landmarks' own order is kept
    assert with_folder - mixed_folder < (clean - mixed) / 2
    strange = best[len(queries) :]
    assert np.median(strange) < best[: len(queries)].min()  # most strangers fall below all
    assert np.all(strange < plain_best[len(queries) :])
    threshold = 0.5
    kept, abstaining, served, predicted = gaps(
        str(tmp_path / "abstain"), distractors, min_confidence=threshold
    )
    assert list(predicted) == list(best >= threshold)
    assert np.count_nonzero(~predicted[len(queries) :]) >= len(strangers) * 3 // 4
    assert np.all(served[~predicted] == 0)
    assert kept == pytest.approx(with_folder) and abstaining >= mixed_folder


def test_blend_weighs_the_classifier_a_quarter():
    probabilities = tf.constant([[0.8, 0.2], [0.1, 0.9]])
    votes = tf.constant([[0.0, 0.6], [0.4, 0.0]])
    scores = retrieval.scores_by("blend", probabilities, votes).numpy()
    np.testing.assert_allclose(scores, [[0.2, 0.5], [0.325, 0.225]], atol=1e-6)
    # the vote's label wins where the classifier disagrees, as measured best
    assert list(scores.argmax(axis=1)) == [1, 0]
