"""`imgtfx`: the command line of the image-classification pipeline.

Parses the arguments, builds and checks the run's configuration from them (RunConfig, and a
KubeflowTarget for `compile`) before TensorFlow is imported, and hands over to the command
(imgtfx/commands.py). Every error of the data or the arguments is one line and exit code 2.
"""

from __future__ import annotations

import os
import sys
import warnings

from imgtfx import commands
from imgtfx.arguments import build_parser, given
from imgtfx.pipeline import configs
from imgtfx.pipeline.run_summary import not_a_run, summary_path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # one Keras everywhere: tf-keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-cloud's notices about Python 3.10, here and in Beam's worker processes.
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
warnings.filterwarnings("ignore", category=FutureWarning)


def _beam_args(values: list[str] | None) -> list[str]:
    """The user's Beam arguments; when they name no runner and no DirectRunner option, the local
    default (pipeline/configs.py): the DirectRunner in this process, one worker, since
    ImageExampleGen uses every core through its own decode threads. For Dataflow, Flink or
    Spark, the workers get this project's code (pipeline/staging.py)."""
    args = list(values or [])
    if any(a.startswith(("--runner", "--direct_")) for a in args):
        from imgtfx.pipeline import staging

        return staging.worker_args(args)
    return args + list(configs.BEAM_PIPELINE_ARGS)


def _run_config(args):
    """The run's configuration from the arguments of convert, run or compile: the options
    given, over the dataclasses' defaults (imgtfx/arguments.py FIELDS); their checks are the
    dataclasses' own."""
    from imgtfx.components.image_example_gen import ImageOptions
    from imgtfx.pipeline.run_config import RunConfig
    from imgtfx.trainer.options import TrainerOptions

    fields = given(args, RunConfig)
    if hasattr(args, "train_steps"):  # run and compile train
        trainer = given(args, TrainerOptions)
        if getattr(args, "sample", False) and args.image_size is None:
            trainer["image_size"] = configs.SAMPLE_IMAGE_SIZE
        fields["trainer_options"] = TrainerOptions(**trainer)
    if args.command == "compile":
        from imgtfx.pipeline import staging

        beam_args = staging.worker_args(args.beam_arg or [], image=args.image)
    else:
        beam_args = _beam_args(args.beam_arg)
    return RunConfig(
        images=args.images,
        image_options=ImageOptions(**given(args, ImageOptions)),
        split_folders=tuple(args.split_folders.split(",")) if args.split_folders else (),
        beam_args=tuple(beam_args),
        **fields,
    )


def _kubeflow_target(args):
    from imgtfx.kubeflow.target import KubeflowTarget

    return KubeflowTarget(
        output=args.output,
        pipeline_root=args.pipeline_root,
        image=args.image,
        serving_dir=args.serving_dir,
        metadata_service=args.metadata_service,
        trainer_gpus=args.trainer_gpus,
        trainer_gpu_type=args.trainer_gpu_type,
        trainer_cpu=args.trainer_cpu,
        trainer_memory=args.trainer_memory,
        object_store_secret=args.object_store_secret,
        object_store_endpoint=args.object_store_endpoint,
        data_secret=args.data_secret,
    )


def check_args(args) -> None:
    """The checks that need no TensorFlow, before it is imported (7-25 s): a mistyped path or
    number is answered at once. Builds the command's configuration (`args.config`, and
    `args.target` for compile), which checks its own values; the files it names are checked
    once, where the command starts (local_runner.prepare, convert).

    Raises:
      ValueError: what is wrong, in the flag's own words.
    """
    if args.command == "run":
        if args.sample and (args.images or args.labels):
            raise ValueError(
                "--sample trains on the built-in digits: leave out --images and --labels, or "
                "leave out --sample."
            )
        if not args.sample and not args.images:
            raise ValueError("give --images DIR (or --sample for the built-in digits).")
        if args.sample:
            from imgtfx.pipeline.local_runner import state_dir

            sample_root = os.path.join(state_dir(args.root), "sample_data")
            args.images = os.path.join(sample_root, "images")
            args.labels = os.path.join(sample_root, "train.csv")
    top_k = getattr(args, "top_k", None)
    if top_k is not None and top_k <= 0:  # predict's own: no configuration holds it
        raise ValueError(f"--top-k must be positive, got {top_k}.")
    if args.command in ("convert", "run", "compile"):
        args.config = _run_config(args)
    if args.command == "compile":
        args.target = _kubeflow_target(args)
        if args.target.platform == "kfp":
            args.target.data_store_secret(args.config.store_uris)  # data with no keys to read it
        args.target.check_weights(args.config.trainer_options.weights)
    if (
        args.command == "report"
        and "://" not in args.root  # a bucket's root is checked when it is read
        and not os.path.isfile(summary_path(args.root))
    ):
        raise ValueError(not_a_run(args.root))


def main(argv: list[str] | None = None) -> int:
    from imgtfx.pipeline.local_settings import limit_malloc_arenas

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
    from imgtfx.components.image_example_gen.report_checks import ImageExampleGenError

    try:
        return args.func(args)
    except (ValueError, ImageExampleGenError, FileNotFoundError, PermissionError) as e:
        print(f"imgtfx {args.command}: error: {e}", file=sys.stderr)
        return 2
    except commands.RunFailed as e:
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
