"""Whole compiled packages run under the emulated KFP backend (tests/kubeflow/kfp_emulator),
release by release: the open-source launcher's contract, and TFX's bare entrypoint failing
where a cluster fails it."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import tensorflow as tf

from components.baseline_evaluator.executor import connect, latest_blessed_model
from imgtfx.sample_data import write_digits_tree
from kubeflow import entrypoint, runner
from kubeflow.target import OBJECT_STORE_SECRET
from pipeline.run_config import IMAGES_PARAMETER
from tests.conftest import write
from tests.kubeflow import kfp_emulator
from tests.kubeflow.packages import IMAGE, compile_package
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server
from trainer import model
from trainer.options import TrainerOptions


@pytest.mark.slow
@pytest.mark.parametrize(
    "kfp_version, backbone, own_bucket",
    [
        # Each release's whole run takes 3 to 4 minutes here: `make test` runs 2.15's with the
        # data in a bucket of its own, and `make test-contracts` the others (the data steps
        # under them run in make test, below), with the data in KFP's MinIO, and 2.15's again
        # with a backbone from a weights file (7 minutes; the importer's spec and the
        # entrypoint's use of it are checked in make test).
        pytest.param("2.4.1", False, False, marks=pytest.mark.contracts),
        pytest.param("2.5.0", False, False, marks=pytest.mark.contracts),
        ("2.15.0", False, True),
        pytest.param("2.15.0", True, False, marks=pytest.mark.contracts, id="2.15.0-backbone"),
        pytest.param("2.16.1", False, False, marks=pytest.mark.contracts),
        pytest.param("2.17.0", False, False, marks=pytest.mark.contracts),
    ],
)
def test_yaml_package_runs_as_the_open_source_launcher_runs_it(
    tmp_path, kfp_version, backbone, own_bucket
):
    """A KFP release's contract with its default minio:// root: every task's own command on
    local copies of its inputs, outputs uploaded after, recorded in ML Metadata as the cluster
    records them, through to a pushed model; then the Evaluator again, which copies its
    baseline out of MinIO (S3's API, tests/s3_server.py, over the emulated bucket) with the
    credentials the package maps from KFP's secret, and compares against it. The image tree
    and its labels CSV are in KFP's MinIO, or (`own_bucket`) in an S3-compatible store of
    their own with its own keys, region and secret, which ImageExampleGen copies them out of."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=240)
    buckets = tmp_path / "cluster" / "buckets"
    minio = S3Server(str(buckets / "minio"))  # the launcher's buckets, KFP's MinIO
    secrets = {OBJECT_STORE_SECRET: {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}
    tree, data_secret = "minio://datasets/digits", None  # KFP's MinIO, a bucket for data
    if own_bucket:
        data_store = S3Server(
            str(buckets / "s3"), region="ap-northeast-2", access_key="reader", secret_key="k"
        )
        tree = "s3://landmarks/train"
        secrets["landmarks-s3"] = {"accesskey": "reader", "secretkey": "k"}
        data_secret = f"landmarks-s3,endpoint={data_store.url},region=ap-northeast-2"
    spec_file = str(tmp_path / "pipeline.yaml")
    trainer_options = TrainerOptions(image_size=16, batch_size=8, filters=(8, 16))
    weights = None
    if backbone:  # a backbone whose weights file is an imported artifact
        weights = "minio://mlpipeline/weights/mobilenet_v3_small_notop.h5"
        trainer_options = TrainerOptions(
            image_size=32, batch_size=8, backbone="mobilenet_v3_small", weights=weights
        )
    compile_package(
        spec_file,
        pipeline_root=kfp_emulator.DEFAULT_PIPELINE_ROOT,
        images=tree,
        image=IMAGE,
        labels_csv=tree + "/labels.csv",
        train_steps=10,
        trainer_options=trainer_options,
        min_accuracy=0.0,
        data_secret=data_secret,
    )
    os.makedirs(tmp_path / "metadata")  # the cluster's metadata service, here a SQLite file
    store = str(tmp_path / "metadata" / "metadata.sqlite")
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        root=None,  # no pipeline_root on the run, no ConfigMap: the backend's default
        env={
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "IMGTFX_METADATA_SERVICE": f"sqlite:{store}",  # the cluster's service, here
            # The cluster's MinIO, here: where its service's env would point a pod.
            "MINIO_SERVICE_SERVICE_HOST": "127.0.0.1",
            "MINIO_SERVICE_SERVICE_PORT": minio.url.rsplit(":", 1)[1],
        },
        metadata=store,
        workdir=str(tmp_path / "cluster"),
        secrets=secrets,
        kfp_version=kfp_version,
    )
    # The tree uploaded to its bucket, the labels CSV inside it, and a sibling folder whose
    # name extends the tree's, which is not the tree's.
    shutil.copytree(digits["images"], run.stored(tree))
    shutil.copyfile(digits["labels_csv"], run.stored(tree + "/labels.csv"))
    write(run.stored(tree + "-more/0/x.jpg"), b"not read")
    if weights:
        from trainer import backbones

        network = backbones.build("mobilenet_v3_small", 32)
        network.set_weights([w + 0.125 for w in network.get_weights()])
        os.makedirs(os.path.dirname(run.stored(weights)))
        network.save_weights(run.stored(weights))
    data_requests = data_store.requests if own_bucket else None
    outputs = run.run()
    if own_bucket:
        data_store.close()
        assert data_store.requests > data_requests  # the tree and CSV came from its own store

    ran = [label for label, _ in run.log]
    assert "ImageExampleGen:driver" not in ran  # the open-source backend runs no hook
    assert {"ImageExampleGen", "Trainer", "Evaluator", "Pusher"} <= set(ran)
    examples = outputs["ImageExampleGen"]["examples"][0]
    assert examples["uri"].startswith("minio://mlpipeline/v2/artifacts/image-classification/")
    assert examples["metadata"]["examples"] == 240  # every digit read from the pod's copy
    in_tree = sum(len(names) for _, _, names in os.walk(run.stored(tree)))  # images, CSV
    assert examples["metadata"]["files_seen"] == in_tree  # the sibling folder's not among them
    assert os.path.isdir(os.path.join(run.stored(examples["uri"]), "Split-train"))  # uploaded
    blessing = outputs["Evaluator"]["blessing"][0]
    assert blessing["metadata"]["blessed"] == 1
    pushed = outputs["Pusher"]["pushed_model"][0]
    assert pushed["metadata"]["pushed"] == 1
    assert pushed["metadata"]["pushed_destination"] == pushed["uri"]  # the served copy
    served = tf.saved_model.load(run.stored(pushed["uri"]))
    jpg = next(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in sorted(names)
        if name.endswith(".jpg") and name not in ("empty.jpg", "truncated.jpg")
    )
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant([open(jpg, "rb").read()]))
    assert out[model.LABEL_NAME].numpy()[0].decode() in {str(d) for d in range(10)}
    if weights:  # the backbone trained from the file: its frozen weights are the file's
        assert outputs["BackboneWeights"]["artifact"][0]["uri"] == weights
        kept = {v.name: v.numpy() for v in served.weights}
        first = next(k for k in kept if k.startswith("Conv/kernel"))
        saved = network.get_layer("Conv").get_weights()[0]
        assert (kept[first] == saved).all()

    model_uri = outputs["Trainer"]["model"][0]["uri"]
    assert model_uri.startswith("minio://")  # in ML Metadata as the remote URI, not the pod's
    assert latest_blessed_model(connect(f"sqlite:{store}"), "image-classification") == model_uri
    tasks = run.pipeline["root"]["dag"]["tasks"]
    requests = minio.requests
    run.run_task("Evaluator", tasks["Evaluator"])  # the next run's evaluation
    minio.close()
    if "executor-logs" in outputs["Evaluator"]:  # from 2.5
        logs = open(run.stored(outputs["Evaluator"]["executor-logs"][0]["uri"])).read()
        assert "baseline skipped" not in logs
    assert minio.requests > requests  # the model copied out of the bucket
    blessing = outputs["Evaluator"]["blessing"][0]["metadata"]
    assert blessing["blessed"] == 1 and blessing["baseline_model"] == model_uri


def _use_entrypoint(pipeline: dict, task: str, module: str) -> None:
    name = pipeline["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    executor = pipeline["deploymentSpec"]["executors"][
        pipeline["components"][name]["executorLabel"]
    ]
    executor["container"]["command"][-1] = module


@pytest.mark.slow
@pytest.mark.parametrize(
    "kfp_version, bare_task, crash",
    [
        # tensorflow/tfx#7768: inputs rebuilt from ML Metadata with an empty schema.
        ("2.4.1", "StatisticsGen", "AttributeError: 'NoneType' object has no attribute 'get'"),
        # The driver's executor-logs output, typed system.Artifact, from KFP 2.5.0.
        ("2.5.0", "ImageExampleGen", "ImportError: Could not import system.Artifact"),
    ],
)
def test_each_backend_contract_crashes_tfxs_entrypoint_and_runs_ours(
    tmp_path, kfp_version, bare_task, crash
):
    """The emulation fails what a cluster of that release fails (TFX's bare entrypoint), and
    the project's entrypoint runs the same task under it."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=120)
    spec_file = str(tmp_path / "pipeline.yaml")
    compile_package(
        spec_file,
        pipeline_root="gs://bucket/root",
        images="gs://not/used",
        image=IMAGE,
        labels_csv=digits["labels_csv"],
        min_accuracy=0.0,
    )
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        root="s3://artifacts/v2",
        workdir=str(tmp_path / "cluster"),
        parameters={IMAGES_PARAMETER: digits["images"]},
        volumes=(str(tmp_path / "digits"),),  # the tree on a volume every pod mounts
        env={"TF_CPP_MIN_LOG_LEVEL": "3"},
        kfp_version=kfp_version,
    )
    tasks = run.pipeline["root"]["dag"]["tasks"]
    for name in ("ImageExampleGen", "StatisticsGen"):
        if name == bare_task:
            _use_entrypoint(run.pipeline, name, entrypoint.TFX_ENTRYPOINT)
            with pytest.raises(kfp_emulator.TaskFailed) as failed:
                run.run_task(name, tasks[name])
            assert f"task {name} exited" in str(failed.value) and crash in str(failed.value)
            _use_entrypoint(run.pipeline, name, runner.ENTRYPOINT)
        run.run_task(name, tasks[name])

    examples = run.outputs["ImageExampleGen"]["examples"][0]
    report = os.path.join(run.stored(examples["uri"]), "report.json")
    report = json.load(open(report, encoding="utf-8"))
    assert examples["metadata"]["examples"] == report["examples"] > 0
    assert examples["id"] and examples["metadata"]["display_name"] == "examples"
    statistics = run.outputs["StatisticsGen"]["statistics"][0]["uri"]
    assert os.listdir(os.path.join(run.stored(statistics), "Split-train"))  # uploaded
    # 2.4+: every output under its task's own uuid folder.
    assert statistics.split("/")[-3] == "StatisticsGen"
    if kfp_version >= "2.5.0":
        logs = run.outputs["StatisticsGen"]["executor-logs"][0]
        assert logs["type"] == {"schemaTitle": "system.Artifact"}
        assert os.path.getsize(run.stored(logs["uri"])) > 0  # the task's output, kept
