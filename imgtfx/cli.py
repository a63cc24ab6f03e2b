"""`imgtfx`: the command line of the image-classification pipeline."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings

from pipeline import configs

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # one Keras everywhere: tf-keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-cloud's notices about Python 3.10, here and in Beam's worker processes.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
warnings.filterwarnings("ignore", category=FutureWarning)


class RunFailed(RuntimeError):
    """A step failed for a reason other than the data or the arguments (a full disk, a bug):
    one line on the terminal, the traceback in the run's log."""


def _beam_args(values: list[str] | None) -> list[str]:
    """The user's Beam arguments; when they name no runner and no DirectRunner option, the local
    default (pipeline/configs.py): the DirectRunner in this process, one worker, since
    ImageExampleGen uses every core through its own decode threads. For Dataflow, Flink or
    Spark, the workers get this project's code (pipeline/staging.py)."""
    args = list(values or [])
    if any(a.startswith(("--runner", "--direct_")) for a in args):
        from pipeline import staging

        return staging.worker_args(args)
    return args + list(configs.BEAM_PIPELINE_ARGS)


def _add_input_args(parser: argparse.ArgumentParser, images_required: bool = True) -> None:
    parser.add_argument(
        "--images",
        required=images_required,
        help="image root folder, or gs:// URI (compile: also minio:// or s3://)",
    )
    parser.add_argument("--labels", help="labels CSV (id,label); default: labels from folders")
    parser.add_argument("--id-column", default="id", help="CSV column of image ids (file stems)")
    parser.add_argument("--label-column", help="CSV label column (default: the other column)")
    parser.add_argument(
        "--label-names",
        metavar="CSV",
        help="CSV of label,name (like the contest's category.csv: landmark_id,landmark_name): "
        "names shown in the report and predictions (default: a label's one folder name)",
    )
    parser.add_argument(
        "--label-level",
        type=int,
        default=-1,
        help="folder level naming the label, Python index over the path's folders (default -1: "
        "the folder holding the image)",
    )
    parser.add_argument("--eval-percent", type=int, default=20, help="hash split eval share")
    parser.add_argument(
        "--split-folders",
        help="comma-separated top folders that are splits already: train,eval, or any two "
        "names (the first is trained on, the second evaluated, e.g. training,validation)",
    )
    parser.add_argument(
        "--max-reject-fraction",
        type=float,
        default=0.2,
        help="fail when more of the files found are rejected (broken, unlabeled ...)",
    )
    parser.add_argument(
        "--no-follow-external-links",
        dest="follow_external_links",
        action="store_false",
        help="skip links whose target is outside the image root (default: follow them); "
        "links into the tree are never followed",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="Beam pipeline argument, repeatable (e.g. --beam-arg=--runner=DataflowRunner)",
    )


def _add_training_args(parser: argparse.ArgumentParser, sample: bool = False) -> None:
    """What the Trainer and the Evaluator take: one definition for `run` and `compile`."""
    parser.add_argument(
        "--train-steps", type=int, default=configs.TRAIN_STEPS, help="training steps (batches)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"default {configs.IMAGE_SIZE}"
        + (f"; {configs.SAMPLE_IMAGE_SIZE} with --sample" if sample else ""),
    )
    parser.add_argument(
        "--batch-size", type=int, default=configs.BATCH_SIZE, help="images per training step"
    )
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=configs.MIN_ACCURACY,
        help="overall eval accuracy needed to bless and push the model",
    )
    parser.add_argument(
        "--min-class-accuracy",
        type=float,
        help="also require this accuracy on every class (default: no per-class floor)",
    )
    parser.add_argument(
        "--class-weights",
        choices=["none", "balanced"],
        default="none",
        help="balanced: weigh each class by the inverse of its size (uneven classes)",
    )
    parser.add_argument("--flip", action="store_true", help="random left-right flips in training")
    parser.add_argument("--no-augment", action="store_true", help="no training augmentation")


def _trainer_options(args, image_size: int):
    from trainer.options import TrainerOptions

    return TrainerOptions(
        image_size=image_size,
        batch_size=args.batch_size,
        augment=not args.no_augment,
        flip=args.flip,
        class_weights=args.class_weights,
    )


def _options(args):
    from components.image_example_gen import ImageOptions

    return ImageOptions(
        labels_csv=args.labels,
        id_column=args.id_column,
        label_column=args.label_column,
        label_names_csv=args.label_names,
        label_level=args.label_level,
        max_reject_fraction=args.max_reject_fraction,
        follow_external_links=args.follow_external_links,
    )


def _input_config(args):
    from components.image_example_gen.options import split_folders_config

    if not args.split_folders:
        return None
    return split_folders_config(args.split_folders.split(","))


def convert(args) -> int:
    from components.image_example_gen import convert as convert_tree

    report = convert_tree.convert(
        images=args.images,
        output=args.output,
        options=_options(args),
        input_config=_input_config(args),
        eval_percent=args.eval_percent,
        beam_pipeline_args=_beam_args(args.beam_arg),
    )
    print(convert_tree.summary_line(report, args.output))
    from components.image_example_gen.outputs import split_warnings

    for line in split_warnings(report):
        print(line, file=sys.stderr)
    return 0


def run(args) -> int:
    from pipeline import local_runner

    if args.sample:
        from imgtfx.sample_data import write_digits_tree

        sample_root = os.path.join(local_runner.state_dir(args.root), "sample_data")
        if not os.path.isdir(os.path.join(sample_root, "images")):
            write_digits_tree(sample_root)
        args.images = os.path.join(sample_root, "images")
        args.labels = os.path.join(sample_root, "train.csv")
    size = args.image_size or (configs.SAMPLE_IMAGE_SIZE if args.sample else configs.IMAGE_SIZE)
    trainer_options = _trainer_options(args, size)
    image_options = _options(args)
    from components.image_example_gen.outputs import (
        ImageExampleGenError,
        read_report,
        split_warnings,
    )
    from pipeline import steps
    from pipeline.results import blessing_lines

    # Checked before the log exists under ROOT: a failed check leaves no folder behind.
    local_runner.check_inputs(local_runner.absolute(args.images), args.root, image_options)
    log = os.path.join(
        local_runner.paths(args.root)["logs"], time.strftime("run-%Y%m%d-%H%M%S.log")
    )
    page = None
    with steps.quiet_console(log, args.verbose) as console:
        if not args.verbose:
            print(f"log: {log} (library messages; --verbose shows them here)", file=console)
        try:
            summary = local_runner.run(
                images_root=args.images,
                root=args.root,
                image_options=image_options,
                trainer_options=trainer_options,
                input_config=_input_config(args),
                train_steps=args.train_steps,
                eval_percent=args.eval_percent,
                min_accuracy=args.min_accuracy,
                min_class_accuracy=args.min_class_accuracy,
                beam_pipeline_args=_beam_args(args.beam_arg),
                console=console,
                inputs_checked=True,
            )
            if summary.get("examples_uri"):
                from imgtfx.report import write_report

                with steps.timed("report") as record:
                    page = write_report(summary["root"])
                local_runner.record_step(summary["root"], "report", record)
        except (ValueError, ImageExampleGenError):
            raise  # the data or the arguments: their own one-line message
        except Exception as e:
            traceback.print_exc()  # into the log
            raise RunFailed(
                f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__} "
                f"(the traceback is in {log}; once fixed, the same command resumes the run)"
            ) from None
    if summary.get("examples_uri"):
        for line in split_warnings(read_report(summary["examples_uri"])):
            print(line, file=sys.stderr)
    accuracy, top_k = summary["accuracy"], summary.get("top_k_accuracy")
    top_k_text = "" if top_k is None else f", top-{summary['top_k']} {top_k:.3f}"
    splits = ", ".join(f"{split} {n:,}" for split, n in (summary["examples"] or {}).items())
    print(
        f"examples: {splits or 'none'}; rejected {summary['rejected']:,}; accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.3f}'}{top_k_text}; "
        f"{'BLESSED' if summary['blessed'] else 'NOT blessed'}"
    )
    for line in blessing_lines(summary.get("blessing") or {}):
        print(line)
    print(f"pushed model: {summary['pushed_model'] or 'none (not blessed)'}")
    print(f"summary: {local_runner.paths(summary['root'])['summary']}")
    if page:
        print(f"report: {page}")
    return 0


def compile_spec(args) -> int:
    from kubeflow import runner
    from pipeline import staging

    runner.compile_pipeline(
        pipeline_root=args.pipeline_root,
        images=args.images,
        image=args.image,
        output_file=args.output,
        labels_csv=args.labels,
        serving_dir=args.serving_dir,
        train_steps=args.train_steps,
        image_options=_options(args),
        trainer_options=_trainer_options(args, args.image_size or configs.IMAGE_SIZE),
        input_config=_input_config(args),
        eval_percent=args.eval_percent,
        min_accuracy=args.min_accuracy,
        min_class_accuracy=args.min_class_accuracy,
        beam_pipeline_args=staging.worker_args(args.beam_arg or [], image=args.image),
        metadata_service=args.metadata_service,
        trainer_gpus=args.trainer_gpus,
        trainer_gpu_type=args.trainer_gpu_type,
        trainer_cpu=args.trainer_cpu,
        trainer_memory=args.trainer_memory,
        object_store_secret=args.object_store_secret,
        object_store_endpoint=args.object_store_endpoint,
    )
    target = {
        runner.KFP: "open-source Kubeflow Pipelines (kfp.Client().upload_pipeline)",
        runner.VERTEX: "Vertex AI Pipelines (aiplatform.PipelineJob)",
    }[runner.target_of(args.output)]
    print(f"compiled: {args.output} for {target}")
    return 0


def submit_run(args) -> int:
    from kubeflow.submit import submit

    run_id = submit(
        args.package,
        args.host,
        args.pipeline_root,
        images=args.images,
        train_steps=args.train_steps,
        run_name=args.run_name,
        experiment=args.experiment,
        namespace=args.namespace,
    )
    print(f"submitted: run {run_id} with pipeline root {args.pipeline_root}")
    return 0


def predict(args) -> int:
    from imgtfx.predict import predict as predict_files

    predicted = 0
    for line in predict_files(args.model, args.images, args.top_k, progress=sys.stderr.isatty()):
        predicted += "error" not in line
        print(json.dumps(line, ensure_ascii=False), flush=True)
    if not predicted:
        print("imgtfx predict: error: no image could be predicted.", file=sys.stderr)
        return 1
    return 0


def report(args) -> int:
    from imgtfx.report import write_report
    from pipeline import local_runner, steps

    log = os.path.join(
        local_runner.paths(args.root)["logs"], time.strftime("report-%Y%m%d-%H%M%S.log")
    )
    with steps.quiet_console(log, verbose=False):  # TensorFlow's and TFMA's notices
        page = write_report(args.root)
    print(f"report: {page}")
    return 0


def sample(args) -> int:
    from imgtfx.sample_data import write_digits_tree

    paths = write_digits_tree(args.output, image_size=args.image_size)
    print(json.dumps(paths, ensure_ascii=False))
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            not action.option_strings
            or "default" in text
            or action.default in (None, False, [], argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("imgtfx")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "(source tree)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgtfx", description="TFX image-classification pipeline for labelled image trees."
    )
    parser.add_argument("--version", action="version", version=f"imgtfx {_version()}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = commands.add_parser("convert", help="image tree (+ labels CSV) -> TFRecord examples")
    _add_input_args(p)
    p.add_argument("--output", required=True, help="output folder")
    p.set_defaults(func=convert)

    p = commands.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
    _add_input_args(p, images_required=False)
    p.add_argument("--sample", action="store_true", help="use the built-in digits sample data")
    p.add_argument("--root", required=True, help="folder for artifacts, metadata and models")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' messages (TFX, Beam, TensorFlow) on the terminal too; by "
        "default they go to ROOT/logs/run-*.log",
    )
    _add_training_args(p, sample=True)
    p.set_defaults(func=run)

    p = commands.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow: .yaml for open-source KFP, .json for Vertex",
    )
    p.add_argument(
        "--pipeline-root",
        required=True,
        help="artifact root: gs://, s3:// or minio://BUCKET/PATH (.json: gs:// only); the "
        "open-source backend takes the root from the run: give it to `imgtfx submit` too",
    )
    _add_input_args(p)  # --images: the default of the `images` runtime parameter
    _add_training_args(p)  # --train-steps: the default of the `train_args` runtime parameter
    p.add_argument("--image", required=True, help="container image of the steps")
    p.add_argument(
        "--output",
        required=True,
        help="file to write: NAME.yaml, a package for open-source Kubeflow Pipelines (KFP v2 "
        "backend); NAME.json, a PipelineJob for Vertex AI Pipelines",
    )
    p.add_argument("--serving-dir", help="push destination (default PIPELINE_ROOT/serving)")
    p.add_argument(
        "--metadata-service",
        default=configs.METADATA_SERVICE,
        help=".yaml only: host:port of KFP's metadata gRPC service, where the Evaluator finds "
        "the latest blessed model; 'none' for no baseline (default: %(default)s)",
    )
    p.add_argument(
        "--object-store-secret",
        help=".yaml only: Kubernetes secret (keys accesskey, secretkey) with which the Evaluator "
        "copies its baseline model out of minio:// or s3:// (default: mlpipeline-minio-artifact "
        "for a minio:// root, none otherwise; 'none' for none)",
    )
    p.add_argument(
        "--object-store-endpoint",
        help=".yaml only: that store's URL when not KFP's MinIO (minio-service.kubeflow:9000) "
        "or AWS S3, e.g. http://minio.example:9000",
    )
    p.add_argument("--trainer-gpus", type=int, default=0, help="GPUs for the Trainer's step")
    p.add_argument(
        "--trainer-gpu-type",
        help="accelerator type (default: nvidia.com/gpu for .yaml, NVIDIA_TESLA_T4 for .json)",
    )
    p.add_argument("--trainer-cpu", type=float, help="CPU limit of the Trainer's step")
    p.add_argument("--trainer-memory", help="memory limit of the Trainer's step, e.g. 16G")
    p.set_defaults(func=compile_spec)

    p = commands.add_parser(
        "submit", help="start a run of a .yaml package on Kubeflow Pipelines, with its root"
    )
    p.add_argument("package", help="the .yaml from `imgtfx compile`")
    p.add_argument("--host", help="KFP endpoint, e.g. http://ml-pipeline-ui.kubeflow")
    p.add_argument(
        "--pipeline-root",
        required=True,
        help="where the run's artifacts go: gs://, s3:// or minio://BUCKET/PATH",
    )
    p.add_argument("--images", help="image root for this run (default: the package's)")
    p.add_argument("--train-steps", type=int, help="training steps (default: the package's)")
    p.add_argument("--run-name", help="the run's name in the KFP UI (default: kfp's)")
    p.add_argument("--experiment", help="experiment name (default: kfp's Default)")
    p.add_argument("--namespace", help="profile namespace, on multi-user Kubeflow")
    p.set_defaults(func=submit_run)

    p = commands.add_parser("predict", help="predict images with a trained or pushed model")
    p.add_argument("--model", required=True, help="SavedModel folder, or ROOT/serving")
    p.add_argument(
        "--top-k", type=int, default=3, help="labels listed per image, most likely first"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.set_defaults(func=predict)

    p = commands.add_parser("report", help="(re)write ROOT/report/index.html for a run")
    p.add_argument("root", metavar="ROOT")
    p.set_defaults(func=report)

    p = commands.add_parser("sample", help="write the built-in sample image tree (digits)")
    p.add_argument("--output", required=True, help="folder to write the tree and its CSV to")
    p.add_argument("--image-size", type=int, default=32, help="side of each digit image, pixels")
    p.set_defaults(func=sample)
    return parser


def check_args(args) -> None:
    """The checks that need no TensorFlow, before it is imported (7-25 s): a mistyped path or
    number is answered at once. The components check everything again where they run.

    Raises:
      ValueError: what is wrong, in the flag's own words.
    """
    from trainer.options import SUPPORTED_IMAGE_SIZES

    if args.command == "run":
        if args.sample and (args.images or args.labels):
            raise ValueError(
                "--sample trains on the built-in digits: leave out --images and --labels, or "
                "leave out --sample."
            )
        if not args.sample and not args.images:
            raise ValueError("give --images DIR (or --sample for the built-in digits).")
    images, labels = getattr(args, "images", None), getattr(args, "labels", None)
    if args.command in ("run", "convert") and images:
        from components.image_example_gen.images import check_local_root

        check_local_root(images)
    if labels and "://" not in labels and not os.path.isfile(labels):
        raise ValueError(f"labels CSV {labels} does not exist.")
    names = getattr(args, "label_names", None)
    if names and "://" not in names and not os.path.isfile(names):
        raise ValueError(f"label names CSV {names} does not exist.")
    if getattr(args, "split_folders", None):
        _input_config(args)  # raises on folders that cannot train and evaluate
    if getattr(args, "eval_percent", None) is not None and not 0 < args.eval_percent < 100:
        raise ValueError(f"--eval-percent must be between 1 and 99, got {args.eval_percent}.")
    size = getattr(args, "image_size", None)
    if args.command != "sample" and size is not None and size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"--image-size must be between {SUPPORTED_IMAGE_SIZES.start} and "
            f"{SUPPORTED_IMAGE_SIZES.stop - 1} pixels, got {size}."
        )
    for name in ("train_steps", "batch_size", "top_k"):
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}.")
    for name in ("min_accuracy", "min_class_accuracy", "max_reject_fraction"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}.")
    if (
        args.command == "report"
        and "://" not in args.root  # a bucket's root is checked when it is read
        and not os.path.isfile(os.path.join(args.root, "summary.json"))
    ):
        raise ValueError(
            f"{args.root} holds no imgtfx run (no summary.json): give the --root of `imgtfx run`."
        )


def main(argv: list[str] | None = None) -> int:
    from pipeline.local_settings import limit_malloc_arenas

    limit_malloc_arenas()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:  # a bare `imgtfx`: what it can do
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ValueError as e:
        print(f"imgtfx {args.command}: error: {e}", file=sys.stderr)
        return 2
    from components.image_example_gen.outputs import ImageExampleGenError

    try:
        return args.func(args)
    except (ValueError, ImageExampleGenError, FileNotFoundError, PermissionError) as e:
        print(f"imgtfx {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"imgtfx {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nimgtfx {args.command}: interrupted."
            + (
                " Run the same command again to resume: finished steps are reused from the cache."
                if args.command == "run"
                else ""
            ),
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
