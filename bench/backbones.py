"""Backbones side by side: training steps/s, eval accuracy after N steps, and the tf.data input's
images/s alone, for each backbone at each image size, on one contest-shaped Examples artifact.

  python bench/backbones.py [--photos 8000] [--sizes 96,160,224] [--steps 40]
      [--backbones small_cnn,mobilenet_v3_small,...] [--heads softmax,cosine]
      [--weights-dir DIR] [--mixed-precision off|auto|both]

The tree is bench/contest_data.py's (960x540 phone photos, 1,049 landmarks), converted once with
`imgtfx convert`. Every model is built and trained by the Trainer's own code (trainer/model.py,
trainer/data.py) in this process, one after the other, so the figures compare like with like.
Weights are random unless --weights-dir holds `<backbone>_notop.h5` files (none can be
downloaded here), so accuracy after a few dozen steps says little about what a pretrained
backbone reaches: the figure to read on CPU is steps/s. On a GPU machine, bench/gpu.sh runs this
with mixed precision on and off.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.provenance import provenance  # noqa: E402
from bench.scale import table, write_results  # noqa: E402

WARMUP_STEPS = 3
EVAL_BATCHES = 20
INPUT_BATCHES = 20


def converted_examples(work: str, photos: int) -> str:
    """The Examples folder of a contest-shaped tree of `photos` photos, converted once."""
    from bench.contest_data import write_contest_tree

    tree = write_contest_tree(os.path.join(work, f"contest-{photos}"), photos, 1049)
    out = os.path.join(work, f"backbones-examples-{photos}")
    if not os.path.exists(os.path.join(out, "report.json")):
        imgtfx = os.path.join(os.path.dirname(sys.executable), "imgtfx")
        subprocess.run(
            [imgtfx, "convert", "--images", tree["images"], "--labels", tree["labels_csv"],
             "--output", out],
            check=True,
        )  # fmt: skip
    return out


def measure(
    examples: str, backbone: str, size: int, steps: int, args, policy: str, head: str = "softmax"
) -> dict:
    import numpy as np
    import tf_keras as keras

    from imgtfx.components.examples.features import read_feature_names
    from imgtfx.components.examples.layout import split_files
    from imgtfx.components.image_evaluator.metrics import global_average_precision
    from imgtfx.trainer import data, model
    from imgtfx.trainer.options import TrainerOptions

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    weights = "none"
    if args.weights_dir and backbone != "small_cnn":
        candidate = os.path.join(args.weights_dir, f"{backbone}_notop.h5")
        weights = candidate if os.path.exists(candidate) else "none"
    options = TrainerOptions(
        image_size=size, batch_size=args.batch_size, backbone=backbone, weights=weights, head=head
    )
    train = data.make_dataset([split_files(examples, "train")], options, training=True)
    evaluation = data.make_dataset([split_files(examples, "eval")], options, training=False)

    start = time.perf_counter()
    for _ in train.take(INPUT_BATCHES):
        pass
    input_rate = INPUT_BATCHES * args.batch_size / (time.perf_counter() - start)

    classifier = model.build_model(1049, options)
    batches = iter(train)
    classifier.fit(batches, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)  # tracing
    start = time.perf_counter()
    classifier.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    labels, probabilities = [], []
    for images, batch_labels in evaluation.take(EVAL_BATCHES):
        probabilities.append(classifier(images, training=False).numpy())
        labels.append(batch_labels.numpy().reshape(-1))
    labels, probabilities = np.concatenate(labels), np.concatenate(probabilities)
    predicted = probabilities.argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    gap = global_average_precision(probabilities.max(axis=1), predicted == labels)
    # The neighbour index the Trainer builds after training: every train photo embedded.
    from imgtfx.trainer import retrieval

    options = dataclasses.replace(options, features=read_feature_names(examples))
    embedder = keras.Model(classifier.inputs, model.features_of(classifier))
    start = time.perf_counter()
    index = retrieval.build_index(embedder, [split_files(examples, "train")], options)
    index_seconds = time.perf_counter() - start
    return {
        "backbone": backbone,
        "head": head,
        "size": size,
        "policy": policy,
        "weights": "file" if weights != "none" else "random",
        "params_M": round(classifier.count_params() / 1e6, 2),
        "steps/s": round(steps / seconds, 2),
        "images/s (train)": round(steps * args.batch_size / seconds, 1),
        "images/s (input alone)": round(input_rate, 1),
        f"eval acc after {steps + WARMUP_STEPS}": round(accuracy, 4),
        "eval GAP": round(gap, 4),
        "index photos": int(index.embeddings.shape[0]),
        "index build s": round(index_seconds, 1),
        "index photos/s": round(index.embeddings.shape[0] / index_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    from imgtfx.trainer.options import BACKBONES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8000)
    parser.add_argument("--sizes", default="96,160,224")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--heads", default="softmax", help="softmax,cosine: each head in turn")
    parser.add_argument("--weights-dir", help="holds <backbone>_notop.h5 files")
    parser.add_argument("--mixed-precision", choices=["off", "auto", "both"], default="off")
    parser.add_argument("--tag", default="", help="in the results file's name (backbones-TAG-...)")
    parser.add_argument("--work", default=os.path.join(REPO, "bench", "work"))
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    args = parser.parse_args(argv)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    policies = {"off": ["float32"], "auto": ["mixed_float16" if gpus else "float32"]}.get(
        args.mixed_precision, ["float32", "mixed_float16"]
    )
    examples = converted_examples(args.work, args.photos)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for backbone in args.backbones.split(","):
            for head in args.heads.split(","):
                for policy in policies:
                    rows.append(measure(examples, backbone, size, args.steps, args, policy, head))
                    print(rows[-1], flush=True)
    device = f"{len(gpus)} GPU(s)" if gpus else f"{os.cpu_count()} CPU cores"
    print(table(rows, f"\nBackbones on {args.photos:,} contest-shaped photos, {device}:"))
    results = {
        **provenance(),
        "device": device,
        "photos": args.photos,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "rows": rows,
    }
    suffix = "gpu" if gpus else "cpu"
    name = "-".join(
        filter(None, ["backbones", args.tag, suffix, datetime.date.today().isoformat()])
    )
    write_results(results, args.out, f"{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
