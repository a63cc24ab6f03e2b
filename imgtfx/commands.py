"""What each `imgtfx` command does, once the command line (imgtfx/cli.py) has parsed its
arguments into `args`, with the run's configuration already built and checked where the
command has one (`args.config`: pipeline/run_config.py; `args.target`: kubeflow/target.py).

Each returns the process's exit code; errors of the data or the arguments are raised as
ValueError (or ImageExampleGenError) and said in one line by cli.main.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


class RunFailed(RuntimeError):
    """A step failed for a reason other than the data or the arguments (a full disk, a bug):
    one line on the terminal, the traceback in the run's log."""


def convert(args) -> int:
    from imgtfx.components.image_example_gen import convert as convert_tree

    config = args.config
    report = convert_tree.convert(
        images=config.images,
        output=args.output,
        options=config.image_options,
        split_folders=config.split_folders,
        eval_percent=config.eval_percent,
        beam_pipeline_args=list(config.beam_args),
    )
    print(convert_tree.summary_line(report, args.output))
    from imgtfx.components.examples.report_warnings import copy_warnings, split_warnings

    for line in [*split_warnings(report), *copy_warnings(report)]:
        print(line, file=sys.stderr)
    return 0


def run(args) -> int:
    from imgtfx.pipeline import local_runner, steps

    if args.sample:
        from imgtfx.sample_data import write_digits_tree

        sample_root = os.path.dirname(args.config.images)
        if not os.path.isdir(args.config.images):
            write_digits_tree(sample_root)
    # Checked before the log exists under ROOT: a failed check leaves no folder behind.
    local = local_runner.prepare(args.config, args.root)
    from imgtfx.components.examples.conversion_report import read_report
    from imgtfx.components.examples.report_warnings import copy_warnings, split_warnings
    from imgtfx.components.image_example_gen.report_checks import ImageExampleGenError
    from imgtfx.pipeline.results import blessing_lines
    from imgtfx.pipeline.run_summary import summary_path

    log = os.path.join(
        local_runner.paths(args.root)["logs"], time.strftime("run-%Y%m%d-%H%M%S.log")
    )
    page = None
    with steps.quiet_console(log, args.verbose) as console:
        if not args.verbose:
            print(f"log: {log} (library messages; --verbose shows them here)", file=console)
        try:
            summary = local.run(console)
            if summary.examples_uri:
                from imgtfx.report import write_run_report

                with steps.timed("report") as record:
                    page = write_run_report(summary.root)
                local_runner.record_step(summary.root, "report", record)
        except (ValueError, ImageExampleGenError):
            raise  # the data or the arguments: their own one-line message
        except Exception as e:
            traceback.print_exc()  # into the log
            raise RunFailed(
                f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__} "
                f"(the traceback is in {log}; once fixed, the same command resumes the run)"
            ) from None
    if summary.examples_uri:
        report = read_report(summary.examples_uri)
        for line in [*split_warnings(report), *copy_warnings(report)]:
            print(line, file=sys.stderr)
    accuracy, top_k = summary.accuracy, summary.top_k_accuracy
    top_k_text = "" if top_k is None else f", top-{summary.top_k} {top_k:.3f}"
    if summary.gap is not None:
        top_k_text += f", GAP {summary.gap:.3f}"
    splits = ", ".join(f"{split} {n:,}" for split, n in (summary.examples or {}).items())
    print(
        f"examples: {splits or 'none'}; rejected {summary.rejected:,}; accuracy "
        f"{'n/a' if accuracy is None else f'{accuracy:.3f}'}{top_k_text}; "
        f"{'BLESSED' if summary.blessed else 'NOT blessed'}"
    )
    if summary.gap_by_method:
        print(
            "GAP by method: "
            + ", ".join(
                f"{method} {'n/a' if value is None else f'{value:.3f}'}"
                for method, value in summary.gap_by_method.items()
            )
        )
    for line in blessing_lines(summary.blessing or {}):
        print(line)
    print(f"pushed model: {summary.pushed_model or 'none (not blessed)'}")
    print(f"summary: {summary_path(summary.root)}")
    if page:
        print(f"report: {page}")
    return 0


def compile_spec(args) -> int:
    from imgtfx.kubeflow import runner
    from imgtfx.kubeflow.target import KFP, multi_user_notes

    runner.compile(args.config, args.target)
    uris = (*args.config.store_uris, args.config.trainer_options.weights)
    for note in multi_user_notes(args.target, uris) if args.target.platform == KFP else []:
        print(f"note: {note}", file=sys.stderr)
    where = (
        "open-source Kubeflow Pipelines (kfp.Client().upload_pipeline)"
        if args.target.platform == KFP
        else "Vertex AI Pipelines (aiplatform.PipelineJob)"
    )
    print(f"compiled: {args.target.output} for {where}")
    if runner.needs_launcher_config(args.target):
        launcher_config = runner.launcher_config_file(args.target.output)
        print(
            "the KFP launcher needs the root's store in the runs' namespace: "
            f"kubectl -n NAMESPACE apply -f {launcher_config}"
        )
    return 0


def submit_run(args) -> int:
    from imgtfx.kubeflow.submit import SubmitError, compiled_root, submit

    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    try:
        run_id = submit(
            args.package,
            args.host,
            args.pipeline_root,
            images=args.images,
            train_steps=args.train_steps,
            run_name=args.run_name,
            experiment=args.experiment,
            namespace=args.namespace,
            token=token,
        )
    except SubmitError as e:
        raise RunFailed(str(e)) from None
    root = (
        args.pipeline_root
        or compiled_root(args.package)
        or "the namespace's default (its kfp-launcher ConfigMap)"
    )
    print(f"submitted: run {run_id} with pipeline root {root}")
    return 0


def predict(args) -> int:
    from imgtfx.predict import predict as predict_files
    from imgtfx.predict import submission_rows, write_submission

    answered = 0  # lines without an error: predicted, or abstained under min_confidence

    def counted(lines):
        nonlocal answered
        for line in lines:
            answered += "error" not in line
            yield line

    lines = counted(
        predict_files(args.model, args.images, args.top_k, progress=sys.stderr.isatty())
    )
    if args.submission:
        rows = write_submission(args.submission, submission_rows(lines, sys.stderr))
        predicted = sum(1 for row in rows if row[1])
        print(f"submission: {args.submission} ({len(rows):,} rows, {predicted:,} predicted)")
    for line in [] if args.submission else lines:
        print(json.dumps(line, ensure_ascii=False), flush=True)
    if not answered:
        print("imgtfx predict: error: no image could be predicted.", file=sys.stderr)
        return 1
    return 0


def report(args) -> int:
    from imgtfx.pipeline import local_runner, steps
    from imgtfx.report import write_run_report

    log = os.path.join(
        local_runner.paths(args.root)["logs"], time.strftime("report-%Y%m%d-%H%M%S.log")
    )
    with steps.quiet_console(log, verbose=False):  # TensorFlow's and TFMA's notices
        page = write_run_report(args.root)
    print(f"report: {page}")
    return 0


def sample(args) -> int:
    from imgtfx.sample_data import write_digits_tree

    paths = write_digits_tree(args.output, image_size=args.image_size)
    print(json.dumps(paths, ensure_ascii=False))
    return 0
