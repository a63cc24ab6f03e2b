"""Running ImageExampleGen's executor on temporary folders and reading what it wrote: the
helpers of the converter's tests (and of tests that need converted examples)."""

from __future__ import annotations

import json
import os

from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts, standard_component_specs

from imgtfx.components.examples import layout, reader
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen import executor
from imgtfx.components.image_example_gen.component import ImageExampleGen
from imgtfx.components.image_example_gen.convert import serialized_exec_properties
from imgtfx.pipeline import staging


def exec_properties(root, options=None, input_config=None, output_config=None):
    component = ImageExampleGen(
        input_base=str(root),
        options=options,
        input_config=input_config,
        output_config=output_config,
    )
    return serialized_exec_properties(component)


def run_do(root, out, options=None, input_config=None, output_config=None, beam_args=()):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(out)
    props = exec_properties(root, options, input_config, output_config)
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=staging.worker_args(list(beam_args)), tmp_dir=str(out)
    )
    executor.Executor(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [artifact]}, props)
    return artifact


def examples_of(out, split, features=FeatureNames()):
    rows = []
    for ex in reader.read_examples(layout.split_files(str(out), split), features):
        rows.append({k: v.numpy() for k, v in ex.items()})
    return rows


def rejects_of(out) -> dict[str, str]:
    """{path: reason} of rejects.jsonl."""
    with open(os.path.join(out, layout.REJECTS_FILE), encoding="utf-8") as f:
        return {r["path"]: r["reason"] for r in map(json.loads, f)}


def ids_by_split(out, splits=("train", "eval")):
    return {s: sorted(r["path"].decode() for r in examples_of(out, s)) for s in splits}


def splits_by_class(out):
    classes: dict[str, dict[str, set]] = {}
    for split in ("train", "eval"):
        for row in examples_of(out, split):
            entry = classes.setdefault(row["label_name"].decode(), {"train": set(), "eval": set()})
            entry[split].add(row["path"].decode())
    return classes
