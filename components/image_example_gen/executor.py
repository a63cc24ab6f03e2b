"""Beam executor of ImageExampleGen: image tree (+ labels CSV) -> sharded gzipped TFRecords.

The flow: plan.py (list, label, check, group copies, split: one PTransform each), then
shards.py (read each image again and write it), then outputs.py (labels, report.json, the
JSON-lines files); report_checks.py fails a run that should fail. Each module's room is in
docs/architecture.md; what it writes is laid out by the Examples contract (components/examples).

A BaseBeamExecutor, not TFX's BaseExampleGenExecutor: that one converts through its
`GetInputSourceToExamplePTransform` extension point and writes through a Reshuffle of finished
examples, which the local Beam runner holds in memory (every image of the tree), and it has
nowhere to put rejects. Here images are read to be checked and again, in the last, fused step
that writes them, from shards of paths grouped beforehand; only paths and verdicts travel
between the steps, so memory does not grow with the images' bytes, the output files are
identical from run to run, and every reject is recorded. The split is still TFX's (its
partition function, on the same feature bytes: splits.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from absl import logging
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from imgtfx.components import counters
from imgtfx.components.examples import layout
from imgtfx.components.examples.conversion_report import ConversionReport, read_report
from imgtfx.components.examples.report_warnings import copy_warnings, split_warnings
from imgtfx.components.image_example_gen import outputs, plan, progress_bar, report_checks, shards
from imgtfx.components.image_example_gen.options import ImageOptions


class Executor(base_beam_executor.BaseBeamExecutor):
    """ImageExampleGen's executor."""

    def Do(  # noqa: N802 - TFX's API
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config, output_config, options = ImageOptions.from_exec_properties(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        split_uris = {split: layout.split_uri(artifact, split) for split in split_names}

        with self._make_beam_pipeline() as pipeline:
            planned = plan.plan_images(
                pipeline,
                input_base,
                input_config,
                output_config,
                options,
                runs_folder=os.path.join(artifact.uri, outputs.DUPLICATE_RUNS_FOLDER),
                # A bar on a terminal, unless the run's watcher prints progress lines already.
                show_bar=sys.stderr.isatty() and not counters.watched(),
            )
            written = shards.write_shards(planned, split_uris, options)
            outputs.write_outputs_step(
                pipeline, planned, written, artifact.uri, input_base, options, split_names
            )
        progress_bar.close()

        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
        report = read_report(artifact.uri)
        _record_counts(artifact, report)
        report_checks.check_report(report, options)  # the real error first, when there is one
        for line in [*split_warnings(report), *copy_warnings(report)]:
            logging.warning("ImageExampleGen: %s", line)


def _record_counts(artifact: types.Artifact, report: ConversionReport) -> None:
    """The counts as custom properties of the Examples artifact, for ML Metadata queries."""
    for key in ("files_seen", "examples", "rejected", "skipped", "num_classes"):
        artifact.set_int_custom_property(key, int(getattr(report, key)))
    for split, n in report.splits.items():
        artifact.set_int_custom_property(f"examples_{split}", n)
    artifact.set_string_custom_property(
        "label_vocabulary", os.path.join(artifact.uri, layout.LABELS_FILE)
    )
    logging.info(
        "ImageExampleGen: %d files seen, %d examples %s, %d rejected, %d skipped.",
        report.files_seen,
        report.examples,
        report.splits,
        report.rejected,
        report.skipped,
    )
