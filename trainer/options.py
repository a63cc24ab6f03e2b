"""Trainer options, passed by the pipeline as the Trainer's `custom_config` (a JSON dict)."""

from __future__ import annotations

import dataclasses
from typing import Any

from components.examples.features import FeatureNames
from components.examples.reasons import MAX_PIXELS

SUPPORTED_IMAGE_SIZES = range(16, 513)


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
    augment: random zoom, shift, contrast and brightness on train batches.
    flip: random left-right flips (off by default: they change digits and text).
    class_weights: 'balanced' weighs classes by inverse frequency, 'none' does not.
    early_stopping_patience: evaluation rounds without improvement before training stops.
    max_pixels: the serving signatures refuse an image with more pixels (read from its header,
      before decoding) with an error for that image; the converter's limit by default. Lower it
      to bound the memory one request can take (decoding needs at least 3 bytes per pixel).
    features: feature names written by ImageExampleGen.
    """

    image_size: int = 64
    batch_size: int = 32
    learning_rate: float = 1e-3
    filters: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_block: int = 1
    stem_stride: int = 2
    dropout: float = 0.3
    augment: bool = True
    flip: bool = False
    class_weights: str = "none"
    early_stopping_patience: int = 5
    max_pixels: int = MAX_PIXELS
    features: FeatureNames = dataclasses.field(default_factory=FeatureNames)

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"image size must be between {SUPPORTED_IMAGE_SIZES.start} and "
                f"{SUPPORTED_IMAGE_SIZES.stop - 1} pixels, got {self.image_size}."
            )
        if not self.filters or self.convs_per_block < 1 or self.stem_stride < 1:
            raise ValueError("the model needs filters, convs_per_block >= 1, stem_stride >= 1.")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}.")
        if self.batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {self.batch_size}.")
        if self.class_weights not in ("none", "balanced"):
            raise ValueError(
                f"class_weights must be 'none' or 'balanced', got {self.class_weights}."
            )

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
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
