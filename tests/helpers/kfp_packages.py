"""Compiling packages for the Kubeflow tests: a RunConfig and a KubeflowTarget from keywords."""

from __future__ import annotations

import dataclasses

from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.kubeflow import runner
from imgtfx.kubeflow.target import KubeflowTarget
from imgtfx.pipeline.run_config import RunConfig
from tests.kubeflow import kfp_emulator

IMAGE = "registry.example.com/imgtfx:1.16.0-test"

RUN_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def compile_package(output, images, labels_csv=None, **kwargs):
    """runner.compile of the RunConfig and KubeflowTarget fields in `kwargs`."""
    config = RunConfig(
        images,
        ImageOptions(labels_csv=labels_csv),
        **{k: v for k, v in kwargs.items() if k in RUN_FIELDS},
    )
    target = KubeflowTarget(str(output), **{k: v for k, v in kwargs.items() if k not in RUN_FIELDS})
    return runner.compile(config, target)


def compile_to(tmp_path, name="pipeline.json", **kwargs):
    output = str(tmp_path / "spec" / name)
    defaults = dict(
        pipeline_root="gs://bucket/root",
        images="gs://bucket/images",
        image=IMAGE,
        labels_csv="gs://bucket/train.csv",
        train_steps=1234,
    )
    defaults.update(kwargs)
    compile_package(output, **defaults)
    return kfp_emulator.load_spec(output)


def kfp_requests(argv: list[str], monkeypatch) -> tuple[int, list[tuple[str, str, dict | None]]]:
    """`imgtfx argv`'s exit code and the HTTP requests kfp.Client itself built for it (only the
    network is replaced: (method, URL, JSON body)), a run and an experiment created."""
    import json

    import urllib3

    from imgtfx import cli

    sent = []

    def answer(self, method, url, fields=None, headers=None, **kwargs):
        sent.append((method, url, json.loads(kwargs["body"]) if kwargs.get("body") else None))
        data = {}
        if method == "POST" and url.endswith("/experiments"):
            data = {"experiment_id": "exp-1"}
        elif method == "POST" and url.endswith("/runs"):
            data = {"run_id": "run-1"}
        return urllib3.HTTPResponse(
            body=json.dumps(data).encode(), status=200, headers={"Content-Type": "application/json"}
        )

    with monkeypatch.context() as patch:
        patch.setattr(urllib3.PoolManager, "request", answer)
        code = cli.main(argv)
    return code, sent
