"""ImageExampleGen: a FileBasedExampleGen that reads a labelled image folder tree."""

from __future__ import annotations

from tfx.components.example_gen import component, utils
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.proto import example_gen_pb2

from imgtfx.components.image_example_gen import driver, executor
from imgtfx.components.image_example_gen.options import ImageOptions


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
    ):
        """Args:
        input_base: the image root (a local folder or a gs:// URI).
        options: labelling, checking and feature-name options; defaults label by leaf folder.
        input_config: splits as folders under the root (pre-split trees, e.g. train/ and
          eval/); default: the whole root as one split.
        output_config: hash split sizes, used when input_config has one split; default
          train:eval = 4:1 on the image id (CSV) or relative path (folder labels).
        """
        if not input_base:
            raise ValueError("ImageExampleGen needs input_base, the folder holding the images.")
        options = options or ImageOptions()
        input_config = input_config or utils.make_default_input_config()
        if output_config is None:
            output_config = default_output_config(input_config, options)
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=options.to_custom_config(),
        )


def default_output_config(
    input_config: example_gen_pb2.Input, options: ImageOptions, eval_percent: int = 20
) -> example_gen_pb2.Output:
    """train/eval hash split by percent; the input splits as they are for pre-split trees."""
    if isinstance(input_config, example_gen_pb2.Input) and len(input_config.splits) > 1:
        return example_gen_pb2.Output()
    return hash_split_config(options, eval_percent)


def hash_split_config(options: ImageOptions, eval_percent: int = 20) -> example_gen_pb2.Output:
    if not 0 < eval_percent < 100:
        raise ValueError(f"eval percent must be between 1 and 99, got {eval_percent}.")
    return example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_percent),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
            ],
            partition_feature_name=options.partition_feature(),
        )
    )
