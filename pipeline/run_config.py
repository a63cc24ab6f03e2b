"""One run's configuration: what to convert, train and bless, built and validated once (by the
command line, or by whoever calls the runners) and taken as it is by every runner:
`local_runner.run(config, root)`, `kubeflow.runner.compile(config, target)`, and through them
`pipeline.create_pipeline(config, ...)`.

Where a run's artifacts go is the runner's business (a local root, a Kubeflow target), never
the configuration's. Light: no TFX or TensorFlow is imported, so a bad value is answered at
once.
"""

from __future__ import annotations

import dataclasses
import json

from imgtfx.components.image_example_gen import options as image_options
from imgtfx.components.image_example_gen.options import EVAL_PERCENT, ImageOptions
from imgtfx.pipeline import configs
from imgtfx.trainer.options import TrainerOptions

# The values a compiled pipeline takes at submit time (create_pipeline(runtime_parameters=True)):
# the image root, and the TrainArgs as JSON ('{"num_steps": 2000}'): TFX 1.16 on KFP v2 passes a
# RuntimeParameter only as a whole execution property, not inside a proto field.
IMAGES_PARAMETER = "images"
TRAIN_ARGS_PARAMETER = "train_args"


def train_args_json(train_steps: int) -> str:
    """The TRAIN_ARGS_PARAMETER value for `train_steps`."""
    return json.dumps({"num_steps": int(train_steps)})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Attributes:
    images: the image root: a local folder, or a gs:// (minio://, s3:// on Kubeflow) URI.
    image_options: how images are found, labelled, checked and written (the labels CSV too).
    trainer_options: the model and its training (the Trainer reads the feature names from
      the examples it is given).
    split_folders: top folders that are splits already (the first trained on, the second
      evaluated); empty: one tree, hash-split by `eval_percent`.
    eval_percent: the eval share of the hash split.
    train_steps: training steps (batches).
    eval_steps: eval batches per evaluation round during training.
    min_accuracy: the overall eval accuracy a model needs to be blessed and pushed.
    min_class_accuracy: opt-in: the accuracy every class needs as well (None: no floor).
    min_gap: opt-in: the overall GAP (global average precision) a model needs as well.
    beam_args: Beam options of the data steps (Dataflow, Flink, Spark ...).
    pipeline_name: the pipeline's name in ML Metadata and on Kubeflow.
    """

    images: str
    image_options: ImageOptions = ImageOptions()
    trainer_options: TrainerOptions = TrainerOptions()
    split_folders: tuple[str, ...] = ()
    eval_percent: int = EVAL_PERCENT
    train_steps: int = configs.TRAIN_STEPS
    eval_steps: int = configs.EVAL_STEPS
    min_accuracy: float = configs.MIN_ACCURACY
    min_class_accuracy: float | None = None
    min_gap: float | None = None
    beam_args: tuple[str, ...] = configs.BEAM_PIPELINE_ARGS
    pipeline_name: str = configs.PIPELINE_NAME

    def __post_init__(self) -> None:
        """Raises ValueError, in the command line's words, for a value no run can use."""
        if not self.images:
            raise ValueError("give the image root (--images), the folder holding the images.")
        object.__setattr__(self, "split_folders", tuple(self.split_folders))
        object.__setattr__(self, "beam_args", tuple(self.beam_args))
        if self.split_folders:
            image_options.split_folders_config(list(self.split_folders))  # raises for bad ones
        image_options.check_eval_percent(self.eval_percent)
        for name in ("train_steps", "eval_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}."
                )
        for name in ("min_accuracy", "min_class_accuracy", "min_gap"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be between 0 and 1, got {value}."
                )

    @property
    def data_uris(self) -> tuple[str, ...]:
        """What ImageExampleGen reads: the image root and the CSVs the options name."""
        options = self.image_options
        return tuple(u for u in (self.images, options.labels_csv, options.label_names_csv) if u)

    @property
    def store_uris(self) -> tuple[str, ...]:
        """What the steps read from the users' stores: data_uris and the Trainer's
        non-landmarks folder (one data secret reads them on Kubeflow)."""
        return (*self.data_uris, *filter(None, [self.trainer_options.non_landmarks]))

    def input_config(self):
        """ImageExampleGen's input splits (options.input_config)."""
        return image_options.input_config(self.split_folders)

    def thresholds(self) -> dict:
        """What blessing needs, as summary.json and the report state it."""
        return {
            "min_accuracy": self.min_accuracy,
            "max_accuracy_drop": configs.MAX_ACCURACY_DROP,
            "min_class_accuracy": self.min_class_accuracy,
            "min_gap": self.min_gap,
        }
