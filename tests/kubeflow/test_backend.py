"""Whole compiled packages run under the emulated KFP installs (tests/kubeflow/kfp_emulator),
as people install Kubeflow today: a profile namespace of multi-user KFP 2.15 (Kubeflow 1.11)
and 2.17, standalone 2.4.1, 2.5.0 and 2.16.1, and a root in the user's own S3-compatible bucket;
KFP's store is SeaweedFS, which enforces each key's policy, and nothing is injected into the
pods. Also the package as it was compiled before, failing in a profile namespace as it would on
a cluster, and TFX's bare entrypoint failing where a cluster fails it."""

from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf
import yaml

from components.baseline_evaluator.executor import connect, latest_blessed_model
from imgtfx.sample_data import write_digits_tree
from kubeflow import entrypoint, runner
from pipeline.run_config import IMAGES_PARAMETER
from tests.conftest import unique
from tests.kubeflow import kfp_emulator
from tests.kubeflow.packages import IMAGE, compile_package
from trainer import model
from trainer.options import TrainerOptions

LOG_LEVEL = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # the only environment the test adds to a pod


def _put_digits(store, uri: str, digits: dict) -> None:
    """The digits tree and its labels CSV uploaded to `uri`, with a sibling folder whose name
    extends the tree's, which is not the tree's."""
    store.put_tree(digits["images"], uri)
    with open(digits["labels_csv"], "rb") as f:
        store.put(uri + "/labels.csv", f.read())
    store.put(uri + "-more/0/x.jpg", b"not read")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kfp_version, install, data, backbone",
    [
        # Each whole run takes 1 to 3 minutes here: `make test` runs Kubeflow 1.11's (a
        # profile namespace of multi-user KFP 2.15), `make test-contracts` the others.
        pytest.param("2.15.0", "profile", "profile", False, id="2.15.0-profile"),
        pytest.param("2.4.1", "standalone", "kfp", False, marks=pytest.mark.contracts, id="2.4.1"),
        pytest.param("2.5.0", "standalone", "kfp", False, marks=pytest.mark.contracts, id="2.5.0"),
        pytest.param(
            "2.15.0",
            "profile",
            "own",
            True,
            marks=pytest.mark.contracts,
            id="2.15.0-profile-own-data-backbone",
        ),
        pytest.param(
            "2.16.1", "standalone", "kfp", False, marks=pytest.mark.contracts, id="2.16.1"
        ),
        pytest.param(
            "2.17.0", "profile", "profile", False, marks=pytest.mark.contracts, id="2.17.0-profile"
        ),
        pytest.param(
            "2.17.0", "s3-root", "own", False, marks=pytest.mark.contracts, id="2.17.0-s3-root"
        ),
    ],
)
def test_the_package_runs_on_each_install_as_people_install_kubeflow(
    tmp_path, make_cluster, own_store, kfp_version, install, data, backbone
):
    """Every task's own command in its pod, as the image's user, on local copies of its inputs,
    outputs uploaded with the namespace's key and recorded in ML Metadata as the cluster
    records them, through to a pushed model; then the Evaluator again, which finds that model
    through the cluster's metadata service and copies it out of the store the launcher
    recorded, and compares against it. Compiled as kubeflow/README.md says for that install:
    no --pipeline-root (the namespace's own applies), KFP's own secret for KFP's store, a
    --data-secret for data in a store of the user's, an --object-store-secret (and the
    kfp-launcher providers entry compile writes) for an s3:// root."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=240)
    cluster = make_cluster(kfp_version, multi_user=install == "profile")
    namespace = cluster.add_profile() if install == "profile" else kfp_emulator.KUBEFLOW
    secrets = cluster.secrets(namespace)
    flags: dict = {}
    run_root = None  # the run names none: the namespace's default root
    if data == "profile":  # the profile's own prefix of KFP's store, its own key reads it
        tree = f"minio://mlpipeline/private/{namespace}/{unique('digits')}"
    elif data == "kfp":  # a bucket of KFP's store, read with KFP's (admin) key
        tree = f"minio://{unique('datasets')}/digits"
    else:  # a store of the user's own, its own keys and region
        bucket = unique("landmarks")
        keys = own_store.user_key(unique("reader"), bucket)
        secrets["landmarks-s3"] = {"accesskey": keys[0], "secretkey": keys[1]}
        endpoint = cluster.add_store("s3.landmarks.example", own_store)
        flags["data_secret"] = (
            f"landmarks-s3,endpoint={endpoint},disableSSL=true,region=ap-northeast-2"
        )
        tree = f"s3://{bucket}/train"
    if install == "s3-root":  # the root in the user's own S3-compatible bucket
        runs = unique("runs")
        keys = own_store.user_key(unique("pipelines"), runs)
        secrets["store-keys"] = {"AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1]}
        endpoint = cluster.add_store("store.example", own_store)
        flags["object_store_secret"] = (
            f"store-keys,endpoint={endpoint},disableSSL=true,region=eu-west-1,"
            "accessKeyKey=AWS_ACCESS_KEY_ID,secretKeyKey=AWS_SECRET_ACCESS_KEY"
        )
        run_root = flags["pipeline_root"] = f"s3://{runs}/pipeline-root"
    _put_digits(cluster.store if tree.startswith("minio://") else own_store, tree, digits)
    trainer_options = TrainerOptions(image_size=16, batch_size=8, filters=(8, 16))
    weights = None
    if backbone:  # a backbone whose weights file is an imported artifact, in shared/
        from trainer import backbones

        weights = f"minio://mlpipeline/shared/{unique('weights')}/mobilenet_v3_small_notop.h5"
        trainer_options = TrainerOptions(
            image_size=32, batch_size=8, backbone="mobilenet_v3_small", weights=weights
        )
        network = backbones.build("mobilenet_v3_small", 32)
        network.set_weights([w + 0.125 for w in network.get_weights()])
        network.save_weights(str(tmp_path / "weights.h5"))
        with open(tmp_path / "weights.h5", "rb") as f:
            cluster.store.put(weights, f.read())
    spec_file = str(tmp_path / "pipeline.yaml")
    compile_package(
        spec_file,
        images=tree,
        image=IMAGE,
        labels_csv=tree + "/labels.csv",
        train_steps=10,
        trainer_options=trainer_options,
        min_accuracy=0.0,
        **flags,
    )
    if install == "s3-root":  # kubectl -n NAMESPACE patch configmap kfp-launcher ...
        with open(runner.launcher_config_file(spec_file), encoding="utf-8") as f:
            patch = yaml.safe_load(f)
        cluster.namespace(namespace).configmaps.setdefault("kfp-launcher", {}).update(patch["data"])
    os.makedirs(tmp_path / "metadata")  # the cluster's metadata service, over a SQLite file
    store = str(tmp_path / "metadata" / "metadata.sqlite")
    cluster.serve_metadata(store)
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        root=run_root,
        cluster=cluster,
        namespace=namespace,
        env=LOG_LEVEL,
        metadata=store,
    )
    outputs = run.run()

    artifacts = own_store if install == "s3-root" else cluster.store
    kept = secrets.get("mlpipeline-minio-artifact", {})
    as_namespace = (kept["accesskey"], kept["secretkey"]) if install == "profile" else None
    ran = [label for label, _ in run.log]
    assert "ImageExampleGen:driver" not in ran  # the open-source backend runs no hook
    assert {"ImageExampleGen", "Trainer", "Evaluator", "Pusher"} <= set(ran)
    examples = outputs["ImageExampleGen"]["examples"][0]
    expected_root = {
        "profile": f"minio://mlpipeline/private-artifacts/{namespace}/v2/artifacts/",
        "standalone": "minio://mlpipeline/v2/artifacts/",
        "s3-root": f"{run_root}/",
    }[install]
    assert examples["uri"].startswith(expected_root + "image-classification/")
    assert examples["metadata"]["examples"] == 240  # every digit read from the pod's copy
    in_tree = sum(len(names) for _, _, names in os.walk(digits["images"])) + 1  # and the CSV
    assert examples["metadata"]["files_seen"] == in_tree  # the sibling folder's not among them
    uploaded = artifacts.keys(examples["uri"], as_namespace)
    assert any(k.startswith("Split-train/") for k in uploaded)
    blessing = outputs["Evaluator"]["blessing"][0]
    assert blessing["metadata"]["blessed"] == 1
    pushed = outputs["Pusher"]["pushed_model"][0]
    assert pushed["metadata"]["pushed"] == 1
    assert pushed["metadata"]["pushed_destination"] == pushed["uri"]  # the served copy
    served_copy = artifacts.download(pushed["uri"], str(tmp_path / "served"), as_namespace)
    served = tf.saved_model.load(served_copy)
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
    assert model_uri.startswith(expected_root)  # in ML Metadata as the remote URI
    assert latest_blessed_model(connect(f"sqlite:{store}"), "image-classification") == model_uri
    tasks = run.pipeline["root"]["dag"]["tasks"]
    run.run_task("Evaluator", tasks["Evaluator"])  # the next run's evaluation
    if "executor-logs" in outputs["Evaluator"]:  # from 2.5
        logs = artifacts.read(outputs["Evaluator"]["executor-logs"][0]["uri"], as_namespace)
        logs = logs.decode()
        assert "baseline skipped" not in logs
    blessing = outputs["Evaluator"]["blessing"][0]["metadata"]
    assert "baseline_note" not in blessing  # the model was copied out of the store
    assert blessing["blessed"] == 1 and blessing["baseline_model"] == model_uri


@pytest.mark.slow
def test_the_package_compiled_for_kfps_shared_root_fails_in_a_profile_namespace(
    tmp_path, make_cluster
):
    """The package as kubeflow/README.md once told users to compile and submit it (root
    minio://mlpipeline/v2/artifacts) in a profile namespace of multi-user KFP 2.15: its first
    task's upload is refused by the store (the profile's key may write only its own prefixes),
    as on a cluster, and the task is published FAILED."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=60)
    cluster = make_cluster("2.15.0", multi_user=True)
    namespace = cluster.add_profile()
    tree = f"minio://mlpipeline/private/{namespace}/digits"
    _put_digits(cluster.store, tree, digits)
    spec_file = str(tmp_path / "pipeline.yaml")
    old_root = "minio://mlpipeline/v2/artifacts"
    compile_package(
        spec_file, images=tree, image=IMAGE, labels_csv=tree + "/labels.csv", pipeline_root=old_root
    )
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        root=old_root,  # imgtfx submit --pipeline-root minio://mlpipeline/v2/artifacts
        cluster=cluster,
        namespace=namespace,
        env=LOG_LEVEL,
    )
    task = run.pipeline["root"]["dag"]["tasks"]["ImageExampleGen"]
    with pytest.raises(kfp_emulator.TaskFailed, match="AccessDenied") as failed:
        run.run_task("ImageExampleGen", task)
    assert 'failed to upload output artifact "examples"' in str(failed.value)
    assert run.states["ImageExampleGen"] == "FAILED"
    assert not cluster.store.keys(f"{old_root}/image-classification/{run.run_id}")


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
    tmp_path, make_cluster, kfp_version, bare_task, crash
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
    cluster = make_cluster(kfp_version)
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        cluster=cluster,
        parameters={IMAGES_PARAMETER: digits["images"]},
        volumes=(str(tmp_path / "digits"),),  # the tree on a volume every pod mounts
        env=LOG_LEVEL,
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
    report = json.loads(cluster.store.read(examples["uri"] + "/report.json"))
    assert examples["metadata"]["examples"] == report["examples"] > 0
    assert examples["id"] and examples["metadata"]["display_name"] == "examples"
    statistics = run.outputs["StatisticsGen"]["statistics"][0]["uri"]
    assert any(k.startswith("Split-train/") for k in cluster.store.keys(statistics))  # uploaded
    # 2.4+: every output under its task's own uuid folder.
    assert statistics.split("/")[-3] == "StatisticsGen"
    if kfp_version == "2.5.0":
        logs = run.outputs["StatisticsGen"]["executor-logs"][0]
        assert logs["type"] == {"schemaTitle": "system.Artifact"}
        assert cluster.store.read(logs["uri"])  # the task's output, kept
