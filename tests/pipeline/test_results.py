"""The run summary read from ML Metadata, on a store filled as TFX's launcher fills it."""

from __future__ import annotations

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb2
from tfx.orchestration import metadata

from imgtfx.components.image_evaluator.properties import BASELINE_NOTE
from imgtfx.pipeline.results import summarize
from imgtfx.pipeline.run_summary import RunSummary


def _record_evaluator(path: str, pipeline_name: str, blessing_properties: dict) -> None:
    """One run of `pipeline_name` whose Evaluator output a blessing with these properties:
    the contexts (pipeline, pipeline_run, node) and the output event TFX records."""
    config = metadata.sqlite_metadata_connection_config(path)
    with metadata.Metadata(config) as m:
        store = m.store
        context_types = {
            name: store.put_context_type(mlmd_pb2.ContextType(name=name))
            for name in ("pipeline", "pipeline_run", "node")
        }
        pipeline, run, node = store.put_contexts(
            [
                mlmd_pb2.Context(type_id=context_types["pipeline"], name=pipeline_name),
                mlmd_pb2.Context(type_id=context_types["pipeline_run"], name="run1"),
                mlmd_pb2.Context(type_id=context_types["node"], name=f"{pipeline_name}.Evaluator"),
            ]
        )
        store.put_parent_contexts([mlmd_pb2.ParentContext(child_id=run, parent_id=pipeline)])
        blessing_type = store.put_artifact_type(mlmd_pb2.ArtifactType(name="ModelBlessing"))
        blessing = mlmd_pb2.Artifact(type_id=blessing_type, uri="/blessing")
        for key, value in blessing_properties.items():
            field = "int_value" if isinstance(value, int) else "string_value"
            setattr(blessing.custom_properties[key], field, value)
        execution_type = store.put_execution_type(mlmd_pb2.ExecutionType(name="Evaluator"))
        execution = mlmd_pb2.Execution(
            type_id=execution_type, last_known_state=mlmd_pb2.Execution.COMPLETE
        )
        event = mlmd_pb2.Event(type=mlmd_pb2.Event.OUTPUT)
        event.path.steps.add().key = "blessing"
        contexts = store.get_contexts_by_id([pipeline, run, node])
        store.put_execution(execution, [(blessing, event)], contexts)


def test_summary_says_why_the_baseline_was_skipped(tmp_path):
    path = str(tmp_path / "metadata.sqlite")
    note = "baseline skipped: vocabulary changed (10 classes in the baseline, 12 now: 2 added)"
    _record_evaluator(path, "p", {"blessed": 1, BASELINE_NOTE: note})
    summary = RunSummary.from_json(summarize(path, "p").to_json())  # as summary.json holds it
    assert summary.blessed is True
    assert summary.blessing["baseline_note"] == note
    assert summary.blessing["baseline_model"] is None


def test_summary_of_a_compared_model_has_no_note(tmp_path):
    path = str(tmp_path / "metadata.sqlite")
    _record_evaluator(path, "p", {"blessed": 1, "baseline_model": "/models/1"})
    blessing = summarize(path, "p").blessing
    assert blessing["baseline_model"] == "/models/1" and blessing["baseline_note"] is None
