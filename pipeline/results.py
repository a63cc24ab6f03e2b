"""What a finished run produced, read from ML Metadata: the run summary users look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.image_evaluator.properties import (
    ACCURACY,
    BASELINE_NOTE,
    CLASS_SLICES,
    GAP,
    TOP_K_ACCURACY,
)
from imgtfx.components.image_evaluator.properties import by_method as by_method_name
from imgtfx.pipeline.run_summary import RunSummary
from imgtfx.trainer.options import PREDICT_BY

OVERALL = "overall"
MAX_FAILED = 100
CANDIDATE_MODEL = "candidate"  # TFMA's name for the evaluated model when there is a baseline
BASELINE_MODEL = "baseline_model"  # tfx.components.evaluator.constants, without importing TFMA


def latest_run_outputs(store, pipeline_name: str) -> dict[str, dict]:
    """{node id: {'state': ..., 'outputs': {artifact type: [artifact]}}} of the latest run."""
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if any(p.name == pipeline_name for p in store.get_parent_contexts_by_context(c.id))
    ] or store.get_contexts_by_type("pipeline_run")
    if not runs:
        return {}
    run = max(runs, key=lambda c: c.id)
    nodes: dict[str, dict] = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node_contexts = [
            c
            for c in store.get_contexts_by_execution(execution.id)
            if c.type == "node" or store.get_context_types_by_id([c.type_id])[0].name == "node"
        ]
        if not node_contexts:
            continue
        node_id = node_contexts[0].name.split(".", 1)[-1]
        outputs: dict[str, list] = {}
        events = store.get_events_by_execution_ids([execution.id])
        ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
        for artifact in store.get_artifacts_by_id(ids):
            type_name = store.get_artifact_types_by_id([artifact.type_id])[0].name
            outputs.setdefault(type_name, []).append(artifact)
        nodes[node_id] = {
            "state": metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            "outputs": outputs,
        }
    return nodes


def _first(nodes, node_id, type_name):
    artifacts = nodes.get(node_id, {}).get("outputs", {}).get(type_name, [])
    return artifacts[0] if artifacts else None


def slice_metrics(evaluation_uri: str) -> Iterator[tuple[str, dict[str, float]]]:
    """(slice name, {metric: value}) of the evaluated model, one slice at a time.

    Streamed from TFMA's metrics records (`tfma.load_metrics`), not `tfma.load_eval_result`,
    which holds every slice in Python dicts: one per class can be hundreds of thousands.
    Values compared with a baseline (diffs) and the baseline's own are left out.
    """
    import tensorflow_model_analysis as tfma

    for record in tfma.load_metrics(evaluation_uri):
        values = {}
        for item in record.metric_keys_and_values:
            key = item.key
            if key.is_diff or key.model_name not in ("", CANDIDATE_MODEL):
                continue
            if item.value.HasField("double_value"):
                values[key.name] = item.value.double_value.value
        yield _slice_name(record.slice_key), values


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """{metric: value} of the evaluated model over all eval examples."""
    for name, values in slice_metrics(evaluation_uri):
        if name == OVERALL:
            return values
    return {}


def _slice_name(slice_key) -> str:
    parts = []
    for key in slice_key.single_slice_keys:
        kind = key.WhichOneof("kind")
        value = getattr(key, kind) if kind else ""
        parts.append(f"{key.column}={value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts) or OVERALL


def _bound(threshold) -> str:
    if threshold.HasField("value_threshold"):
        value = threshold.value_threshold
        if value.HasField("lower_bound"):
            return f">= {value.lower_bound.value:g}"
        return f"<= {value.upper_bound.value:g}"
    change = threshold.change_threshold
    if change.HasField("absolute"):
        return f"change vs baseline >= {change.absolute.value:g}"
    return f"relative change vs baseline >= {change.relative.value:g}"


def explain_blessing(
    evaluation_uri: str | None,
    blessed: bool | None,
    thresholds: dict,
    baseline_model: str | None,
    baseline_note: str | None = None,
) -> dict:
    """Why a model was (not) blessed, from TFMA's validation result: the thresholds, the
    baseline it was compared with (or why none was: `baseline_note`, "baseline skipped: ..."),
    and each failed check (metric, slice, value, bound)."""
    failed = []
    missing = []
    if evaluation_uri:
        import tensorflow as tf
        import tensorflow_model_analysis as tfma

        try:
            validation = tfma.load_validation_result(evaluation_uri)
        except (OSError, tf.errors.OpError) as e:  # an Evaluator that failed writes none
            return {
                "blessed": blessed,
                "thresholds": thresholds,
                "baseline_note": baseline_note,
                "error": str(e),
            }
        for per_slice in validation.metric_validations_per_slice:
            for failure in per_slice.failures:
                failed.append(
                    {
                        "metric": failure.metric_key.name,
                        "slice": _slice_name(per_slice.slice_key),
                        "against_baseline": failure.metric_key.is_diff,
                        "value": round(failure.metric_value.double_value.value, 6),
                        "bound": _bound(failure.metric_threshold),
                        "message": failure.message,
                    }
                )
        missing = [_slice_name(s) for s in validation.missing_slices]
    explained = {
        "blessed": blessed,
        "thresholds": thresholds,
        "baseline_model": baseline_model,
        "baseline_note": baseline_note,
        # A class floor can fail on thousands of classes: the worst MAX_FAILED are listed.
        "failed": sorted(failed, key=lambda f: f["value"])[:MAX_FAILED],
        "failed_count": len(failed),
    }
    if missing:
        explained["missing_slices"] = missing
    return explained


def blessing_lines(blessing: dict) -> list[str]:
    """The blessing in words, for the command line; a skipped baseline is said even when the
    model was blessed (it was not compared with the last blessed one)."""
    note = [blessing["baseline_note"]] if blessing and blessing.get("baseline_note") else []
    if not blessing or blessing.get("blessed"):
        return note
    lines = [
        f"not blessed: {f['metric']} on {f['slice']} is {f['value']:g}, needs {f['bound']}"
        for f in blessing.get("failed", [])
    ]
    if blessing.get("error"):
        lines.append(f"not blessed: the evaluation could not be read: {blessing['error']}")
    return note + (
        lines or ["not blessed: the Evaluator did not bless the model (no failed check found)"]
    )


def summarize(
    metadata_path: str, pipeline_name: str, thresholds: dict | None = None, top_k: int = 3
) -> RunSummary:
    """The run summary: examples per split, rejects, accuracy and top-k accuracy, blessing (and
    why), paths."""
    config = metadata.sqlite_metadata_connection_config(metadata_path)
    with metadata.Metadata(config) as m:
        nodes = latest_run_outputs(m.store, pipeline_name)
    examples = _first(nodes, "ImageExampleGen", "Examples")
    model = _first(nodes, "Trainer", "Model")
    evaluation = _first(nodes, "Evaluator", "ModelEvaluation")
    blessing = _first(nodes, "Evaluator", "ModelBlessing")
    pushed = _first(nodes, "Pusher", "PushedModel")
    summary: dict[str, Any] = {
        "steps": {node: info["state"] for node, info in nodes.items()},
        "examples": None,
        "rejected": None,
        "accuracy": None,
        "top_k": top_k,
        "top_k_accuracy": None,
        "gap": None,
        "blessed": None,
        "model": os.path.join(model.uri, "Format-Serving") if model else None,
        "pushed_model": None,
    }
    for key, node, type_name in (
        ("statistics_uri", "StatisticsGen", "ExampleStatistics"),
        ("anomalies_uri", "ExampleValidator", "ExampleAnomalies"),
        ("model_run_uri", "Trainer", "ModelRun"),
    ):
        artifact = _first(nodes, node, type_name)
        summary[key] = artifact.uri if artifact else None
    if examples:
        report = read_report(examples.uri)
        summary.update(
            examples=report.splits,
            rejected=report.rejected,
            skipped=report.skipped,
            num_classes=report.num_classes,
            examples_uri=examples.uri,
        )
    if evaluation:
        slices = evaluation.custom_properties.get(CLASS_SLICES)
        summary["class_slices"] = slices.string_value if slices else None
        metrics = overall_metrics(evaluation.uri)
        summary["accuracy"] = metrics.get(ACCURACY)
        summary["top_k_accuracy"] = metrics.get(TOP_K_ACCURACY)
        summary["gap"] = metrics.get(GAP)
        by_method = {m: metrics.get(by_method_name(GAP, m)) for m in PREDICT_BY}
        if any(value is not None for value in by_method.values()):  # a model with an index
            summary["gap_by_method"] = by_method
        summary["evaluation_uri"] = evaluation.uri
    if blessing:
        summary["blessed"] = bool(blessing.custom_properties["blessed"].int_value)
        # The Evaluator names its baseline on the blessing (input events cannot: when the
        # baseline is the candidate model itself, ML Metadata keeps one event of the two keys).
        baseline = blessing.custom_properties.get(BASELINE_MODEL)
        skipped = blessing.custom_properties.get(BASELINE_NOTE)
        summary["blessing"] = explain_blessing(
            evaluation.uri if evaluation else None,
            summary["blessed"],
            thresholds or {},
            baseline.string_value if baseline else None,
            skipped.string_value if skipped else None,
        )
        # What the blessing looked at, beside the accuracy it gates on.
        summary["blessing"]["metrics"] = {
            "accuracy": summary["accuracy"],
            f"top_{top_k}_accuracy": summary["top_k_accuracy"],
            "gap": summary["gap"],
        }
    if pushed and pushed.custom_properties["pushed"].int_value:
        summary["pushed_model"] = pushed.custom_properties["pushed_destination"].string_value
    return RunSummary(**summary)
