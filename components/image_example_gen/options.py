"""Options of ImageExampleGen, carried to the executor inside `example_gen_pb2.CustomConfig`,
and the input splits of a pre-split tree.

The options ride as a packed `google.protobuf.Struct` (as tfx-addons' feast_examplegen does), so
they show up in ML Metadata and in a compiled Kubeflow spec as plain JSON.
"""

from __future__ import annotations

import dataclasses
import glob
import re
from typing import Any

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.examples.reasons import MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class ImageOptions:
    """How images are found, labelled, checked and written.

    Attributes:
      labels_csv: CSV mapping image id to label; when unset, labels come from the folder tree.
      id_column: the CSV column holding the image id (the file name without extension).
      label_column: the CSV column holding the label; when unset and the CSV has two columns,
        the column that is not `id_column`.
      label_names_csv: CSV of label -> display name (a header row, then the label as the labels
        CSV writes it and its name, like the contest's `category.csv` of
        `landmark_id,landmark_name`). The labels stay the classes; names are for people (report,
        `imgtfx predict`, serving's `label_display_name`) and override the names read from
        folders. When unset, a CSV label whose images all lie in one folder is named after it.
      label_level: which folder of an image's path (relative to the image root) names its label,
        as a Python index into the folders: -1 is the folder holding the file.
      max_pixels: images with more pixels are rejected before decoding (decompression bombs).
      max_reject_fraction: the component fails when more of the images it found are rejected.
      transcode_unsupported: images that TensorFlow cannot decode (WebP, TIFF, 1-bit BMP, ...) are
        re-encoded as PNG when true, rejected when false.
      gzip_level: zlib level of the gzipped TFRecords. JPEG/PNG/GIF bytes do not compress, so the
        default 0 keeps gzip framing (what TFX's readers expect) without the cost: measured 0.11
        vs 1.99 ms per 70 KB JPEG, files 1.5% larger. Raise it for BMP-heavy trees.
      decode_threads: threads that read and check images inside each Beam worker; 0 means one
        per core this process may use (its CPU affinity, and a container's CPU limit: a
        Kubeflow pod limited to 2 CPUs on a 64-core node gets 2).
      images_per_shard: the average number of examples per TFRecord file; a split of n images
        is hashed into ceil(n / images_per_shard) files.
      cover_every_split: after the hash split, a class that has no image in a split gets one
        (train first), moved from a split holding at least two of its images, so every class
        with at least two images is both learned and evaluated. The image moved is the one
        whose hash lies nearest that split; every other image keeps its hash split.
      follow_external_links: links whose target lies outside the image root are followed (a
        tree of links into a photo library); when false they are skipped as
        `link_outside_tree`. Links into the tree are never followed (`link_into_tree`).
      dedupe: copies of one picture (components/image_example_gen/duplicates.py): "group"
        puts each group of copies in one split and reports it in duplicates.jsonl;
        "keep-one" does so and keeps only the first of each group's exact copies (the others
        are skipped as `duplicate_image`); "off" neither groups nor reports.
      reject_conflicting_duplicates: every member of a group of copies filed under two or
        more labels is rejected (`conflicting_labels_duplicate`) instead of only reported.
      features: the feature names of the written examples.
    """

    labels_csv: str | None = None
    id_column: str = "id"
    label_column: str | None = None
    label_names_csv: str | None = None
    label_level: int = -1
    max_pixels: int = MAX_PIXELS
    max_reject_fraction: float = 0.2
    transcode_unsupported: bool = True
    images_per_shard: int = 1000
    gzip_level: int = 0
    decode_threads: int = 0
    cover_every_split: bool = True
    follow_external_links: bool = True
    dedupe: str = "group"
    reject_conflicting_duplicates: bool = False
    features: FeatureNames = dataclasses.field(default_factory=FeatureNames)

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ValueError(
                f"--max-reject-fraction must be between 0 and 1, got {self.max_reject_fraction}."
            )
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}.")
        if self.images_per_shard <= 0:
            raise ValueError(f"images_per_shard must be positive, got {self.images_per_shard}.")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError(f"gzip_level must be between 0 and 9, got {self.gzip_level}.")
        if self.dedupe not in DEDUPE_MODES:
            raise ValueError(f"dedupe must be one of {', '.join(DEDUPE_MODES)}, got {self.dedupe}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImageOptions:
        values = dict(values)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ImageExampleGen options: {sorted(unknown)}")
        features = FeatureNames.from_dict(values.pop("features", {}))
        for key in (
            "label_level",
            "max_pixels",
            "images_per_shard",
            "gzip_level",
            "decode_threads",
        ):
            if key in values:  # Struct stores every number as a float.
                values[key] = int(values[key])
        return cls(features=features, **values)

    def to_custom_config(self) -> example_gen_pb2.CustomConfig:
        struct = struct_pb2.Struct()
        json_format.ParseDict(self.to_dict(), struct)
        config = example_gen_pb2.CustomConfig()
        config.custom_config.Pack(struct)
        return config

    @classmethod
    def from_custom_config(cls, config: example_gen_pb2.CustomConfig | None) -> ImageOptions:
        if config is None or not config.HasField("custom_config"):
            return cls()
        struct = struct_pb2.Struct()
        if not config.custom_config.Unpack(struct):
            raise ValueError("ImageExampleGen custom_config must pack a google.protobuf.Struct.")
        return cls.from_dict(json_format.MessageToDict(struct))

    @classmethod
    def from_exec_properties(cls, exec_properties: dict[str, Any]):
        """(input_config, output_config, options) from the executor's or driver's
        exec_properties, where the protos arrive as JSON."""
        from tfx.types import standard_component_specs
        from tfx.utils import proto_utils

        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
        )
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
        )
        custom = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
        custom_config = None
        if custom:
            custom_config = example_gen_pb2.CustomConfig()
            proto_utils.json_to_proto(custom, custom_config)
        check_output_formats(
            exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY),
            exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY),
        )
        return input_config, output_config, cls.from_custom_config(custom_config)

    def partition_feature(self, output_config: example_gen_pb2.Output | None = None) -> str:
        """The feature whose hash picks an image's split: the output config's, else the CSV
        id, else the relative path."""
        name = output_config.split_config.partition_feature_name if output_config else ""
        if name:
            return name
        return self.features.id if self.labels_csv else self.features.path


def check_output_formats(data_format: int | None, file_format: int | None) -> None:
    """Raises ValueError, in one line, for an output FileBasedExampleGen's other executors
    write and this one does not: tf.Examples in gzipped TFRecords only (what every TFX
    consumer reads; the examples carry each image's encoded bytes, which Parquet or
    uncompressed records would hold no better)."""
    data_ok = data_format in (None, example_gen_pb2.FORMAT_TF_EXAMPLE)
    file_ok = file_format in (None, example_gen_pb2.FORMAT_TFRECORDS_GZIP)
    if not (data_ok and file_ok):
        asked = []
        if not data_ok:
            asked.append(
                f"output_data_format={_enum_name(example_gen_pb2.PayloadFormat, data_format)}"
            )
        if not file_ok:
            asked.append(
                f"output_file_format={_enum_name(example_gen_pb2.FileFormat, file_format)}"
            )
        raise ValueError(
            f"ImageExampleGen writes FORMAT_TF_EXAMPLE in FORMAT_TFRECORDS_GZIP only, got "
            f"{' and '.join(asked)}."
        )


def _enum_name(enum, value) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


DEDUPE_MODES = ("group", "keep-one", "off")

# tfx/types/standard_artifact_utils.py (TFX 1.16) refuses any other split name.
_TFX_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


EVAL_PERCENT = 20  # the eval share of the hash split, percent: its one home


def check_eval_percent(eval_percent: int) -> None:
    """Raises ValueError for an eval share no hash split can have."""
    if not 0 < eval_percent < 100:
        raise ValueError(f"--eval-percent must be between 1 and 99, got {eval_percent}.")


def input_config(split_folders=()) -> example_gen_pb2.Input:
    """ImageExampleGen's input splits: one per split folder (split_folders_config), else the
    whole root as one split."""
    if split_folders:
        return split_folders_config(list(split_folders))
    return example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]
    )


def split_folders_config(folders: list[str]) -> example_gen_pb2.Input:
    """Input splits for a pre-split tree, named as the Trainer and the Evaluator read them.

    Folders named train and eval keep their names. Otherwise the first folder becomes the
    train split and the second the eval split (training/validation, 학습/검증 ...); any further
    folder keeps its own name (converted and in the statistics, neither trained on nor
    evaluated), which TFX needs to be ASCII letters, digits, '-' and '_'.

    Raises:
      ValueError: fewer than two folders, a repeated folder, only one of train and eval, or a
        further folder whose name cannot name a TFX split.
    """
    folders = [f.strip().strip("/") for f in folders if f.strip().strip("/")]
    if len(set(folders)) != len(folders):
        raise ValueError(f"split folders must differ, got {folders}.")
    if {"train", "eval"} <= set(folders):
        names = folders
    elif len(folders) >= 2 and not {"train", "eval"} & set(folders):
        names = ["train", "eval", *folders[2:]]
    else:
        raise ValueError(
            "split folders must be train and eval, or two other folders (the first is trained "
            f"on, the second evaluated), got {folders}."
        )
    for name in names[2:]:
        if not _TFX_SPLIT_NAME.fullmatch(name):
            raise ValueError(
                f"split folder '{name}' cannot name a TFX split (ASCII letters, digits, - and _; "
                "the first two folders are named train and eval for you): rename it or leave "
                "it out of the split folders."
            )
    return example_gen_pb2.Input(
        splits=[
            example_gen_pb2.Input.Split(name=name, pattern=glob.escape(folder))
            for name, folder in zip(names, folders, strict=True)
        ]
    )
