"""The Evaluator's baseline lookup, against a real ML Metadata store filled the way the KFP v2
launcher fills the cluster's (tests/kubeflow/kfp_emulator/metadata.py follows backend/src/v2)."""

from __future__ import annotations

import os

import pytest

from imgtfx.components.baseline_evaluator import executor
from tests.kubeflow.kfp_emulator import record_outputs
from tests.kubeflow.kfp_emulator.metadata import metadata_service

MODEL = {"instanceSchema": "title: tfx.Model\ntype: object\n"}
BLESSING = {"instanceSchema": "title: tfx.ModelBlessing\ntype: object\n"}


def _evaluate(store, pipeline, run, model_uri, blessed, namespace="kubeflow", session=None):
    """Records a Trainer and an Evaluator task of one run, as the launcher does."""
    os.makedirs(model_uri, exist_ok=True)
    model = {"model": [{"type": MODEL, "uri": model_uri}]}
    record_outputs(store, pipeline, run, "Trainer", model, namespace)
    metadata = {"blessed": blessed, "current_model": model_uri, "current_model_id": 7}
    if session:
        metadata["store_session_info"] = session
    blessing = {"type": BLESSING, "uri": f"{model_uri}-blessing", "metadata": metadata}
    record_outputs(store, pipeline, run, "Evaluator", {"blessing": [blessing]}, namespace)


def test_latest_blessed_model_of_this_pipeline(tmp_path):
    store = str(tmp_path / "metadata.sqlite")
    models = tmp_path / "models"
    _evaluate(store, "images", "run1", str(models / "m1"), 1)
    _evaluate(store, "images", "run2", str(models / "m2"), 1)
    _evaluate(store, "images", "run3", str(models / "m3"), 0)  # newer, not blessed
    _evaluate(store, "other", "run4", str(models / "m4"), 1)  # another pipeline
    found = executor.latest_blessed_model(executor.connect(f"sqlite:{store}"), "images")
    assert found == str(models / "m2")

    os.rmdir(models / "m2")  # a deleted model is no baseline
    found = executor.latest_blessed_model(executor.connect(f"sqlite:{store}"), "images")
    assert found == str(models / "m1")


def test_the_baseline_comes_with_the_store_the_launcher_wrote_it_to(tmp_path):
    """From 2.3 the launcher records its store session on every output: the endpoint, region
    and secret of the run's root, which the baseline's copy then reads from."""
    store = str(tmp_path / "metadata.sqlite")
    session = (
        '{"Provider":"minio","Params":{"disableSSL":"true","endpoint":"seaweedfs.kubeflow:9000",'
        '"fromEnv":"false","region":"minio","secretName":"mlpipeline-minio-artifact"}}'
    )
    _evaluate(store, "images", "run1", str(tmp_path / "m1"), 1, session=session)
    found = executor.latest_blessed(executor.connect(f"sqlite:{store}"), "images")
    assert found == executor.Baseline(str(tmp_path / "m1"), session)
    _evaluate(store, "images", "run2", str(tmp_path / "m2"), 1)  # 2.2: none recorded
    found = executor.latest_blessed(executor.connect(f"sqlite:{store}"), "images")
    assert found == executor.Baseline(str(tmp_path / "m2"), None)


def test_only_runs_of_this_namespace_count_on_multi_user_kubeflow(tmp_path):
    store = str(tmp_path / "metadata.sqlite")
    models = tmp_path / "models"
    _evaluate(store, "images", "run1", str(models / "ours"), 1, namespace="team-a")
    _evaluate(store, "images", "run2", str(models / "theirs"), 1, namespace="team-b")  # newer
    environ = {
        executor.METADATA_SERVICE_ENV: f"sqlite:{store}",
        executor.PIPELINE_NAME_ENV: "images",
        executor.NAMESPACE_ENV: "team-a",
    }
    assert executor.find_baseline(environ).uri == str(models / "ours")
    assert executor.find_baseline({**environ, executor.NAMESPACE_ENV: "team-c"}) is None
    (tmp_path / "namespace").write_text("team-b\n")  # the pod's service account file
    no_env = {k: v for k, v in environ.items() if k != executor.NAMESPACE_ENV}
    assert executor.pod_namespace(no_env, str(tmp_path / "namespace")) == "team-b"
    assert executor.pod_namespace(no_env, str(tmp_path / "absent")) is None


def test_a_new_cluster_has_no_baseline(tmp_path):
    store = f"sqlite:{tmp_path / 'metadata.sqlite'}"
    record_outputs(store[len("sqlite:") :], "images", "run1", "Trainer", {})
    assert executor.latest_blessed_model(executor.connect(store), "images") is None
    assert executor.latest_blessed_model(executor.connect(store), "never-ran") is None
    environ = {executor.METADATA_SERVICE_ENV: store, executor.PIPELINE_NAME_ENV: "images"}
    assert executor.find_baseline(environ) is None
    assert executor.find_baseline({executor.METADATA_SERVICE_ENV: "none"}) is None


def test_an_unreachable_service_is_a_clear_error():
    environ = {executor.METADATA_SERVICE_ENV: "127.0.0.1:1", executor.PIPELINE_NAME_ENV: "p"}
    with pytest.raises(executor.MetadataServiceError, match="--metadata-service HOST:PORT"):
        executor.find_baseline(environ)
    with pytest.raises(executor.MetadataServiceError, match="give host:port"):
        executor.find_baseline({**environ, executor.METADATA_SERVICE_ENV: "nohost"})
    with pytest.raises(executor.MetadataServiceError, match="IMGTFX_PIPELINE_NAME"):
        executor.find_baseline({executor.METADATA_SERVICE_ENV: "127.0.0.1:1"})


def test_the_grpc_client_path_reads_the_clusters_service(tmp_path):
    store = str(tmp_path / "metadata.sqlite")
    models = tmp_path / "models"
    _evaluate(store, "images", "run1", str(models / "ours"), 1, namespace="team-a")
    _evaluate(store, "images", "run2", str(models / "theirs"), 1, namespace="team-b")
    server, port = metadata_service(store)
    try:
        environ = {
            executor.METADATA_SERVICE_ENV: f"127.0.0.1:{port}",  # as --metadata-service sets it
            executor.PIPELINE_NAME_ENV: "images",
            executor.NAMESPACE_ENV: "team-a",
        }
        assert executor.find_baseline(environ).uri == str(models / "ours")
        assert executor.find_baseline({**environ, executor.PIPELINE_NAME_ENV: "other"}) is None
    finally:
        server.stop(None)


def _labels(folder, labels) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{label}\n" for label in labels))


def _run_evaluator(tmp_path, monkeypatch, baseline_labels, example_labels=("cat", "dog")):
    """The BaselineEvaluator's Do with the newest blessed model's labels.txt holding
    `baseline_labels` (None: no labels.txt), TFX's own evaluation replaced by a recorder;
    returns the inputs TFX's executor got and the blessing."""
    from tfx.components.evaluator import executor as tfx_evaluator
    from tfx.types import standard_artifacts, standard_component_specs

    store = str(tmp_path / "metadata.sqlite")
    model_uri = str(tmp_path / "models" / "blessed")
    _evaluate(store, "images", "run1", model_uri, 1)
    if baseline_labels is not None:
        _labels(os.path.join(model_uri, "Format-Serving"), baseline_labels)
    monkeypatch.setenv(executor.METADATA_SERVICE_ENV, f"sqlite:{store}")
    monkeypatch.setenv(executor.PIPELINE_NAME_ENV, "images")
    monkeypatch.setenv(executor.NAMESPACE_ENV, "kubeflow")
    seen = {}

    def evaluate(self, input_dict, output_dict, exec_properties):
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)
        seen["baseline"] = baseline[0].uri if baseline else None

    monkeypatch.setattr(tfx_evaluator.Executor, "Do", evaluate)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    _labels(examples.uri, example_labels)
    blessing = standard_artifacts.ModelBlessing()
    executor.Executor().Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.BLESSING_KEY: [blessing]},
        {},
    )
    return seen["baseline"], blessing, model_uri


def test_the_baseline_is_compared_only_when_it_knows_the_same_classes(tmp_path, monkeypatch):
    from imgtfx.components.image_evaluator.properties import BASELINE_NOTE

    baseline, blessing, model_uri = _run_evaluator(tmp_path / "same", monkeypatch, ["cat", "dog"])
    assert baseline == model_uri
    assert not blessing.has_custom_property(BASELINE_NOTE)

    baseline, blessing, _ = _run_evaluator(tmp_path / "new", monkeypatch, ["cat", "bird"])
    assert baseline is None
    assert blessing.get_string_custom_property(BASELINE_NOTE) == (
        "baseline skipped: vocabulary changed (2 classes in the baseline, 2 now: "
        "1 added, 1 removed)"
    )

    baseline, blessing, _ = _run_evaluator(tmp_path / "order", monkeypatch, ["dog", "cat"])
    assert baseline is None  # label 0 would mean 'dog' to the baseline and 'cat' here
    assert "the same classes under other indices" in blessing.get_string_custom_property(
        BASELINE_NOTE
    )

    baseline, blessing, _ = _run_evaluator(tmp_path / "unknown", monkeypatch, None)
    assert baseline is None
    note = blessing.get_string_custom_property(BASELINE_NOTE)
    assert note.startswith("baseline skipped: vocabulary unknown: the baseline model's labels.txt")


def test_a_baseline_in_storage_the_image_cannot_read_is_skipped_and_said(tmp_path):
    path, why = executor.local_baseline("hdfs://cluster/models/1", str(tmp_path))
    assert path is None and "in storage this image cannot read" in why
    local = str(tmp_path / "model")
    os.makedirs(local)
    assert executor.local_baseline(local, str(tmp_path)) == (local, None)
