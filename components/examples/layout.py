"""Where things lie in an Examples artifact (or an `imgtfx convert --output` folder):

  Split-<name>/data_tfrecord-<i>-of-<n>.gz   gzipped TFRecords of tf.train.Example, a split a folder
  labels.txt        the label vocabulary: label index i names line i
  label_names.json  a display name per label, for people
  report.json       counts that reconcile every file seen, per split and class
  rejects.jsonl     every file that did not become an example, and why
  duplicates.jsonl  every group of copies of one picture: its paths, labels, splits

Split folders are named by TFX (artifact_utils.get_split_uri), never by hand here. An exported
model's folder holds labels.txt and label_names.json too (trainer/serving.py export).
"""

from __future__ import annotations

import os

LABELS_FILE = "labels.txt"
LABEL_NAMES_FILE = "label_names.json"
REPORT_FILE = "report.json"
REJECTS_FILE = "rejects.jsonl"
DUPLICATES_FILE = "duplicates.jsonl"
# TFX's shard prefix, tfx/components/example_gen/write_split.py DEFAULT_FILE_NAME (1.16); held
# here so that readers need not import Beam (tests/components/examples checks it is TFX's).
SHARD_PREFIX = "data_tfrecord"


def shard_name(shard: int, num_shards: int) -> str:
    """The file name of shard `shard` of `num_shards` in a split folder."""
    return f"{SHARD_PREFIX}-{shard:05d}-of-{num_shards:05d}.gz"


def split_names_in(uri: str) -> list[str]:
    """The splits an Examples folder holds: its Split-<name> folders, as TFX names them."""
    import tensorflow as tf

    prefix = "Split-"
    return sorted(
        name.rstrip("/")[len(prefix) :]
        for name in tf.io.gfile.listdir(uri)
        if name.startswith(prefix)
    )


def split_uri(examples, split: str, split_names=None) -> str:
    """The folder of `split` in `examples`: an Examples artifact (with its split names), or the
    URI of one, whose split names are `split_names` or else the split folders it holds.

    Raises:
      ValueError: the artifact has no such split (TFX's message).
    """
    from tfx.types import artifact_utils, standard_artifacts

    if isinstance(examples, str):
        if split_names is None:
            split_names = split_names_in(examples)
        uri, examples = examples, standard_artifacts.Examples()
        examples.uri = uri
        examples.split_names = artifact_utils.encode_split_names(list(split_names))
    return artifact_utils.get_split_uri([examples], split)


def split_files(examples, split: str, split_names=None) -> str:
    """The file pattern of one split's shards (what tf.data and TFX's readers glob)."""
    return os.path.join(split_uri(examples, split, split_names), "*.gz")


def examples_uri_of(split_pattern: str) -> str:
    """The artifact a split's file pattern lies in: TFX hands the Trainer `<uri>/Split-<name>/*`
    (fn_args.train_files) and nothing else of the artifact.

    Raises:
      ValueError: the pattern is not a split's files.
    """
    folder = os.path.dirname(split_pattern.rstrip("/"))
    if not os.path.basename(folder).startswith("Split-"):
        raise ValueError(f"{split_pattern} is not the files of an Examples split (Split-<name>/*).")
    return os.path.dirname(folder)
