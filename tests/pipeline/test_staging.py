"""Beam workers on other machines get this project's code (pipeline/staging.py).

No Dataflow here: the test takes the Beam options the command line makes for Dataflow, and in
a fresh interpreter that has only what those options stage (the wheel) besides the worker
image's third-party packages, unpickles the ImageExampleGen DoFn the launcher pickled and runs
it, as a Dataflow worker does (apache_beam.internal.pickler, as the runner harness uses).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile

from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
from tfx.dsl.components.base import base_beam_executor

from imgtfx import cli
from imgtfx.components.image_example_gen import checking, shards
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.components.image_example_gen.records import LabeledImage
from imgtfx.components.image_example_gen.tree import FoundFile
from imgtfx.pipeline import configs, staging
from tests.helpers import doc_commands
from tests.helpers.images import encode, write

DATAFLOW = [
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp_location=gs://my-bucket/tmp",
]

WORKER = """
import json, os, sys
wheel = sys.argv[1]
# Only the staged wheel: no source tree (cwd, the editable install's .pth entry) on the path.
tree = [p for p in sys.path if not p or os.path.isdir(os.path.join(p, "imgtfx"))]
sys.path[:] = [wheel] + [p for p in sys.path if p not in tree]
from apache_beam.internal import pickler
with open("dofns.pickle", "rb") as f:
    check, write = pickler.loads(f.read())
with open("elements.pickle", "rb") as f:
    records, vocabulary = pickler.loads(f.read())
check.setup()
check.start_bundle()
checked = [o for r in records for o in check.process(r)] + list(check.finish_bundle())
unwrap = lambda o: getattr(o, "value", o)  # windowed, in finish_bundle
rejects = [unwrap(o.value).path for o in checked if hasattr(o, "tag")]
checked = [unwrap(o) for o in checked if not hasattr(o, "tag")]
import imgtfx.components.image_example_gen.shards as shards
from imgtfx.components.image_example_gen.records import as_tuple
outputs = list(write.process((("train", 0, 1), [as_tuple(c) for c in checked]), vocabulary))
rejects += [o.value.path for o in outputs if hasattr(o, "tag")]
print(json.dumps({"module": shards.__file__, "stats": [o for o in outputs if isinstance(o, dict)],
                  "rejects": rejects}))
"""


def test_dataflow_workers_unpickle_and_run_image_example_gen_from_the_staged_wheel(tmp_path):
    args = cli._beam_args(DATAFLOW)
    [wheel] = PipelineOptions(args).view_as(SetupOptions).extra_packages
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "imgtfx/components/image_example_gen/shards.py" in names
    assert "imgtfx/trainer/model.py" in names and "imgtfx/cli.py" in names
    assert any(n.endswith(".dist-info/RECORD") for n in names)
    assert {n.split("/")[0] for n in names if ".dist-info" not in n} == {"imgtfx"}

    images = tmp_path / "images"
    files = {"cat/1.jpg": encode(seed=1), "cat/2.jpg": encode(seed=2), "dog/3.jpg": b"broken"}
    for rel, data in files.items():
        write(images / rel, data)
    records = [
        LabeledImage(FoundFile("train", rel, str(images / rel)), rel, rel.split("/")[0], "train")
        for rel in files
    ]
    out = tmp_path / "out"
    work = tmp_path / "worker"
    work.mkdir()
    dofns = (
        checking.CheckImages(ImageOptions()),
        shards.WriteShard({"train": str(out / "Split-train")}, ImageOptions()),
    )
    (work / "dofns.pickle").write_bytes(pickler.dumps(dofns))
    (work / "elements.pickle").write_bytes(pickler.dumps((records, ["cat", "dog"])))

    done = subprocess.run(
        [sys.executable, "-c", WORKER, wheel], cwd=work, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(wheel)  # imported from the wheel, not the tree
    [stats] = result["stats"]
    assert stats["examples"] == 2 and stats["classes"] == {"cat": 2}
    assert result["rejects"] == ["dog/3.jpg"]
    assert (out / "Split-train" / "data_tfrecord-00000-of-00001.gz").exists()


def test_workers_get_the_pipeline_image_when_there_is_one():
    image = "europe-docker.pkg.dev/p/r/imgtfx:1"
    assert staging.worker_args(DATAFLOW, image=image) == [
        *DATAFLOW,
        f"--sdk_container_image={image}",
    ]
    flink = ["--runner=FlinkRunner", "--flink_master=flink:8081"]
    assert staging.worker_args(flink, image=image)[-2:] == [
        "--environment_type=DOCKER",
        f"--environment_config={image}",
    ]
    chosen = [*DATAFLOW, "--sdk_container_image=mine"]
    assert staging.worker_args(chosen, image=image) == chosen  # the user's choice stands
    local = ["--direct_running_mode=multi_processing"]
    # Local workers import the tree; the SDK image only keeps TFX from packaging itself.
    assert staging.worker_args(local, image=image) == [
        *local,
        f"--sdk_container_image={configs.BEAM_SDK_IMAGE}",
    ]
    assert staging.worker_args([]) == []


class Step(base_beam_executor.BaseBeamExecutor):
    """A Beam step that does nothing: what its constructor leaves behind is the subject."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        pass


def test_a_local_beam_step_leaves_no_copy_of_tfx_behind(tmp_path, monkeypatch):
    """TFX's Beam executors package TFX into a fresh temporary folder, and never delete it,
    unless the arguments say how workers get code (tfx/utils/dependency_utils.py); a user's
    DirectRunner options pass through worker_args, which says so."""
    user = ["--direct_running_mode=in_memory", "--direct_num_workers=2"]
    for args, leaves in ((user, True), (cli._beam_args(user), False)):
        temporary = tmp_path / str(leaves)
        temporary.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(temporary))
        context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=args)
        Step(context)
        assert bool(list(temporary.glob("*/build/tfx"))) is leaves, args


def test_compile_gives_dataflow_workers_the_pipeline_image(tmp_path):
    import yaml

    spec = tmp_path / "pipeline.yaml"
    image = "europe-docker.pkg.dev/p/r/imgtfx:1"
    code = cli.main(
        [
            "compile",
            "--images=gs://b/images",
            "--pipeline-root=gs://b/root",
            f"--image={image}",
            f"--output={spec}",
            *[f"--beam-arg={a}" for a in DATAFLOW],
        ]
    )
    assert code == 0
    assert f"--sdk_container_image={image}" in spec.read_text()
    assert yaml.safe_load(spec.read_text())


def test_the_guides_command_line_for_each_runner_gives_its_workers_the_code():
    """What the command line makes of each line of the buckets guide: Dataflow gets the staged
    wheel from `convert`, Flink and Spark the pipeline's image as their Docker environment from
    `compile`, and Beam parses every option."""
    lines = doc_commands.commands(
        "Workers get the code", program="imgtfx", page=doc_commands.BUCKETS_GUIDE
    )
    runners = {}
    for argv in lines:
        args = cli.build_parser().parse_args(argv)
        if args.command == "compile":
            options = staging.worker_args(args.beam_arg, image=args.image)
        else:
            options = cli._beam_args(args.beam_arg)
        parsed = PipelineOptions(options).get_all_options(retain_unknown_options=True)
        runners[parsed["runner"]] = (args, parsed)
    assert set(runners) == {"DataflowRunner", "FlinkRunner", "SparkRunner"}
    args, dataflow = runners["DataflowRunner"]
    assert args.command == "convert" and args.images.startswith("gs://")
    [wheel] = dataflow["extra_packages"]
    assert wheel.endswith("-py3-none-any.whl") and zipfile.is_zipfile(wheel)
    for runner in ("FlinkRunner", "SparkRunner"):
        args, parsed = runners[runner]
        assert parsed["environment_type"] == "DOCKER"
        assert parsed["environment_config"] == args.image == "IMAGE"
