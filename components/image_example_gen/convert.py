"""Standalone conversion: runs ImageExampleGen's own executor with its output in a chosen folder.

The component object is built first, so the arguments are checked and defaulted exactly as in a
pipeline; then its executor runs as TFX's launcher would run it. The inputs are checked before
TFX and TensorFlow are imported, so a missing folder is said at once.
"""

from __future__ import annotations

from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.components.image_example_gen import tree
from imgtfx.components.image_example_gen.options import EVAL_PERCENT, ImageOptions


def convert(
    images: str,
    output: str,
    options: ImageOptions | None = None,
    split_folders: tuple[str, ...] = (),
    eval_percent: int = EVAL_PERCENT,
    beam_pipeline_args: list[str] | None = None,
) -> dict:
    """Converts an image tree into `output`; returns the conversion report.

    Args:
      images: the image root.
      output: an empty or new folder (local or a URI).
      options: as for the component; default labels from folders.
      split_folders: top folders that are splits already; default the whole root, hash-split.
      eval_percent: the eval share of the hash split.
      beam_pipeline_args: Beam options.

    Raises:
      ValueError: bad arguments (missing folder, bad CSV columns, bad split sizes).
      ImageExampleGenError: the data is not usable (see the message and output/rejects.jsonl).
    """
    options = options or ImageOptions()
    tree.check_local_inputs(images, options.labels_csv, options.label_names_csv)
    return _convert(images, output, options, split_folders, eval_percent, beam_pipeline_args)


def _convert(images, output, options, split_folders, eval_percent, beam_pipeline_args) -> dict:
    """convert, once its inputs are checked: TFX and TensorFlow are imported from here on."""
    import glob
    import os
    import tempfile

    import tensorflow as tf
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts, standard_component_specs

    from imgtfx.components.examples.conversion_report import read_report
    from imgtfx.components.image_example_gen.component import ImageExampleGen

    component = ImageExampleGen(
        input_base=images,
        options=options,
        split_folders=tuple(split_folders),
        eval_percent=eval_percent,
    )
    exec_properties = serialized_exec_properties(component)
    created = not tf.io.gfile.exists(output)
    tf.io.gfile.makedirs(output)
    if tf.io.gfile.glob(os.path.join(glob.escape(output), "Split-*")):
        raise ValueError(f"output {output} already holds converted splits; choose an empty folder.")
    examples = standard_artifacts.Examples()
    examples.uri = output
    try:
        with tempfile.TemporaryDirectory() as tmp:
            context = base_beam_executor.BaseBeamExecutor.Context(
                beam_pipeline_args=beam_pipeline_args or [], tmp_dir=tmp, unique_id="imgtfx-convert"
            )
            executor = component.executor_spec.executor_class(context)
            executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    except ValueError:  # bad arguments found before anything was written: leave no folder
        if created and not tf.io.gfile.listdir(output):
            tf.io.gfile.rmtree(output)
        raise
    return read_report(output)


def serialized_exec_properties(component) -> dict:
    """The component's execution properties as its executor receives them (protos as JSON)."""
    from google.protobuf import message
    from tfx.utils import proto_utils

    return {
        key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
        for key, value in component.exec_properties.items()
        if value is not None
    }


def summary_line(report: ConversionReport, output: str) -> str:
    splits = ", ".join(f"{name} {n}" for name, n in report.splits.items())
    return (
        f"{report.files_seen} files: {report.examples} examples ({splits}), "
        f"{report.rejected} rejected, {report.skipped} skipped, "
        f"{report.num_classes} labels -> {output}"
    )
