"""Recognition by retrieval, measured on a run of the real-shape contest tree (bench/scale.py's
run of 88,102 photos): GAP of each prediction method at each k, the blend's weight, what photos
of no landmark cost GAP with and without a distractor folder and under --min-confidence, and
the serving latency per image with the index, on this machine.

It reads the run's pushed model (the index inside it) and the tree: the eval photos are the
tree's photos that are not in the index. Scores are computed with the model's own retrieval ops
(trainer/retrieval.py) over its embeddings and its classifier's probabilities, so that one pass
over the photos measures every k and weight without training again. The photos of no landmark
are written here (bench/non_landmark_data.py): distractors and queries of the
same kind, no two of one scene.

    .venv/bin/python bench/retrieval.py [--run bench/work/run-88102] [--tree ...]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.non_landmark_data import write_non_landmarks  # noqa: E402
from bench.provenance import provenance  # noqa: E402

KS = (1, 3, 5, 10, 20)
BLEND_WEIGHTS = (0.25, 0.5, 0.75)  # the classifier's share
MIN_CONFIDENCES = (0.1, 0.35, 0.5, 0.7)  # a k=3 vote of one, two, three similar photos
BATCH = 64


def photos_of(tree: str, ids) -> dict[str, str]:
    """{id: path} of the tree's photos whose id (the file name's stem) is one of `ids`."""
    found = {}
    for folder, _, names in os.walk(os.path.join(tree, "images")):
        for name in names:
            stem = os.path.splitext(name)[0]
            if stem in ids:
                found[stem] = os.path.join(folder, name)
    return found


def answers(signature, paths: list[str]) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(embeddings, the classifier's probabilities, seconds, whether each was read) of the
    photos at `paths` through the model's evaluation signature."""
    import tensorflow as tf

    from imgtfx.trainer import model

    (name,) = signature.structured_input_signature[1]
    embeddings, scores, read = [], [], []
    started = time.monotonic()
    for i in range(0, len(paths), BATCH):
        data = [open(p, "rb").read() for p in paths[i : i + BATCH]]
        out = signature(**{name: tf.constant(data)})
        embeddings.append(out[model.EMBEDDING].numpy())
        scores.append(out[model.scores_of("classifier")].numpy())
        read.append(out[model.ERROR].numpy().reshape(-1) == b"")
    seconds = time.monotonic() - started
    return np.concatenate(embeddings), np.concatenate(scores), seconds, np.concatenate(read)


def gap(scores: np.ndarray, truth: np.ndarray) -> float:
    """GAP of the top class of each row (truth -1: a photo of no landmark; rows of zeros: no
    prediction), as the Evaluator computes it."""
    from imgtfx.components.image_evaluator.metrics import global_average_precision

    best = scores.argmax(axis=1)
    confidence = scores.max(axis=1)
    return global_average_precision(confidence, best == truth, truth >= 0, confidence > 0)


def method_scores(probabilities, similarities, labels, classes: int, k: int, chunk=2048):
    """{method: [q, classes]} at k neighbours: the classifier, the neighbours' vote (ties by the
    classifier) and the blends at BLEND_WEIGHTS."""
    from imgtfx.trainer import retrieval

    votes = np.concatenate(
        [
            retrieval.label_scores(
                similarities[i : i + chunk, :k], labels[i : i + chunk, :k], classes
            ).numpy()
            for i in range(0, len(similarities), chunk)
        ]
    )
    out = {  # the served formulas; the blend's weight swept below
        method: retrieval.scores_by(method, probabilities, votes).numpy()
        for method in ("classifier", "neighbours")
    }
    for w in BLEND_WEIGHTS:
        out[f"blend {w}"] = w * probabilities + (1 - w) * votes
    return out


def latency(loaded, paths: list[str], model_dir: str, files: list[str]) -> dict:
    """Milliseconds per image of the served signature (search included) and of `embed` (the
    same decode and network, no search), one image a call and 32 a call; and of `imgtfx
    predict` over `files` (each file read and checked, then the model, 32 a call), the model's
    load apart."""
    import tensorflow as tf

    from imgtfx import predict
    from imgtfx.trainer import model

    started = time.perf_counter()
    lines = list(predict.predict(model_dir, files[:1]))
    load = time.perf_counter() - started
    started = time.perf_counter()
    lines = list(predict.predict(model_dir, files))
    seconds = time.perf_counter() - started - load
    assert all("neighbours" in line for line in lines)
    figures = {
        f"imgtfx predict ms/image ({len(files)} files)": round(1000 * seconds / len(files), 2)
    }
    for name in (model.IMAGES_SIGNATURE, model.EMBED_SIGNATURE):
        signature = loaded.signatures[name]
        for batch in (1, 32):
            data = tf.constant([open(p, "rb").read() for p in paths[:batch]])
            signature(images=data)  # warm
            times = []
            for _ in range(20 if batch == 1 else 5):
                started = time.perf_counter()
                signature(images=data)
                times.append(time.perf_counter() - started)
            figures[f"{name} x{batch} ms/image"] = round(1000 * statistics.median(times) / batch, 2)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    work = os.path.join(REPO, "bench", "work")
    parser.add_argument("--run", default=os.path.join(work, "run-88102"))
    parser.add_argument("--tree", default=os.path.join(work, "contest-88102-contest"))
    parser.add_argument("--distractors", type=int, default=500)
    parser.add_argument("--strangers", type=int, default=2000, help="queries of no landmark")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    from imgtfx import predict
    from imgtfx.trainer import retrieval
    from imgtfx.trainer.options import TrainerOptions

    model_dir = predict.resolve_model_dir(args.run)
    loaded = tf.saved_model.load(model_dir)
    vocabulary = open(os.path.join(model_dir, "labels.txt"), encoding="utf-8").read().split("\n")
    vocabulary = [v for v in vocabulary if v]
    position = {label: i for i, label in enumerate(vocabulary)}
    index = loaded.index_embeddings.numpy()
    index_labels = loaded.index_labels.numpy()
    in_index = {i.decode() for i in loaded.index_ids.numpy()}
    with open(os.path.join(args.tree, "train.csv"), encoding="utf-8") as f:
        label_of = {row["id"]: row["landmark_id"] for row in csv.DictReader(f)}
    photos = photos_of(args.tree, label_of)
    eval_ids = sorted(i for i in photos if i not in in_index)

    others = os.path.join(os.path.dirname(args.tree), "non-landmarks")
    distractor_paths = write_non_landmarks(os.path.join(others, "folder"), args.distractors)
    stranger_paths = write_non_landmarks(
        os.path.join(others, "queries"), args.strangers, first=args.distractors
    )
    signature = loaded.signatures["evaluate"]
    eval_embeddings, eval_probabilities, seconds, read = answers(
        signature, [photos[i] for i in eval_ids]
    )
    rate = len(eval_ids) / seconds
    # A photo the model cannot read was rejected by the converter too: not a query.
    eval_ids = [i for i, ok in zip(eval_ids, read, strict=True) if ok]
    eval_embeddings, eval_probabilities = eval_embeddings[read], eval_probabilities[read]
    truth = np.array([position.get(label_of[i], -1) for i in eval_ids])
    print(f"{len(in_index):,} photos in the index, {len(eval_ids):,} eval photos", flush=True)
    print(f"eval photos through the model: {rate:.0f} photos/s", flush=True)
    s_embeddings, s_probabilities, _, _ = answers(signature, stranger_paths)
    d_embeddings, _, _, _ = answers(signature, distractor_paths)

    queries = np.concatenate([eval_embeddings, s_embeddings])
    probabilities = np.concatenate([eval_probabilities, s_probabilities])
    everyone = np.concatenate([truth, np.full(len(stranger_paths), -1)])
    started = time.monotonic()
    similarities, positions = retrieval.nearest(queries, tf.constant(index), max(KS))
    search_s = time.monotonic() - started
    similarities, labels = similarities.numpy(), index_labels[positions.numpy()]
    d_similarities = retrieval.nearest(queries, tf.constant(d_embeddings), max(KS))[0].numpy()
    classes = len(vocabulary)
    landmarks = slice(0, len(eval_ids))

    by_k = {}
    for k in KS:
        scores = method_scores(probabilities, similarities, labels, classes, k)
        share = retrieval.landmark_share(similarities[:, :k], d_similarities[:, :k], k).numpy()
        by_k[k] = {}
        for method, s in scores.items():
            by_k[k][method] = {
                "gap": round(gap(s[landmarks], truth), 4),
                "accuracy": round(float(np.mean(s[landmarks].argmax(1) == truth)), 4),
                "gap with strangers": round(gap(s, everyone), 4),
                "gap with strangers and the folder": round(gap(s * share[:, None], everyone), 4),
            }
        print(f"k={k}: " + ", ".join(f"{m} {v['gap']}" for m, v in by_k[k].items()), flush=True)

    k = TrainerOptions().neighbours  # the default
    chosen = method_scores(probabilities, similarities, labels, classes, k)["neighbours"]
    share = retrieval.landmark_share(similarities[:, :k], d_similarities[:, :k], k).numpy()
    abstaining = {}
    for threshold in MIN_CONFIDENCES:
        for folder, s in (("without", chosen), ("with", chosen * share[:, None])):
            held = retrieval.abstain(tf.constant(s, tf.float32), threshold).numpy()
            answered = held.max(axis=1) > 0
            abstaining[f"{threshold} {folder} the folder"] = {
                "gap with strangers": round(gap(held, everyone), 4),
                "eval answered": round(float(answered[landmarks].mean()), 4),
                "strangers answered": round(float(answered[len(eval_ids) :].mean()), 4),
            }

    model_bytes = sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(model_dir)
        for name in names
    )
    results = {
        **provenance(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model_dir,
        "index photos": len(in_index),
        "dimensions": int(index.shape[1]),
        "eval photos": len(eval_ids),
        "distractors": len(distractor_paths),
        "strangers": len(stranger_paths),
        "model MB": round(model_bytes / 1e6, 1),
        "index MB (float16)": round(index.nbytes / 1e6, 1),
        "photos/s through the model (decode + network, 960x540)": round(rate),
        "exact search of all queries, s": round(search_s, 1),
        "by k": by_k,
        f"min_confidence (k={k}, neighbours)": abstaining,
        "latency": latency(
            loaded,
            [photos[i] for i in eval_ids[:32]],
            model_dir,
            [photos[i] for i in eval_ids[:512]],
        ),
    }
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, f"retrieval-{datetime.date.today().isoformat()}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    print(json.dumps({k: v for k, v in results.items() if k != "by k"}, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
