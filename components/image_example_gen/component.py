"""ImageExampleGen: a FileBasedExampleGen that reads a labelled image folder tree."""

from __future__ import annotations

from tfx.components.example_gen import component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2, range_config_pb2

from imgtfx.components import code_version
from imgtfx.components.image_example_gen import driver, executor, splits
from imgtfx.components.image_example_gen.options import (
    EVAL_PERCENT,
    ImageOptions,
    check_eval_percent,
    check_output_formats,
)
from imgtfx.components.image_example_gen.options import (
    input_config as default_input_config,
)

# The code ImageExampleGen runs (under the source root, components/code_version.py): its hash
# is the component's code_version, so TFX's cache reruns it after an upgrade or an edit.
SOURCES = (
    "components/image_example_gen",
    "components/image_files.py",
    "components/fingerprint.py",
    "components/file_io.py",
    "components/counters.py",
    "components/examples",
)


class ImageExampleGen(component.FileBasedExampleGen):
    """Turns `input_base/**/<id>.<ext>` (plus an optional labels CSV) into tf.Example splits.

    Outputs one `Examples` artifact with `Split-<name>/` gzipped TFRecords, `labels.txt` (the label
    vocabulary), `label_names.json` (a display name per label, for people), `report.json` (counts
    that reconcile every file seen) and `rejects.jsonl` (every file that did not become an
    example, and why).
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.Driver

    def __init__(
        self,
        input_base: str,
        options: ImageOptions | None = None,
        input_config: example_gen_pb2.Input | data_types.RuntimeParameter | None = None,
        output_config: example_gen_pb2.Output | data_types.RuntimeParameter | None = None,
        split_folders: tuple[str, ...] = (),
        eval_percent: int = EVAL_PERCENT,
        range_config: range_config_pb2.RangeConfig | data_types.RuntimeParameter | None = None,
        output_data_format: int = example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format: int = example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    ):
        """Args:
        input_base: the image root (a local folder or a gs:// URI).
        options: labelling, checking and feature-name options; defaults label by leaf folder.
        input_config: splits as patterns under the root (TFX's Input); default: one split per
          `split_folders`, else the whole root as one split.
        output_config: TFX's Output; default: for one input split, a hash split train:eval of
          (100 - eval_percent):eval_percent on the image id (CSV) or relative path (folder
          labels); for split folders, the input splits as they are.
        split_folders: top folders that are splits already (the first trained on, the second
          evaluated; options.split_folders_config), instead of `input_config`.
        eval_percent: the eval share of the default hash split.
        range_config: TFX's RangeConfig: the spans of a `{SPAN}` pattern to read (default: the
          latest), as for any FileBasedExampleGen.
        output_data_format, output_file_format: FileBasedExampleGen's; tf.Examples in gzipped
          TFRecords are the one output (anything else is refused here).

        Raises:
          ValueError: conflicting or unsupported arguments, in one line.
        """
        if not input_base:
            raise ValueError("ImageExampleGen needs input_base, the folder holding the images.")
        if split_folders and input_config is not None:
            raise ValueError("give ImageExampleGen split_folders or input_config, not both.")
        options = options or ImageOptions()
        input_config = input_config or default_input_config(split_folders)
        check_output_formats(output_data_format, output_file_format)
        if output_config is None:
            output_config = default_output_config(input_config, options, eval_percent)
        if isinstance(output_config, example_gen_pb2.Output):
            splits.check_partition_feature(
                options.partition_feature(output_config), options.features
            )
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=options.to_custom_config(),
            range_config=range_config,
            output_data_format=output_data_format,
            output_file_format=output_file_format,
        )
        code_version.stamp(self, SOURCES)


def default_output_config(
    input_config: example_gen_pb2.Input, options: ImageOptions, eval_percent: int = EVAL_PERCENT
) -> example_gen_pb2.Output:
    """train/eval hash split by percent; the input splits as they are for pre-split trees."""
    if isinstance(input_config, example_gen_pb2.Input) and len(input_config.splits) > 1:
        return example_gen_pb2.Output()
    return hash_split_config(options, eval_percent)


def hash_split_config(
    options: ImageOptions, eval_percent: int = EVAL_PERCENT
) -> example_gen_pb2.Output:
    check_eval_percent(eval_percent)
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_percent),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
            ],
            partition_feature_name=options.partition_feature(),
        )
    )
