"""The command line: one-line results, one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import sys

from imgtfx import cli
from imgtfx.sample_data import DIGIT_NAMES, write_digits_tree
from tests.helpers.images import make_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IN_PROCESS = ["--beam-arg=--direct_running_mode=in_memory", "--beam-arg=--direct_num_workers=1"]


def test_convert_prints_one_summary_line(tmp_path, capsys):
    sample = write_digits_tree(str(tmp_path / "digits"), limit=60)
    out = tmp_path / "out"
    argv = ["convert", "--images", sample["images"], "--labels", sample["labels_csv"]]
    assert cli.main([*argv, "--output", str(out), *IN_PROCESS]) == 0
    line = capsys.readouterr().out.strip()
    assert (
        line
        == f"64 files: 60 examples (train {_split(out, 'train')}, eval {_split(out, 'eval')}), "
        f"3 rejected, 1 skipped, 10 labels -> {out}"
    )
    assert (out / "labels.txt").read_text().split() == [str(d) for d in range(10)]


def _split(out, name):
    return json.loads((out / "report.json").read_text())["splits"][name]


def test_sample_tree_has_korean_folders(tmp_path):
    sample = write_digits_tree(str(tmp_path / "d"), limit=20, with_defects=False)
    folders = {p.name for p in (tmp_path / "d" / "images" / "train").glob("*/*")}
    assert folders <= set(DIGIT_NAMES) and folders
    assert open(sample["labels_csv"], encoding="utf-8").readline().strip() == "id,landmark_id"


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    assert cli.main(["convert", "--images", str(tmp_path / "nope"), "--output", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a folder" in err

    images = tmp_path / "images"
    make_tree(images, per_class=2)
    csv = tmp_path / "l.csv"
    csv.write_text("image,label\na,1\n")
    argv = [
        "convert",
        "--images",
        str(images),
        "--labels",
        str(csv),
        "--output",
        str(tmp_path / "o"),
    ]
    assert cli.main([*argv, *IN_PROCESS]) == 2
    assert "no id column 'id'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a failed check leaves no empty output folder

    argv = ["run", "--images", str(images), "--root", str(tmp_path / "r"), "--image-size", "3"]
    assert cli.main(argv) == 2
    assert "--image-size must be between 16 and 512" in capsys.readouterr().err


ARGUMENT_ERRORS = [
    (["run", "--root", "r"], "give --images DIR"),
    (["run", "--root", "r", "--sample", "--images", "."], "--sample trains on the built-in"),
    (["run", "--root", "r", "--images", "nope"], "image root nope is not a folder"),
    (["run", "--root", "r", "--sample", "--train-steps", "0"], "--train-steps must be positive"),
    (["run", "--root", "r", "--sample", "--min-accuracy", "90"], "between 0 and 1, got 90.0"),
    (["convert", "--images", ".", "--output", "o", "--eval-percent", "0"], "between 1 and 99"),
    (["convert", "--images", ".", "--output", "o", "--split-folders", "train"], "split folders"),
    (["report", "."], "holds no imgtfx run"),
    (
        ["run", "--root", "r", "--sample", "--head", "cosine", "--label-smoothing", "0.1"],
        "label smoothing is for the softmax head",
    ),
    (["convert", "--images", "empty", "--output", "o"], "image root empty is empty"),
    (["convert", "--images", ".", "--output", "o", "--label-names", "no.csv"], "CSV no.csv does"),
]


def test_label_names_flag_reaches_the_options():
    argv = ["convert", "--images", ".", "--output", "o", "--label-names", "category.csv"]
    with_names = cli.build_parser().parse_args(argv)
    assert cli._run_config(with_names).image_options.label_names_csv == "category.csv"
    no_names = cli.build_parser().parse_args(argv[:-2])
    assert cli._run_config(no_names).image_options.label_names_csv is None


def test_options_not_given_take_the_configurations_own_defaults():
    """argparse holds no default of its own for an option that sets a configuration field:
    the dataclass's applies, and the help shows it (one home for each default)."""
    from imgtfx.arguments import FIELDS, field_default
    from imgtfx.pipeline.run_config import RunConfig

    args = cli.build_parser().parse_args(["convert", "--images", ".", "--output", "o"])
    config = cli._run_config(args)
    assert config.eval_percent == RunConfig("x").eval_percent
    assert config.image_options == RunConfig("x").image_options
    parser = cli.build_parser()
    defaults = [
        a
        for p in _subparsers(parser)
        if not p.prog.endswith(" sample")  # sample's --image-size writes the tree, no model
        for a in p._actions
        if a.dest in FIELDS
    ]
    assert defaults and all(a.default is None for a in defaults)
    help_text = _subparser(parser, "run").format_help()
    assert f"(default: {field_default('eval_percent')})" in help_text
    assert f"(default: {field_default('backbone')})" in help_text


def _subparsers(parser):
    import argparse

    (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(choices.choices.values())


def _subparser(parser, name):
    return next(p for p in _subparsers(parser) if p.prog.endswith(" " + name))


def test_head_flags_reach_the_trainer_options(tmp_path):
    argv = ["run", "--sample", "--root", str(tmp_path / "r"), "--head", "cosine"]
    args = cli.build_parser().parse_args([*argv, "--cosine-margin", "0.3"])
    cli.check_args(args)
    options = args.config.trainer_options
    assert (options.head, options.cosine_margin, options.cosine_scale) == ("cosine", 0.3, 30.0)


def test_argument_errors_are_answered_before_tensorflow_is_imported(tmp_path):
    """TensorFlow takes 7-25 s to import: a mistyped flag must not wait for it."""
    import subprocess
    import sys

    program = (
        "import json, sys\n"
        "from imgtfx import cli\n"
        "codes = [cli.main(argv) for argv in json.loads(sys.argv[1])]\n"
        "print(json.dumps([codes, 'tensorflow' in sys.modules]))\n"
    )
    argvs = [argv for argv, _ in ARGUMENT_ERRORS]
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", program, json.dumps(argvs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    codes, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(ARGUMENT_ERRORS)
    assert imported is False
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(ARGUMENT_ERRORS)  # one line each
    for line, (argv, message) in zip(lines, ARGUMENT_ERRORS, strict=True):
        assert line.startswith(f"imgtfx {argv[0]}: error: ") and message in line


def test_compile_writes_the_spec(tmp_path, capsys):
    output = tmp_path / "pipeline.json"
    argv = ["compile", "--pipeline-root", "gs://b/root", "--images", "gs://b/images"]
    assert cli.main([*argv, "--image", "r/imgtfx:1", "--output", str(output)]) == 0
    assert json.loads(output.read_text())["pipelineSpec"]["pipelineInfo"]["name"]
    assert (
        capsys.readouterr().out.strip()
        == f"compiled: {output} for Vertex AI Pipelines (aiplatform.PipelineJob)"
    )


def test_a_failed_step_is_one_line_and_its_traceback_is_in_the_log(tmp_path, capfd, monkeypatch):
    from imgtfx.pipeline import local_runner

    def full_disk(self, console=None):
        print("a library's chatter", file=sys.stderr)
        raise RuntimeError("OSError: [Errno 28] No space left on device [while running 'X']")

    monkeypatch.setattr(local_runner.LocalRun, "run", full_disk)
    images = tmp_path / "images"
    make_tree(images, per_class=2)
    root = tmp_path / "run"
    assert cli.main(["run", "--images", str(images), "--root", str(root)]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err[0].startswith("log: ") and len(err) == 2, err
    assert err[1].startswith("imgtfx run: failed: OSError: [Errno 28] No space left on device")
    (log,) = (root / "logs").iterdir()
    assert str(log) in err[1]
    logged = log.read_text()
    assert "a library's chatter" in logged and "Traceback" in logged
