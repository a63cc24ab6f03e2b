"""imgtfx submit: the run created through kfp's own client, with its pipeline root."""

from __future__ import annotations

import json

from imgtfx.pipeline.run_config import IMAGES_PARAMETER, TRAIN_ARGS_PARAMETER
from tests.helpers.kfp_packages import compile_to, kfp_requests


def test_submit_starts_a_run_with_its_pipeline_root_through_kfps_own_client(
    tmp_path, monkeypatch, capsys
):
    """The HTTP requests kfp.Client itself builds (only the network is replaced): the run
    carries pipeline_root in its runtime config, where the backend reads it."""
    compile_to(tmp_path, "pipeline.yaml", pipeline_root="minio://mlpipeline/v2/artifacts")
    package = str(tmp_path / "spec" / "pipeline.yaml")
    code, sent = kfp_requests(
        [
            "submit", package, "--host", "http://ml-pipeline-ui.kubeflow",
            "--pipeline-root", "s3://artifacts/v2", "--images", "s3://data/landmarks",
            "--train-steps", "300", "--run-name", "contest", "--namespace", "team-a",
        ],
        monkeypatch,
    )  # fmt: skip
    assert code == 0
    assert "submitted: run run-1 with pipeline root s3://artifacts/v2" in capsys.readouterr().out
    method, url, body = sent[-1]
    assert (method, url) == ("POST", "http://ml-pipeline-ui.kubeflow/apis/v2beta1/runs")
    assert body["runtime_config"]["pipeline_root"] == "s3://artifacts/v2"
    assert body["runtime_config"]["parameters"] == {
        IMAGES_PARAMETER: "s3://data/landmarks",
        TRAIN_ARGS_PARAMETER: json.dumps({"num_steps": 300}),
    }
    assert body["display_name"] == "contest" and body["experiment_id"] == "exp-1"
    # With a platform spec (the Evaluator's secret), kfp sends both, each a sub-struct; the API
    # server joins them into the two-document YAML (server/api_util.go
    # pipelineSpecStructToYamlString, 2.2.0 :119-148, the same at 2.15.0).
    sent_spec = body["pipeline_spec"]
    assert sent_spec["pipeline_spec"]["pipelineInfo"]["name"] == "image-classification"
    kubernetes = sent_spec["platform_spec"]["platforms"]["kubernetes"]
    assert "secretAsEnv" in kubernetes["deploymentSpec"]["executors"]["Evaluator_executor"]
    experiment = next(b for m, u, b in sent if m == "POST" and u.endswith("/experiments"))
    assert experiment["namespace"] == "team-a"

    code, _ = kfp_requests(["submit", package, "--pipeline-root", "/mnt/root"], monkeypatch)
    assert code == 2 and "/mnt/root cannot be used" in capsys.readouterr().err

    # No --pipeline-root: the one the package was compiled with...
    argv = ["submit", package, "--host", "http://kfp", "--namespace", "team-a"]
    code, sent = kfp_requests(argv, monkeypatch)
    assert code == 0 and "root minio://mlpipeline/v2/artifacts" in capsys.readouterr().out
    assert sent[-1][2]["runtime_config"]["pipeline_root"] == "minio://mlpipeline/v2/artifacts"
    # ...and for a package compiled with none, the namespace's (a profile's own).
    compile_to(tmp_path, "any.yaml", pipeline_root=None)
    argv = ["submit", str(tmp_path / "spec" / "any.yaml"), "--host", "http://kfp"]
    code, sent = kfp_requests([*argv, "--namespace", "team-a"], monkeypatch)
    assert code == 0 and "the namespace's default" in capsys.readouterr().out
    method, url, body = sent[-1]
    assert url.endswith("/runs") and not body["runtime_config"].get("pipeline_root")


def test_a_refused_or_unreachable_api_is_one_line(tmp_path, monkeypatch, capsys):
    """kfp's ApiException (403 from a multi-user install's authorization) and a host that does
    not answer: one line saying which, exit 1, no traceback."""
    import urllib3

    from imgtfx import cli

    compile_to(tmp_path, "any.yaml", pipeline_root=None)
    package = str(tmp_path / "spec" / "any.yaml")

    def refuse(self, method, url, fields=None, headers=None, **kwargs):
        return urllib3.HTTPResponse(body=b"RBAC: access denied", status=403, reason="Forbidden")

    monkeypatch.setattr(urllib3.PoolManager, "request", refuse)
    assert cli.main(["submit", package, "--host", "http://kfp", "--namespace", "team-a"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("imgtfx submit: failed: KFP at http://kfp: HTTP 403 Forbidden")
    assert "RBAC: access denied" in err and err.count("\n") == 1
