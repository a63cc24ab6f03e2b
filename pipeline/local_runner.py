"""Runs the pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam's DirectRunner.

The only code (beside the Kubeflow runner) that knows where things go:
  ROOT/pipeline/        artifacts           ROOT/metadata.sqlite   ML Metadata
  ROOT/serving/         pushed models       ROOT/summary.json      what the run produced
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from typing import IO

from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.proto import example_gen_pb2

from components.image_example_gen import ImageOptions, images
from components.image_example_gen.config import (
    labels_csv_columns,
    read_labels_csv,
    split_tops,
)
from pipeline import configs, local_settings, results, steps
from pipeline.pipeline import create_pipeline
from trainer.options import TrainerOptions


def paths(root: str) -> dict[str, str]:
    """Where a run's parts live: artifacts, pushed models and summary.json under ROOT, which may
    be a bucket (gs://B/runs/x); ML Metadata's SQLite file and the logs in state_dir(ROOT)."""
    return {
        "pipeline_root": os.path.join(root, "pipeline"),
        "metadata": os.path.join(state_dir(root), "metadata.sqlite"),
        "serving": os.path.join(root, "serving"),
        "summary": os.path.join(root, "summary.json"),
        "logs": os.path.join(state_dir(root), "logs"),
    }


def state_dir(root: str) -> str:
    """What a run keeps on this machine: ROOT itself, or for a root in a bucket a folder of the
    user's cache named after it (SQLite, ML Metadata's store here, needs a local file: a rerun
    of the same command on this machine finds its cache)."""
    if "://" not in root:
        return root
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = hashlib.sha256(root.rstrip("/").encode()).hexdigest()[:16]
    return os.path.join(cache, "imgtfx", "runs", name)


def check_inputs(images_root: str, root: str, options: ImageOptions) -> None:
    """Cheap checks before any heavy work, each failing with a one-line message.

    Raises:
      ValueError: missing image folder, a root that cannot be written, a labels CSV without the
        needed columns or that matches no image.
    """
    images.check_local_root(images_root)
    if options.labels_csv:
        _check_csv_matches(images_root, options)
    _check_root_writable(root)


CSV_CHECK_ROWS = 50_000  # CSV ids held at once by the check (one pandas chunk)
CSV_CHECK_IMAGES = 10_000  # images the check walks at most


def _check_csv_matches(images_root: str, options: ImageOptions) -> None:
    """Fails when no row of the labels CSV names one of the tree's images (a wrong id column,
    ids with extensions), holding neither the whole CSV nor the whole tree: the tree is walked
    until an image is in the CSV's first CSV_CHECK_ROWS rows (usually the first image), at most
    CSV_CHECK_IMAGES images, whose ids the rest of the CSV is then streamed against. Past
    CSV_CHECK_IMAGES images without a match nothing is concluded: ImageExampleGen counts every
    id."""
    id_column, label_column = labels_csv_columns(options)
    rows = read_labels_csv(options.labels_csv, id_column, label_column)
    first_rows = {csv_id for csv_id, _ in itertools.islice(rows, CSV_CHECK_ROWS)}
    ignore = images.ignored_files(options.labels_csv)
    walked = (
        images.image_id(entry.path)
        for top in split_tops(images_root, "*")
        for entry in images.walk("", images_root, top, ignore, options.follow_external_links)
        if isinstance(entry, images.FoundFile)
    )
    seen: set[str] = set()
    walked_count = 0
    for image_id in itertools.islice(walked, CSV_CHECK_IMAGES):
        if image_id in first_rows:
            return
        seen.add(image_id)
        walked_count += 1
    del first_rows
    if any(csv_id in seen for csv_id, _ in rows):  # the rest of the CSV, streamed
        return
    if walked_count < CSV_CHECK_IMAGES:  # the whole tree was seen
        raise ValueError(
            f"labels CSV {options.labels_csv} matches no image under {images_root}: its "
            f"'{id_column}' column must hold file names without extension."
        )


def _check_root_writable(root: str) -> None:
    """Creates `root` and the local state folder (last, once every other check passed: a
    failed check leaves nothing)."""
    import tensorflow as tf

    try:
        os.makedirs(state_dir(root), exist_ok=True)
        tf.io.gfile.makedirs(root)
        probe = os.path.join(root, ".write-test")
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except OSError as e:
        raise ValueError(f"cannot write to root {root}: {e.strerror or e}.") from None
    except tf.errors.OpError as e:
        raise ValueError(f"cannot write to root {root}: {images.read_error(e)}.") from None


def record_step(root: str, name: str, record: dict) -> None:
    """Adds what a step outside the pipeline cost (the report) to ROOT/summary.json."""
    import tensorflow as tf

    path = paths(root)["summary"]
    with tf.io.gfile.GFile(path, "rb") as f:
        summary = json.loads(f.read().decode("utf-8"))
    summary.setdefault("step_times", {})[name] = record
    write_json(path, summary)


def write_json(path: str, value) -> None:
    """`value` as indented UTF-8 JSON at `path`, a local path or a URI."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8"))


def absolute(path: str) -> str:
    """A local path made absolute; a URI (gs://bucket/images) kept as it is."""
    return path if "://" in path else os.path.abspath(path)


def run(
    images_root: str,
    root: str,
    image_options: ImageOptions = ImageOptions(),
    trainer_options: TrainerOptions = TrainerOptions(),
    input_config: example_gen_pb2.Input | None = None,
    train_steps: int = configs.TRAIN_STEPS,
    eval_steps: int = configs.EVAL_STEPS,
    eval_percent: int = configs.EVAL_PERCENT,
    min_accuracy: float = configs.MIN_ACCURACY,
    min_class_accuracy: float | None = None,
    beam_pipeline_args: list[str] | None = None,
    pipeline_name: str = configs.PIPELINE_NAME,
    console: IO[str] | None = None,
    inputs_checked: bool = False,
) -> dict:
    """Runs the whole pipeline and writes ROOT/summary.json; returns the summary. The steps'
    start, end and progress lines go to `console` (default: stderr); `inputs_checked` says the
    caller ran check_inputs already (it reads the labels CSV and walks the tree)."""
    root = absolute(root)
    images_root = absolute(images_root)
    if not inputs_checked:
        check_inputs(images_root, root, image_options)
    if train_steps <= 0:
        raise ValueError(f"train steps must be positive, got {train_steps}.")
    where = paths(root)
    pipeline = create_pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=where["pipeline_root"],
        images=images_root,
        serving_dir=where["serving"],
        image_options=image_options,
        trainer_options=trainer_options,
        input_config=input_config,
        eval_percent=eval_percent,
        train_steps=train_steps,
        eval_steps=eval_steps,
        min_accuracy=min_accuracy,
        min_class_accuracy=min_class_accuracy,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(where["metadata"]),
        beam_pipeline_args=list(
            configs.BEAM_PIPELINE_ARGS if beam_pipeline_args is None else beam_pipeline_args
        ),
    )
    local_settings.apply()
    with steps.StepWatch(out=console) as watch:
        LocalDagRunner().run(pipeline)
    thresholds = {
        "min_accuracy": min_accuracy,
        "max_accuracy_drop": configs.MAX_ACCURACY_DROP,
        "min_class_accuracy": min_class_accuracy,
    }
    summary = results.summarize(where["metadata"], pipeline_name, thresholds, configs.TOP_K)
    summary["root"] = root
    summary["step_times"] = watch.steps
    summary["seconds"] = round(sum(step["seconds"] for step in watch.steps.values()), 1)
    summary["min_accuracy"] = min_accuracy
    write_json(where["summary"], summary)
    return summary
