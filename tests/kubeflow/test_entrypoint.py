"""The project entrypoint's repairs, checked with TFX 1.16's own ExecutorInput parser."""

from __future__ import annotations

import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils

from imgtfx.kubeflow import entrypoint

EXAMPLES_SCHEMA = "title: tfx.Examples\ntype: object\n"
INPUTS_SPEC = {"artifacts": {"examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}}}}


def _executor_input(root="minio://mlpipeline/v2/artifacts/p/run/task/uuid"):
    """What the KFP 2.5+ driver sends a StatisticsGen task (driver/resolve.go, driver.go)."""
    return {
        "inputs": {
            "artifacts": {
                "examples": {
                    "artifacts": [
                        {
                            "name": "42",
                            "uri": "minio://mlpipeline/v2/artifacts/p/run/gen/u1/examples",
                            "type": {"instanceSchema": ""},
                            "metadata": {"display_name": "examples", "examples": 118.0},
                        }
                    ]
                }
            }
        },
        "outputs": {
            "artifacts": {
                "statistics": {
                    "artifacts": [
                        {
                            "uri": f"{root}/statistics",
                            "type": {"instanceSchema": "title: tfx.ExampleStatistics\n"},
                        }
                    ]
                },
                "executor-logs": {
                    "artifacts": [
                        {"uri": f"{root}/executor-logs", "type": {"schemaTitle": "system.Artifact"}}
                    ]
                },
            },
            "outputFile": "/tmp/kfp_outputs/output_metadata.json",
        },
    }


def _parse(executor_input: dict):
    message = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(json.dumps(executor_input), message, ignore_unknown_fields=True)
    return message


def test_tfx_cannot_parse_what_the_driver_sends():
    message = _parse(_executor_input())
    with pytest.raises(AttributeError, match="NoneType"):
        tfx_utils.parse_raw_artifact_dict(message.inputs.artifacts)
    with pytest.raises(ImportError, match="system.Artifact"):
        tfx_utils.parse_raw_artifact_dict(message.outputs.artifacts)


def test_repaired_input_parses_with_tfx_on_the_launchers_local_copies(tmp_path):
    mount = str(tmp_path)
    original = _executor_input()
    original["outputs"]["outputFile"] = str(tmp_path / "out" / "output_metadata.json")
    repaired = entrypoint.repair_input(original, INPUTS_SPEC, mount)
    message = _parse(repaired)
    inputs = tfx_utils.parse_raw_artifact_dict(message.inputs.artifacts)
    outputs = tfx_utils.parse_raw_artifact_dict(message.outputs.artifacts)
    (examples,) = inputs["examples"]
    assert type(examples).__name__ == "Examples"
    assert examples.uri == os.path.join(
        mount, "minio/mlpipeline/v2/artifacts/p/run/gen/u1/examples"
    )
    assert set(outputs) == {"statistics"}  # executor-logs is the launcher's to write
    assert os.path.isdir(outputs["statistics"][0].uri)  # written locally, uploaded by the launcher
    assert os.path.isdir(tmp_path / "out")  # outputFile's folder (a task without outputs)
    remote = entrypoint.remote_uri(outputs["statistics"][0].uri, mount)
    assert remote == original["outputs"]["artifacts"]["statistics"]["artifacts"][0]["uri"]
    assert original["inputs"]["artifacts"]["examples"]["artifacts"][0]["type"] == {
        "instanceSchema": ""
    }  # the caller's copy is untouched


def test_an_input_with_no_type_anywhere_is_a_clear_error():
    with pytest.raises(ValueError, match="input artifact 'examples' has no type"):
        entrypoint.repair_input(_executor_input(), {"artifacts": {}}, "/nonexistent")


def test_output_names_remote_uris_and_carries_no_nulls():
    output = {
        "artifacts": {
            "statistics": {
                "artifacts": [
                    {
                        "uri": "/m/minio/b/stats",
                        # the blessing's model, as the Evaluator saw it in the pod
                        "metadata": {"a": None, "b": 1.0, "current_model": "/m/minio/b/model"},
                    }
                ]
            },
            "executor-logs": {"artifacts": [{"uri": "/m/minio/b/logs"}]},
        }
    }
    repaired = entrypoint.repair_output(output, mount="/m")
    assert repaired == {
        "artifacts": {
            "statistics": {
                "artifacts": [
                    {
                        "uri": "minio://b/stats",
                        "metadata": {"b": 1.0, "current_model": "minio://b/model"},
                    }
                ]
            }
        }
    }
    json_format.Parse(json.dumps(repaired), pipeline_spec_pb2.ExecutorOutput())  # strict, as Go


def test_a_marker_object_downloaded_as_a_file_becomes_a_folder_again(tmp_path):
    local = tmp_path / "minio" / "mlpipeline" / "v2" / "artifacts" / "p" / "run" / "gen" / "u1"
    local.mkdir(parents=True)
    (local / "examples").write_bytes(b"")  # kubeflow/pipelines#13476: "examples/" as a file
    entrypoint.repair_input(_executor_input(), INPUTS_SPEC, str(tmp_path))
    assert (local / "examples").is_dir()


def test_local_paths_are_the_launchers():
    assert entrypoint.local_path("gs://b/k/x") == "/gcs/b/k/x"
    assert entrypoint.local_path("minio://mlpipeline/v2/a") == "/minio/mlpipeline/v2/a"
    assert entrypoint.local_path("s3://b/k") == "/s3/b/k"
    assert entrypoint.local_path("/abs/path") is None


def test_the_trainer_reads_the_weights_file_the_launcher_copied():
    weights = "gs://bucket/weights/mobilenet_v3_small_notop.h5"
    config = json.dumps({"backbone": "mobilenet_v3_small", "weights": weights})
    executor_input = {
        "inputs": {
            "parameterValues": {"custom_config": config},
            "artifacts": {
                entrypoint.WEIGHTS_INPUT: {
                    "artifacts": [{"name": "9", "uri": weights, "type": {"instanceSchema": ""}}]
                }
            },
        },
        "outputs": {"artifacts": {}},
    }
    assert entrypoint.use_weights(executor_input, "/pod")
    parameters = executor_input["inputs"]["parameterValues"]
    local = "/pod/gcs/bucket/weights/mobilenet_v3_small_notop.h5"
    assert json.loads(parameters["custom_config"])["weights"] == local
    assert executor_input["inputs"]["artifacts"] == {}
    assert not entrypoint.use_weights(_executor_input())
