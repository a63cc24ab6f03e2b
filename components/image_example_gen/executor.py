"""Beam executor of ImageExampleGen: image tree (+ labels CSV) -> sharded gzipped TFRecords.

The stages, one module each:
  config.py    options and the labels CSV, read back from exec_properties
  plan.py      on paths only: list -> label (folder, or one CSV join) -> drop duplicates ->
               split (TFX's own hash partition) -> vocabulary and split sizes in one combine
  shards.py    group paths into shards, then read, check and write each shard
  rejects.py   rejects.jsonl: sorted runs where rejects arise, merged a line at a time
  outputs.py   labels.txt, report.json; the checks that fail a run

Images are read only in the last, fused step that also writes them, so memory does not grow with
the number of images. TFX's base executor writes through a Reshuffle of finished examples, which
the local Beam runner holds in memory; writing shards from grouped paths avoids that and makes the
output files identical from run to run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs

from components import progress as counters
from components.image_example_gen import config, outputs, plan, progress, shards


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def ImageTreeToExample(  # noqa: N802 - Beam's naming for ptransform_fn
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.PCollection:
    """The TFX extension point: the images of one split pattern as tf.train.Examples.

    Labels index the vocabulary of all input splits, so pre-split trees share one vocabulary.
    TFX's base executor has nowhere to put rejects, so each is logged as a warning with its
    reason (the plan's once, with the first split pattern); the executor's own `Do`, which the
    component runs, writes them to rejects.jsonl and report.json.
    """
    input_config, output_config, options = config.read_configs(exec_properties)
    planned = plan.plan_images(
        pipeline,
        exec_properties[standard_component_specs.INPUT_BASE_KEY],
        input_config,
        example_gen_pb2.Output(),  # the base executor partitions
        options,
    )
    wanted = {s.name for s in input_config.splits if s.pattern == split_pattern}
    converted = (
        planned.records
        | "OfSplit" >> beam.Filter(lambda r: r.file.split in wanted)
        | "ReadImages"
        >> beam.ParDo(
            shards.ReadImages(options), beam.pvalue.AsSingleton(planned.vocabulary)
        ).with_outputs("outcomes", main="examples")
    )
    rejects = [converted.outcomes]
    if split_pattern == input_config.splits[0].pattern:
        rejects.append(planned.outcomes)
    _ = tuple(rejects) | "AllRejects" >> beam.Flatten() | "LogRejects" >> beam.Map(_log_reject)
    return converted.examples


def _log_reject(outcome) -> None:
    logging.warning(
        "ImageExampleGen: %s %s: %s %s",
        outcome.status,
        outcome.path,
        outcome.reason,
        outcome.detail,
    )


class Executor(BaseExampleGenExecutor):
    """ImageExampleGen's executor."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's API
        return ImageTreeToExample

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config, output_config, options = config.read_configs(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        artifact.split_names = artifact_utils.encode_split_names(split_names)

        with self._make_beam_pipeline() as pipeline:
            planned = plan.plan_images(pipeline, input_base, input_config, output_config, options)
            written = shards.write_shards(
                planned,
                artifact.uri,
                options,
                # A bar on a terminal, unless the run's watcher prints progress lines already.
                progress=sys.stderr.isatty() and not counters.watched(),
            )
            outputs.write_outputs_step(
                pipeline, planned, written, artifact.uri, input_base, options, split_names
            )
        progress.close()

        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
        report = outputs.read_report(artifact.uri)
        _record_counts(artifact, report)
        outputs.check_report(report, options)  # the real error first, when there is one
        for line in outputs.split_warnings(report):
            logging.warning("ImageExampleGen: %s", line)


def _record_counts(artifact: types.Artifact, report: dict) -> None:
    """The counts as custom properties of the Examples artifact, for ML Metadata queries."""
    for key in ("files_seen", "examples", "rejected", "skipped", "num_classes"):
        artifact.set_int_custom_property(key, int(report[key]))
    for split, n in report["splits"].items():
        artifact.set_int_custom_property(f"examples_{split}", n)
    artifact.set_string_custom_property(
        "label_vocabulary", os.path.join(artifact.uri, outputs.LABELS_FILE)
    )
    logging.info(
        "ImageExampleGen: %d files seen, %d examples %s, %d rejected, %d skipped.",
        report["files_seen"],
        report["examples"],
        report["splits"],
        report["rejected"],
        report["skipped"],
    )
