"""Runs the pipeline on this machine: LocalDagRunner, SQLite ML Metadata, Beam's DirectRunner.

The only code (beside the Kubeflow runner) that knows where things go:
  ROOT/pipeline/        artifacts           ROOT/metadata.sqlite   ML Metadata
  ROOT/serving/         pushed models       ROOT/summary.json      what the run produced

`prepare(config, root)` checks the inputs, once, before TFX or TensorFlow is imported where it
can (a missing folder is said at once); `LocalRun.run()` runs the steps. `run(config, root)`
does both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import IO

from imgtfx.components.image_example_gen import tree
from imgtfx.pipeline.run_config import RunConfig
from imgtfx.pipeline.run_summary import RunSummary, read_summary, summary_path, write_summary


def paths(root: str) -> dict[str, str]:
    """Where a run's parts live: artifacts, pushed models and summary.json under ROOT, which may
    be a bucket (gs://B/runs/x); ML Metadata's SQLite file and the logs in state_dir(ROOT)."""
    return {
        "pipeline_root": os.path.join(root, "pipeline"),
        "metadata": os.path.join(state_dir(root), "metadata.sqlite"),
        "serving": os.path.join(root, "serving"),
        "summary": summary_path(root),
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


def absolute(path: str) -> str:
    """A local path made absolute; a URI (gs://bucket/images) kept as it is."""
    return path if "://" in path else os.path.abspath(path)


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """A run whose inputs were checked: its configuration (absolute paths) and its root."""

    config: RunConfig
    root: str

    def run(self, console: IO[str] | None = None) -> RunSummary:
        """Runs the whole pipeline and writes ROOT/summary.json; returns the summary. The
        steps' start, end and progress lines go to `console` (default: stderr)."""
        from tfx.orchestration import metadata
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        from imgtfx.pipeline import configs, local_settings, results, steps
        from imgtfx.pipeline.pipeline import create_pipeline

        where = paths(self.root)
        pipeline = create_pipeline(
            self.config,
            where["pipeline_root"],
            where["serving"],
            metadata_connection_config=metadata.sqlite_metadata_connection_config(
                where["metadata"]
            ),
        )
        local_settings.apply()
        with steps.StepWatch(out=console) as watch:
            LocalDagRunner().run(pipeline)
        summary = results.summarize(
            where["metadata"], self.config.pipeline_name, self.config.thresholds(), configs.TOP_K
        )
        summary = dataclasses.replace(
            summary,
            root=self.root,
            step_times=watch.steps,
            seconds=round(sum(step["seconds"] for step in watch.steps.values()), 1),
        )
        write_summary(self.root, summary)
        return summary


def prepare(config: RunConfig, root: str) -> LocalRun:
    """Checks a run's inputs, each failing with a one-line message, and creates ROOT (last, so
    that a failed check leaves nothing behind).

    Raises:
      ValueError: a missing or empty image folder, a missing CSV, a labels CSV without the
        needed columns or that matches no image, a root that cannot be written.
    """
    options = config.image_options
    tree.check_local_inputs(config.images, options.labels_csv, options.label_names_csv)
    config = dataclasses.replace(config, images=absolute(config.images))
    root = absolute(root)
    if options.labels_csv:
        from imgtfx.components.image_example_gen.labels_csv import check_csv_matches

        check_csv_matches(config.images, options)
    if config.trainer_options.pretrained:
        from imgtfx.trainer.backbones import resolve_weights

        trainer = resolve_weights(config.trainer_options)
        config = dataclasses.replace(config, trainer_options=trainer)
    if config.trainer_options.non_landmarks:
        from imgtfx.trainer import non_landmarks

        trainer = non_landmarks.resolve(config.trainer_options)
        config = dataclasses.replace(config, trainer_options=trainer)
    _check_root_writable(root)
    return LocalRun(config, root)


def run(config: RunConfig, root: str, console: IO[str] | None = None) -> RunSummary:
    """prepare(config, root).run(console): checks the inputs, runs, returns the summary."""
    return prepare(config, root).run(console)


def _check_root_writable(root: str) -> None:
    """Creates `root` and the local state folder (last, once every other check passed: a
    failed check leaves nothing)."""
    import tensorflow as tf

    from imgtfx.components.file_io import read_error

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
        raise ValueError(f"cannot write to root {root}: {read_error(e)}.") from None


def record_step(root: str, name: str, record: dict) -> None:
    """Adds what a step outside the pipeline cost (the report) to ROOT/summary.json."""
    summary = read_summary(root)
    step_times = {**summary.step_times, name: record}
    write_summary(root, dataclasses.replace(summary, step_times=step_times))
