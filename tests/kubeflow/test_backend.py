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

from imgtfx.components.baseline_evaluator.executor import connect, latest_blessed_model
from imgtfx.components.examples.conversion_report import ConversionReport
from imgtfx.kubeflow import entrypoint, runner
from imgtfx.pipeline.run_config import IMAGES_PARAMETER
from imgtfx.sample_data import write_digits_tree
from imgtfx.trainer import model
from imgtfx.trainer.options import INDEX_FILE
from tests.helpers import doc_commands
from tests.helpers.kfp_packages import IMAGE, compile_package
from tests.helpers.seaweedfs import unique
from tests.kubeflow import kfp_emulator

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
            "2.17.0",
            "s3-root",
            "root-store",
            False,
            marks=pytest.mark.contracts,
            id="2.17.0-s3-root",
        ),
    ],
)
def test_the_package_runs_on_each_install_as_people_install_kubeflow(
    tmp_path, make_cluster, own_store, monkeypatch, kfp_version, install, data, backbone
):
    """The commands docs/guides/kubeflow.md gives for that install, run as a user copies them
    (tests/helpers/doc_commands.py), then every task's own command in its pod, as the image's user,
    on local copies of its inputs, outputs uploaded with the namespace's key and recorded in ML
    Metadata as the cluster records them, through to a pushed model; then the Evaluator again,
    which finds that model through the cluster's metadata service and copies it out of the
    store the launcher recorded, and compares against it."""
    from imgtfx import cli

    digits = write_digits_tree(str(tmp_path / "digits"), limit=240)
    cluster = make_cluster(kfp_version, multi_user=install == "profile")
    namespace = cluster.add_profile() if install == "profile" else kfp_emulator.KUBEFLOW
    secrets = cluster.secrets(namespace)
    spec_file = str(tmp_path / "pipeline.yaml")
    replace = {'"$IMAGE"': IMAGE, "image-classification.": spec_file[: -len("yaml")]}
    heading = {
        "profile": "Multi-user Kubeflow: a profile namespace",
        "standalone": "Standalone Kubeflow Pipelines",
        "s3-root": "A root in your own S3 bucket",
    }[install]
    if install == "profile":
        replace["PROFILE"] = namespace
    elif install == "standalone":
        bucket = unique("datasets")
        replace.update(
            {"minio://datasets/": f"minio://{bucket}/", "s3://datasets": f"s3://{bucket}"}
        )
    else:  # the root in an S3-compatible store of the user's own, data in it too
        bucket = unique("pipelines")
        replace["s3://pipelines/"] = f"s3://{bucket}/"
        keys = own_store.user_key(unique("pipelines"), bucket)
        secrets["pipeline-root-store"] = {"accesskey": keys[0], "secretkey": keys[1]}
        cluster.add_store("minio.storage.svc", own_store)
    install_commands = doc_commands.commands(heading, replace=replace)
    compile_argv = next(
        c
        for c in install_commands
        if c[0] == "compile" and (install != "s3-root" or "pipeline-root-store" in " ".join(c))
    )
    root = compile_argv[compile_argv.index("--pipeline-root") + 1] if install == "s3-root" else None
    submit_argv = next(
        c
        for c in install_commands
        if c[0] == "submit" and (root is None or c[-1] == root)  # its --pipeline-root, last
    )
    if data == "own":  # the tree in a store of the user's own: section 3's S3-compatible command
        bucket = unique("datasets")
        keys = own_store.user_key(unique("reader"), bucket)
        secrets["datasets-store"] = {"AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1]}
        cluster.add_store("minio.data.svc", own_store)
        compile_argv = next(
            c
            for c in doc_commands.commands(
                "3. Data in your own bucket",
                replace={**replace, "s3://datasets/": f"s3://{bucket}/"},
            )
            if "datasets-store" in " ".join(c)
        )
        # photos of no landmark beside the tree: the Trainer's pod copies them in itself
        non_landmarks = f"s3://{bucket}/non-landmarks"
        for i in range(3):
            own_store.put(f"{non_landmarks}/실내/{i}.png", _flat_png(40 + 60 * i))
        own_store.put(f"{non_landmarks}/notes.txt", b"not a photo")
        compile_argv += ["--non-landmarks", non_landmarks]
    tree = compile_argv[compile_argv.index("--images") + 1]
    assert compile_argv[compile_argv.index("--labels") + 1] == tree + ".csv"
    store_of_tree = cluster.store if tree.startswith("minio://") else own_store
    if data in ("profile", "kfp"):  # the README's own upload, with the namespace's key
        uploads = doc_commands.commands(heading, program="aws", replace=replace)
        kept = secrets["mlpipeline-minio-artifact"]
        forwarded = "seaweedfs.kubeflow:8333"  # kubectl port-forward svc/seaweedfs 8333
        if kfp_emulator.cluster.version(kfp_version) < (2, 15, 0):  # "before: svc/minio-service"
            forwarded = "minio-service.kubeflow:9000"
        local = {"images/": digits["images"], "train.csv": digits["labels_csv"]}
        for argv in uploads:
            doc_commands.aws_s3(
                argv,
                cluster,
                (kept["accesskey"], kept["secretkey"]),
                local,
                {"localhost:8333": forwarded},
            )
    else:  # kubectl create secret, then the user's own tools
        store_of_tree.put_tree(digits["images"], tree)
        with open(digits["labels_csv"], "rb") as f:
            store_of_tree.put(tree + ".csv", f.read())
    store_of_tree.put(tree + "-more/0/x.jpg", b"not read")  # a sibling whose name extends it
    compile_argv += ["--train-steps", "10", "--image-size", "16", "--batch-size", "8"]
    compile_argv += ["--min-accuracy", "0"]
    weights = None
    if backbone:  # a backbone whose weights file is an imported artifact, in shared/
        from imgtfx.trainer import backbones

        weights = f"minio://mlpipeline/shared/{unique('weights')}/mobilenet_v3_small_notop.h5"
        network = backbones.build("mobilenet_v3_small", 32)
        # The stem off Keras' initial values, the rest as built: every weight shifted made a
        # network whose answers overflowed to NaN (the served model says so, not_finite).
        stem = network.get_layer("Conv")
        stem.set_weights([w + 0.125 for w in stem.get_weights()])
        network.save_weights(str(tmp_path / "weights.h5"))
        with open(tmp_path / "weights.h5", "rb") as f:
            cluster.store.put(weights, f.read())
        compile_argv += ["--backbone", "mobilenet_v3_small", "--weights", weights]
        compile_argv[compile_argv.index("--image-size") + 1] = "32"
    assert cli.main(compile_argv) == 0
    if install == "s3-root":  # kubectl -n NAMESPACE apply -f pipeline.kfp-launcher.yaml
        applied = doc_commands.commands(heading, program="kubectl", replace=replace)
        config_file = runner.launcher_config_file(spec_file)
        assert ["-n", "NAMESPACE", "apply", "-f", config_file] in applied
        with open(config_file, encoding="utf-8") as f:
            configmap = yaml.safe_load(f)
        cluster.namespace(namespace).configmaps.setdefault("kfp-launcher", {}).update(
            configmap["data"]
        )
    sent = doc_commands.submitted(submit_argv, monkeypatch)["runtime_config"]
    run_root = sent.get("pipeline_root") or None  # none: the namespace's own
    os.makedirs(tmp_path / "metadata")  # the cluster's metadata service, over a SQLite file
    store = str(tmp_path / "metadata" / "metadata.sqlite")
    cluster.serve_metadata(store)
    run = kfp_emulator.LocalSpecRunner(
        kfp_emulator.load_spec(spec_file),
        root=run_root,
        parameters=sent.get("parameters"),
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
    assert (run_root is None) is (install != "s3-root")  # the README's submit names no root
    assert examples["uri"].startswith(expected_root + "image-classification/")
    assert examples["metadata"]["examples"] == 240  # every digit read from the pod's copy
    in_tree = sum(len(names) for _, _, names in os.walk(digits["images"]))
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
    if data == "own":  # the non-landmarks reached the Trainer's pod, the text file refused
        with open(os.path.join(served_copy, INDEX_FILE), encoding="utf-8") as f:
            built = json.load(f)["non_landmarks"]
        assert built["photos"] == 3
        assert [r["reason"].split(":")[0] for r in built["rejects"]] == ["not_an_image"]
    jpg = next(
        os.path.join(folder, name)
        for folder, _, names in os.walk(digits["images"])
        for name in sorted(names)
        if name.endswith(".jpg") and name not in ("empty.jpg", "truncated.jpg")
    )
    out = served.signatures[model.IMAGES_SIGNATURE](images=tf.constant([open(jpg, "rb").read()]))
    assert out[model.LABEL_NAME].numpy()[0, 0].decode() in {str(d) for d in range(10)}
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
    """The package as docs/guides/kubeflow.md once told users to compile and submit it (root
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
    report = ConversionReport.from_dict(
        json.loads(cluster.store.read(examples["uri"] + "/report.json"))
    )
    assert examples["metadata"]["examples"] == report.examples > 0
    assert examples["id"] and examples["metadata"]["display_name"] == "examples"
    statistics = run.outputs["StatisticsGen"]["statistics"][0]["uri"]
    assert any(k.startswith("Split-train/") for k in cluster.store.keys(statistics))  # uploaded
    # 2.4+: every output under its task's own uuid folder.
    assert statistics.split("/")[-3] == "StatisticsGen"
    if kfp_version == "2.5.0":
        logs = run.outputs["StatisticsGen"]["executor-logs"][0]
        assert logs["type"] == {"schemaTitle": "system.Artifact"}
        assert cluster.store.read(logs["uri"])  # the task's output, kept


def _flat_png(level: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (level, level, level)).save(buffer, "PNG")
    return buffer.getvalue()
