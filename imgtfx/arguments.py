"""The command line's flags: every command, its options, their help and defaults. What the
flags become (the run's configuration) is imgtfx/cli.py's."""

from __future__ import annotations

import argparse
import dataclasses

from imgtfx import commands
from imgtfx.components.baseline_evaluator.environment import DEFAULT_METADATA_SERVICE
from imgtfx.components.image_example_gen.options import ImageOptions
from imgtfx.pipeline import configs
from imgtfx.pipeline.run_config import RunConfig
from imgtfx.trainer.options import BACKBONES, HEADS, PREDICT_BY, TrainerOptions


def _add_input_args(parser: argparse.ArgumentParser, images_required: bool = True) -> None:
    parser.add_argument(
        "--images",
        required=images_required,
        help="image root folder, or gs:// URI (compile: also minio:// or s3://)",
    )
    parser.add_argument("--labels", help="labels CSV (id,label); default: labels from folders")
    parser.add_argument("--id-column", help="CSV column of image ids (file stems)")
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
        help="folder level naming the label, Python index over the path's folders (-1: the "
        "folder holding the image)",
    )
    parser.add_argument("--eval-percent", type=int, help="hash split eval share")
    parser.add_argument(
        "--split-folders",
        help="comma-separated top folders that are splits already: train,eval, or any two "
        "names (the first is trained on, the second evaluated, e.g. training,validation)",
    )
    parser.add_argument(
        "--max-reject-fraction",
        type=float,
        help="fail when more of the files found are rejected (broken, unlabeled ...)",
    )
    parser.add_argument(
        "--no-follow-external-links",
        dest="follow_external_links",
        action="store_const",
        const=False,
        help="skip links whose target is outside the image root (default: follow them); "
        "links into the tree are never followed",
    )
    parser.add_argument(
        "--dedupe",
        choices=["group", "keep-one", "off"],
        help="copies of one picture: group keeps each group in one split and reports it "
        "(duplicates.jsonl); keep-one also keeps one of each group's exact copies; off: neither",
    )
    parser.add_argument(
        "--reject-conflicting-duplicates",
        action="store_const",
        const=True,
        help="reject every copy of a picture filed under two or more labels (default: report)",
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
    parser.add_argument("--train-steps", type=int, help="training steps (batches)")
    parser.add_argument(
        "--image-size",
        type=int,
        help="side of the square the images are resized to, pixels"
        + (f"; {configs.SAMPLE_IMAGE_SIZE} with --sample" if sample else ""),
    )
    parser.add_argument("--batch-size", type=int, help="images per training step")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        help="overall eval accuracy needed to bless and push the model",
    )
    parser.add_argument(
        "--min-class-accuracy",
        type=float,
        help="also require this accuracy on every class (default: no per-class floor)",
    )
    parser.add_argument(
        "--min-gap",
        type=float,
        help="also require this GAP (global average precision, the landmark contests' score)",
    )
    parser.add_argument(
        "--class-weights",
        choices=["none", "balanced"],
        help="balanced: weigh each class by the inverse of its size (uneven classes)",
    )
    parser.add_argument(
        "--flip", action="store_const", const=True, help="random left-right flips in training"
    )
    parser.add_argument(
        "--backbone",
        choices=BACKBONES,
        help="small_cnn (trained from scratch) or a Keras Applications backbone",
    )
    parser.add_argument(
        "--weights",
        metavar="none|imagenet|PATH",
        help="the backbone's weights: random, Keras' cache (never downloaded), or a weights file "
        "(local or gs://; the backbone without its top, as Keras Applications reads it)",
    )
    parser.add_argument(
        "--fine-tune-layers",
        type=int,
        help="after the head's steps, also train the backbone's last N layers (-1: all)",
    )
    parser.add_argument(
        "--fine-tune-steps", type=int, help="steps of fine-tuning, after --train-steps"
    )
    parser.add_argument(
        "--fine-tune-learning-rate", type=float, help="default: the learning rate / 10"
    )
    parser.add_argument("--weight-decay", type=float, help="AdamW's weight decay")
    parser.add_argument(
        "--label-smoothing",
        type=float,
        help="softmax head: the target's share spread over the other classes",
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        help="the classifier: a dense softmax, or cosine similarities trained with a margin "
        "(CosFace; for many classes of few photos)",
    )
    neck = "a dense neck of N units before the head: the model's embedding (0: the pooling)"
    parser.add_argument("--embedding-dim", type=int, metavar="N", help=neck)
    near = "the exported model names each image's k nearest train photos (0: no index)"
    parser.add_argument("--neighbours", type=int, metavar="K", help=near)
    by = "the prediction from the classifier, the k nearest train photos' vote, or both (1:3)"
    parser.add_argument("--predict-by", choices=PREDICT_BY, help=by)
    nl = "a folder of photos of no landmark: answers that look like them lose confidence"
    parser.add_argument("--non-landmarks", metavar="DIR", help=nl)
    parser.add_argument("--min-confidence", type=float, metavar="X", help="answers under X abstain")
    parser.add_argument("--cosine-margin", type=float, help="the cosine head's margin m")
    parser.add_argument("--cosine-scale", type=float, help="the cosine head's logit scale s")
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "off"],
        help="auto: mixed_float16 when a GPU is present",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const=False,
        help="no training augmentation",
    )


# The options that set a field of the run's configuration: {dest: (the dataclass, its field)}.
# argparse leaves them None when not given, and the dataclass's own default applies: one home
# for each default, which the help shows.
FIELDS = {
    "labels": (ImageOptions, "labels_csv"),
    "id_column": (ImageOptions, "id_column"),
    "label_column": (ImageOptions, "label_column"),
    "label_names": (ImageOptions, "label_names_csv"),
    "label_level": (ImageOptions, "label_level"),
    "max_reject_fraction": (ImageOptions, "max_reject_fraction"),
    "follow_external_links": (ImageOptions, "follow_external_links"),
    "dedupe": (ImageOptions, "dedupe"),
    "reject_conflicting_duplicates": (ImageOptions, "reject_conflicting_duplicates"),
    "eval_percent": (RunConfig, "eval_percent"),
    "train_steps": (RunConfig, "train_steps"),
    "min_accuracy": (RunConfig, "min_accuracy"),
    "min_class_accuracy": (RunConfig, "min_class_accuracy"),
    "min_gap": (RunConfig, "min_gap"),
    **{
        name: (TrainerOptions, name)
        for name in (
            "image_size", "batch_size", "augment", "flip", "class_weights", "backbone",
            "weights", "fine_tune_layers", "fine_tune_steps", "fine_tune_learning_rate",
            "weight_decay", "label_smoothing", "head", "cosine_margin", "cosine_scale",
            "mixed_precision", "embedding_dim", "neighbours", "predict_by", "non_landmarks",
            "min_confidence",
        )
    },
}  # fmt: skip


def field_default(dest: str):
    """The default of the field option `dest` sets (FIELDS): its dataclass's."""
    cls, name = FIELDS[dest]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def given(args, cls) -> dict:
    """The fields of `cls` that the command line's options set (the others keep their
    defaults)."""
    return {
        name: getattr(args, dest)
        for dest, (owner, name) in FIELDS.items()
        if owner is cls and getattr(args, dest, None) is not None
    }


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default (a field option's from its dataclass), unless it has none
    or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if action.dest in FIELDS and default is None:
            default = field_default(action.dest)
        if (
            not action.option_strings
            or "default" in text
            or default in (None, [], "", argparse.SUPPRESS)
            or isinstance(default, bool)
        ):
            return text
        shown = str(default).replace("%", "%%")
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


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
    subcommands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = subcommands.add_parser("convert", help="image tree (+ labels CSV) -> TFRecord examples")
    _add_input_args(p)
    p.add_argument("--output", required=True, help="output folder")
    p.set_defaults(func=commands.convert)

    p = subcommands.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)")
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
    p.set_defaults(func=commands.run)

    p = subcommands.add_parser(
        "compile",
        help="compile the pipeline for Kubeflow: .yaml for open-source KFP, .json for Vertex",
    )
    p.add_argument(
        "--pipeline-root",
        help="artifact root: gs://, s3:// or minio://BUCKET/PATH (.json: required, gs:// only). "
        "Open-source KFP takes the root from the run, else the namespace's default (a "
        "profile's own on multi-user Kubeflow): leave it out there, or give the same to "
        "`imgtfx submit`",
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
    p.add_argument(
        "--serving-dir",
        help="push destination (default PIPELINE_ROOT/serving; with no root, the Pusher's "
        "pushed_model artifact under the run's root)",
    )
    p.add_argument(
        "--metadata-service",
        default=DEFAULT_METADATA_SERVICE,
        help=".yaml only: host:port of KFP's metadata gRPC service, where the Evaluator finds "
        "the latest blessed model; 'none' for no baseline (default: %(default)s)",
    )
    p.add_argument(
        "--object-store-secret",
        metavar="NAME[,endpoint=HOST:PORT][,region=R][,accessKeyKey=K][,secretKeyKey=K]"
        "[,disableSSL=true]",
        help=".yaml only: the pipeline root's store: the Kubernetes secret with its keys "
        "(default keys accesskey, secretkey), and where it is. The Evaluator copies its "
        "baseline model out of minio:// or s3:// with it; for an s3:// root (required there, "
        "with region=) every task gets its keys and region, which the KFP launcher reads, and "
        "an endpoint= writes the kfp-launcher providers entry beside the package. Default: "
        "mlpipeline-minio-artifact for KFP's own store; 'none' for none",
    )
    p.add_argument(
        "--object-store-endpoint",
        help=".yaml only: the root store's URL when the pods cannot find it themselves (KFP's "
        "own is found as the launcher finds it: seaweedfs.kubeflow, or minio-service), e.g. "
        "http://minio.example:9000",
    )
    p.add_argument(
        "--data-secret",
        metavar="NAME[,endpoint=HOST:PORT][,region=R][,accessKeyKey=K][,secretKeyKey=K]"
        "[,disableSSL=true]",
        help=".yaml only: Kubernetes secret with the keys of the store an image tree or CSV on "
        "s3:// or minio:// is in, which ImageExampleGen copies it out of (fields as KFP's "
        "providers config spells them; default keys accesskey, secretkey). Default: the "
        "root store's secret for data in the root's store, KFP's mlpipeline-minio-artifact "
        "for minio://; 'none' for none. See docs/guides/kubeflow.md, 'Data in your own bucket'",
    )
    p.add_argument("--trainer-gpus", type=int, default=0, help="GPUs for the Trainer's step")
    p.add_argument(
        "--trainer-gpu-type",
        help="accelerator type (default: nvidia.com/gpu for .yaml, NVIDIA_TESLA_T4 for .json)",
    )
    p.add_argument("--trainer-cpu", type=float, help="CPU limit of the Trainer's step")
    p.add_argument("--trainer-memory", help="memory limit of the Trainer's step, e.g. 16G")
    p.set_defaults(func=commands.compile_spec)

    p = subcommands.add_parser(
        "submit", help="start a run of a .yaml package on Kubeflow Pipelines"
    )
    p.add_argument("package", help="the .yaml from `imgtfx compile`")
    p.add_argument(
        "--host",
        help="KFP endpoint, e.g. http://ml-pipeline-ui.kubeflow (default: kfp's own: in a pod, "
        "the in-cluster API with the pod's service-account token)",
    )
    p.add_argument(
        "--pipeline-root",
        help="where the run's artifacts go: gs://, s3:// or minio://BUCKET/PATH (default: the "
        "one the package was compiled with, else the namespace's, from its kfp-launcher "
        "ConfigMap: a profile's own on multi-user Kubeflow)",
    )
    p.add_argument(
        "--token-file",
        help="a file holding a bearer token for the KFP API (multi-user Kubeflow from outside "
        "the cluster); default: kfp's own (in a pod, its service account's)",
    )
    p.add_argument("--images", help="image root for this run (default: the package's)")
    p.add_argument("--train-steps", type=int, help="training steps (default: the package's)")
    p.add_argument("--run-name", help="the run's name in the KFP UI (default: kfp's)")
    p.add_argument("--experiment", help="experiment name (default: kfp's Default)")
    p.add_argument("--namespace", help="profile namespace, on multi-user Kubeflow")
    p.set_defaults(func=commands.submit_run)

    p = subcommands.add_parser("predict", help="predict images with a trained or pushed model")
    p.add_argument("--model", required=True, help="SavedModel folder, or ROOT/serving")
    p.add_argument(
        "--top-k", type=int, default=3, help="labels listed per image, most likely first"
    )
    p.add_argument(
        "--submission",
        metavar="CSV",
        help="write the contest's submission instead: id,landmark_id,conf, one row per image "
        "(id: the file name without extension; an image that cannot be predicted gets an "
        "empty row and a line on stderr)",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR")
    p.set_defaults(func=commands.predict)

    p = subcommands.add_parser("report", help="(re)write ROOT/report/index.html for a run")
    p.add_argument("root", metavar="ROOT")
    p.set_defaults(func=commands.report)

    p = subcommands.add_parser("sample", help="write the built-in sample image tree (digits)")
    p.add_argument("--output", required=True, help="folder to write the tree and its CSV to")
    p.add_argument("--image-size", type=int, default=32, help="side of each digit image, pixels")
    p.set_defaults(func=commands.sample)
    return parser
