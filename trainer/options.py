"""Trainer options, passed by the pipeline as the Trainer's `custom_config` (a JSON dict)."""

from __future__ import annotations

import dataclasses
from typing import Any

from imgtfx.components.examples.features import FeatureNames
from imgtfx.components.examples.reasons import MAX_PIXELS

SUPPORTED_IMAGE_SIZES = range(16, 513)
# Kept in step with trainer/backbones.py (a test checks): options stay light, no TensorFlow.
BACKBONES = (
    "small_cnn",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_v2_b0",
    "resnet50",
)
MIN_BACKBONE_IMAGE_SIZE = 32
MIXED_PRECISION = ("auto", "off")
HEADS = ("softmax", "cosine")


# predict_by: what the served prediction (`probabilities` and what follows it) comes from: the
# classifier, the neighbours' vote (trainer/retrieval.py label_scores), or both.
CLASSIFIER, NEIGHBOURS, BLEND = "classifier", "neighbours", "blend"
PREDICT_BY = (CLASSIFIER, NEIGHBOURS, BLEND)
# Beside an exported model: what its neighbour index holds and what building it cost (photos,
# dimensions, bytes, build_seconds; non_landmarks: the folder, its photos, the files not used).
INDEX_FILE = "neighbour_index.json"


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    """Attributes:
    image_size: images are resized to image_size x image_size.
    batch_size: examples per step.
    learning_rate: Adam's learning rate.
    filters: channels of each convolution block (the stem has the first block's).
    convs_per_block: convolutions in each block, before its max-pool.
    stem_stride: stride of the first convolution: 2 halves the picture before the blocks.
    dropout: dropout rate before the classifier.
    embedding_dim: a dense neck of this many units between the pooled features and the head,
      whose output is the model's embedding (the `embedding` output, the `embed` signature);
      0: the pooled features themselves are the embedding.
    neighbours: k, the nearest train photos each answer names and the neighbours' vote sums
      (an index of every train photo's embedding, built after training and saved in the
      model); 0 builds no index. 3 by default, the GLR2020 winner's k and the best measured on
      the real-shape contest tree: GAP 0.845 at k=3, 0.839 at 1, 0.832 at 5, 0.801 at 10
      (bench/results/retrieval-2026-12-05-k3.json; k=3 won on an earlier model too).
    predict_by: what the served prediction comes from: 'neighbours' (the label whose photos
      among the k nearest are most similar in sum), 'classifier' or 'blend' (a quarter the
      classifier's scores, three quarters the vote's: retrieval.BLEND_CLASSIFIER_SHARE); without
      an index, the classifier. Neighbours by default: on the real-shape contest tree (88,102
      photos, 300 steps) GAP 0.845 against the classifier's 0.001 and the blend's 0.840
      (bench/results/retrieval-2026-12-05-k3.json); blend never beat the vote there, even
      where the classifier reached 0.998.
    non_landmarks: a folder of photos of no landmark (local or a bucket): they join the
      neighbour search as a class that names nothing, and every answer's scores are multiplied
      by the share of its k nearest photos that are train photos (trainer/retrieval.py).
    non_landmarks_sha256: the digest of that folder's files, set by the run configuration: new
      photos in the same folder change the Trainer's cache key.
    min_confidence: an answer whose best score is under this abstains: its scores are zeros,
      class_index -1, label_name "" (no prediction; it takes no rank in GAP).
    augment: random zoom, shift, contrast and brightness on train batches.
    flip: random left-right flips (off by default: they change digits and text).
    class_weights: 'balanced' weighs classes by inverse frequency, 'none' does not.
    early_stopping_patience: evaluation rounds without improvement before training stops.
    max_pixels: the serving signatures refuse an image with more pixels (read from its header,
      before decoding) with an error for that image; the converter's limit by default. Lower it
      to bound the memory one request can take (decoding needs at least 3 bytes per pixel).
    features: feature names written by ImageExampleGen.
    backbone: small_cnn (the model above, trained from scratch) or a Keras Applications
      backbone (trainer/backbones.py) under global pooling and `head`.
    weights: a backbone's weights: 'none' (random), 'imagenet' (Keras' cache, never
      downloaded) or a weights file (local or gs://).
    weights_sha256: the weights file's digest, set by the run configuration: new weights at
      the same path change the Trainer's cache key.
    fine_tune_layers: after the head's steps, the backbone's last layers to train as well
      (BatchNorm stays frozen); -1: all of them.
    fine_tune_steps: steps of that second phase, after `train_steps`.
    fine_tune_learning_rate: the second phase's learning rate (default learning_rate / 10).
    weight_decay: decoupled weight decay (AdamW); 0 is Adam.
    label_smoothing: share of each label's target spread over the other classes (softmax head).
    head: the classifier on the pooled features: 'softmax' (a dense layer) or 'cosine' (cosine
      similarity to one unit vector per class, trained with an additive cosine margin:
      CosFace, the ArcFace family's margin that the served probabilities can carry).
    cosine_scale: the cosine head's logit scale s (probabilities are softmax(s * cos)).
    cosine_margin: the margin m taken off the true class's cosine in training.
    mixed_precision: 'auto' trains in mixed_float16 (softmax in float32) when a GPU is
      present, 'off' never.
    """

    image_size: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-3
    filters: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_block: int = 1
    stem_stride: int = 2
    dropout: float = 0.3
    embedding_dim: int = 0
    neighbours: int = 3
    predict_by: str = NEIGHBOURS
    non_landmarks: str = ""
    non_landmarks_sha256: str = ""
    min_confidence: float = 0.0
    augment: bool = True
    flip: bool = False
    class_weights: str = "none"
    early_stopping_patience: int = 5
    max_pixels: int = MAX_PIXELS
    features: FeatureNames = dataclasses.field(default_factory=FeatureNames)
    backbone: str = "small_cnn"
    weights: str = "none"
    weights_sha256: str = ""
    fine_tune_layers: int = 0
    fine_tune_steps: int = 0
    fine_tune_learning_rate: float | None = None
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    mixed_precision: str = "auto"
    head: str = "softmax"
    cosine_scale: float = 30.0
    cosine_margin: float = 0.2

    @property
    def pretrained(self) -> bool:
        """A backbone with weights from somewhere: its head trains first, the backbone frozen."""
        return self.backbone != "small_cnn" and self.weights != "none"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}."
            )
        if self.backbone == "small_cnn" and self.weights != "none":
            raise ValueError("small_cnn trains from scratch: give --weights with a backbone.")
        if self.backbone != "small_cnn" and self.image_size < MIN_BACKBONE_IMAGE_SIZE:
            raise ValueError(
                f"backbone {self.backbone} needs images of at least {MIN_BACKBONE_IMAGE_SIZE} "
                f"px (--image-size), got {self.image_size}."
            )
        if self.fine_tune_steps < 0 or self.fine_tune_layers < -1:
            raise ValueError("fine_tune_steps must be >= 0 and fine_tune_layers >= -1.")
        if self.fine_tune_steps and not self.pretrained:
            raise ValueError(
                "fine-tuning follows a pretrained backbone's head phase: give --weights."
            )
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("weight_decay must be >= 0 and label_smoothing in [0, 1).")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}.")
        if self.neighbours < 0:
            raise ValueError(f"--neighbours must be 0 or more, got {self.neighbours}.")
        if self.predict_by not in PREDICT_BY:
            raise ValueError(
                f"--predict-by must be one of {', '.join(PREDICT_BY)}, got {self.predict_by!r}."
            )
        if self.non_landmarks and not self.neighbours:
            raise ValueError("--non-landmarks join the neighbour search: --neighbours is 0.")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"--min-confidence must be in [0, 1], got {self.min_confidence}.")
        if self.embedding_dim < 0:
            raise ValueError(f"--embedding-dim must be 0 or more, got {self.embedding_dim}.")
        if self.cosine_scale <= 0 or not 0 <= self.cosine_margin < 1:
            raise ValueError("cosine_scale must be > 0 and cosine_margin in [0, 1).")
        if self.head == "cosine" and self.label_smoothing:
            raise ValueError(
                "label smoothing is for the softmax head; the cosine head has a margin."
            )
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}.")
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"--image-size must be between {SUPPORTED_IMAGE_SIZES.start} and "
                f"{SUPPORTED_IMAGE_SIZES.stop - 1} pixels, got {self.image_size}."
            )
        if not self.filters or self.convs_per_block < 1 or self.stem_stride < 1:
            raise ValueError("the model needs filters, convs_per_block >= 1, stem_stride >= 1.")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}.")
        if self.batch_size <= 0:
            raise ValueError(f"--batch-size must be positive, got {self.batch_size}.")
        if self.class_weights not in ("none", "balanced"):
            raise ValueError(
                f"class_weights must be 'none' or 'balanced', got {self.class_weights}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The options as the Trainer's custom_config carries them: all but `features`, which
        the Trainer reads from its Examples (training.run_fn)."""
        values = dataclasses.asdict(self)
        del values["features"]
        values["filters"] = list(self.filters)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainerOptions:
        values = dict(values or {})
        if "features" in values:
            values["features"] = FeatureNames.from_dict(values["features"])
        if "filters" in values:
            values["filters"] = tuple(int(f) for f in values["filters"])
        return cls(**values)
