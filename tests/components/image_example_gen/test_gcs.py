"""`imgtfx convert` and `imgtfx run` with the tree, its labels CSV and the output or the run's
root in a GCS bucket (slow).

The bucket is tests/helpers/gcs_server.py's emulator, reached by TensorFlow's own gs:// file system
and by Beam's GCS IO as they reach Google's servers; the command runs as a user runs it, in a
new process. What a real bucket adds and this does not: latency, quotas, eventual IAM changes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from imgtfx.components.examples import layout, reader
from imgtfx.components.examples.conversion_report import read_report
from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.image_example_gen.convert import convert
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.pipeline.run_summary import RunSummary
from imgtfx.sample_data import write_digits_tree
from tests.helpers.gcs_server import BUCKET, GcsServer, kind, object_name
from tests.helpers.images import encode, write

pytestmark = pytest.mark.slow

CLASSES = {"경복궁": 1, "남산타워": 2, "해운대": 3}
PER_CLASS = 8
DIGITS = 100  # the run's tree: real digits (and four broken files) through the emulator
DENIED, GONE = "train/남산타워/denied.jpg", "train/해운대/gone.jpg"  # fail when read


def _tree(root: str) -> None:
    rows = []
    for c, (folder, landmark_id) in enumerate(CLASSES.items()):
        for i in range(PER_CLASS):
            write(f"{root}/train/{folder}/{folder}{i}.jpg", encode(seed=10 * c + i))
            rows.append(f"{folder}{i},{landmark_id}")
    for rel, landmark_id in ((DENIED, 2), (GONE, 3)):
        write(f"{root}/{rel}", encode(seed=99 + landmark_id))
        rows.append(f"{os.path.basename(rel)[:-4]},{landmark_id}")
    write(f"{root}/train/남산타워/broken.jpg", encode(seed=7)[:300])
    rows.append("broken,2")
    write(f"{root}/train/.DS_Store", b"\x00\x00\x00\x01Bud1")
    write(f"{root}/labels.csv", ("id,landmark_id\n" + "\n".join(rows) + "\n").encode())


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    server = GcsServer(str(tmp_path_factory.mktemp("gcs")))
    yield server
    server.close()


def _examples(folder: str) -> dict[str, bytes]:
    rows, names = {}, FeatureNames()
    for split in ("train", "eval"):
        for example in reader.read_examples(layout.split_files(folder, split)):
            rows[example[names.path].numpy().decode()] = example[names.image].numpy()
    return rows


def test_convert_from_and_to_a_bucket_counts_as_the_local_copy(gcs, tmp_path):
    local = str(tmp_path / "images")
    _tree(local)
    gcs.put_tree(local, "images")
    gcs.fail(f"images/{DENIED}", 403)  # the credentials may not read it
    gcs.fail(f"images/{GONE}", 404)  # deleted after it was listed
    images, output = f"gs://{BUCKET}/images", f"gs://{BUCKET}/converted"
    done = subprocess.run(
        [
            sys.executable, "-m", "imgtfx.cli", "convert", "--images", images,
            "--labels", f"{images}/labels.csv", "--output", output,
            "--max-reject-fraction", "0.5",
        ],
        capture_output=True, text=True, timeout=600, env={**os.environ, **gcs.env()},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    # Listing: one delimited request a folder (train and its three landmarks; a page holds
    # 1,000 names), a few for the root and its tops, none per object: every object whose
    # metadata was asked for was read (TensorFlow asks a file's size before reading it).
    requests = gcs.requests()
    lists = [r for r in requests if kind(r) == "list" and "prefix=images" in r["path"]]
    assert len(lists) <= len(CLASSES) + 1 + 6, [r["path"] for r in lists]
    asked, read = (
        {object_name(r) for r in requests if kind(r) == k and object_name(r).startswith("images/")}
        for k in ("metadata", "read")
    )
    failed = {f"images/{DENIED}", f"images/{GONE}"}  # their metadata answered 403 and 404
    assert asked <= read | failed and len(read) == len(CLASSES) * PER_CLASS + 2  # CSV, broken

    mirror = str(tmp_path / "mirror")  # the bucket's output, copied out to read it
    for name in gcs.names("converted/"):
        if name.endswith("/"):  # TensorFlow's folder marker objects
            continue
        write(os.path.join(mirror, name[len("converted/") :]), gcs.get(name))
    remote = read_report(mirror)
    here = convert(local, str(tmp_path / "out"), ImageOptions(labels_csv=f"{local}/labels.csv"))
    assert remote.files_seen == here.files_seen == len(CLASSES) * PER_CLASS + 5
    assert remote.skipped_by_reason == here.skipped_by_reason
    assert remote.skipped_by_reason == {"hidden_or_system": 1, "labels_file": 1}
    assert remote.examples == here.examples - 2 == len(CLASSES) * PER_CLASS
    assert remote.rejected_by_reason == {"truncated_or_corrupt": 1, "unreadable": 2}
    assert remote.reconciled and remote.num_classes == len(CLASSES)
    with open(os.path.join(mirror, "rejects.jsonl"), encoding="utf-8") as f:
        rejects = {r["path"]: r for r in map(json.loads, f)}
    assert rejects[DENIED]["reason"] == rejects[GONE]["reason"] == "unreadable"
    assert rejects[DENIED]["detail"].startswith("PermissionDeniedError")
    assert rejects[GONE]["detail"].startswith("NotFoundError")
    assert not any(n.startswith("converted/_reject_runs") for n in gcs.names("converted/"))

    ours, theirs = _examples(mirror), _examples(str(tmp_path / "out"))
    assert set(ours) == set(theirs) - {DENIED, GONE}
    assert all(ours[path] == theirs[path] for path in ours)  # the very bytes


def test_the_drivers_fingerprint_is_one_listing_with_no_request_per_object(gcs, tmp_path):
    """The whole-tree fingerprint that decides whether `run` reuses its cached examples: from
    one listing of the bucket (sizes and times included), changed by a rewritten object."""
    local = str(tmp_path / "images")
    _tree(local)
    names = gcs.put_tree(local, "fingerprinted")
    code = (  # a fingerprint for each line read, as a driver computes it
        "import sys\n"
        "from tfx.proto import example_gen_pb2\n"
        "from components.image_example_gen.driver import tree_fingerprint\n"
        "split = example_gen_pb2.Input.Split(name='all', pattern='*')\n"
        "config = example_gen_pb2.Input(splits=[split])\n"
        "csv = sys.argv[1] + '/labels.csv'\n"
        "for _ in sys.stdin:\n"
        "    print(tree_fingerprint(sys.argv[1], config, csv), flush=True)\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", code, f"gs://{BUCKET}/fingerprinted"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **gcs.env()},
    )  # fmt: skip

    def fingerprint() -> tuple[str, list[dict]]:
        before = len(gcs.requests())
        driver.stdin.write("\n")
        driver.stdin.flush()
        line = driver.stdout.readline().strip()
        assert line.startswith("files:"), "the fingerprint process failed"
        return line, gcs.requests()[before:]

    try:
        first, requests = fingerprint()
        assert first.startswith(f"files:{len(names)},")
        per_object = [object_name(r) for r in requests if kind(r) != "list"]
        assert per_object == ["fingerprinted/labels.csv"]  # its own stat; nothing per image
        assert len(requests) <= 5, [r["path"] for r in requests]
        assert fingerprint()[0] == first
        gcs.put("fingerprinted/train/경복궁/경복궁0.jpg", encode(seed=1234))  # rewritten
        assert fingerprint()[0] != first
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)


def test_a_run_in_a_bucket_killed_in_the_trainer_completes_on_rerun(gcs, tmp_path):
    """`imgtfx run` with images, labels CSV and root in the bucket (ML Metadata's SQLite file
    and the logs in the local cache): killed while training, the same command reuses the
    finished steps, pushes the model into the bucket and writes summary and report there. The
    terminal shows the user's lines only."""
    digits = write_digits_tree(str(tmp_path / "digits"), limit=DIGITS, with_defects=True)
    gcs.put_tree(digits["images"], "killed/images")
    with open(digits["labels_csv"], "rb") as f:
        gcs.put("killed/train.csv", f.read())
    data, root = f"gs://{BUCKET}/killed", f"gs://{BUCKET}/killed/run"
    command = [
        sys.executable, "-m", "imgtfx.cli", "run", "--images", f"{data}/images",
        "--labels", f"{data}/train.csv", "--root", root, "--train-steps", "60",
        "--min-accuracy", "0", "--image-size", "16",
    ]  # fmt: skip
    env = {**os.environ, **gcs.env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    # The Trainer's first seconds go to tracing its input graph whatever the step count: 3 s
    # after its first object appears it is still running.
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if gcs.names("killed/run/pipeline/Trainer/"):
            break
        time.sleep(1)
    assert gcs.names("killed/run/pipeline/Trainer/"), "the run never reached the Trainer"
    time.sleep(3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not gcs.names("killed/run/summary.json")

    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = done.stderr.strip().splitlines()
    log = errors[0].split()[1]
    assert errors[0].startswith("log: ") and log.startswith(str(tmp_path / "cache"))
    for line in errors[1:]:  # one line per step event and split warnings, nothing else
        assert re.match(r"(\[\d\d:\d\d:\d\d\] [A-Za-z]+: |warning: )", line), errors
    results = done.stdout.strip().splitlines()
    assert results[0].startswith("examples: train ") and len(results) <= 6, results
    assert results[-3:] == [
        f"pushed model: {json.loads(gcs.get('killed/run/summary.json'))['pushed_model']}",
        f"summary: {root}/summary.json",
        f"report: {root}/report/index.html",
    ]
    summary = RunSummary.from_json(gcs.get("killed/run/summary.json").decode())
    for node in ("ImageExampleGen", "StatisticsGen", "SchemaGen", "LabelSchema"):
        assert summary.steps[node] == "CACHED", summary.steps
    assert summary.steps["Trainer"] == "COMPLETE" and summary.steps["Pusher"] == "COMPLETE"
    assert summary.examples["train"] + summary.examples["eval"] == DIGITS
    assert summary.rejected == 3 and summary.pushed_model.startswith(f"{root}/serving/")
    assert gcs.names(summary.pushed_model[len(f"gs://{BUCKET}/") :] + "/saved_model.pb")
    page = gcs.get("killed/run/report/index.html").decode("utf-8")
    assert "BLESSED" in page and "empty_file" in page
