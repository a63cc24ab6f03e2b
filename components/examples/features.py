"""The features of each tf.train.Example ImageExampleGen writes, by name (names are options).

Every reader after the converter (the Trainer, LabelSchema, the report) takes the names from
the Examples artifact itself, as its report.json records the conversion's options
(FeatureNames.of_report, read_feature_names): one route, whatever the pipeline was told. Only
what is built before the examples exist (the eval config, the statistics options) takes them
from the run's configuration.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgtfx.components.examples.conversion_report import ConversionReport


# The values of the `format` feature: what an example's image is encoded as, every one read by
# tf.io.decode_image(..., expand_animations=False) (decode.py), not every one by decode_jpeg.
IMAGE_FORMATS = ("bmp", "gif", "jpeg", "png")


@dataclasses.dataclass(frozen=True)
class FeatureNames:
    """Names of the features in each written `tf.train.Example`."""

    image: str = "image_raw"
    label: str = "label"
    label_name: str = "label_name"
    id: str = "id"
    path: str = "path"
    height: str = "height"
    width: str = "width"
    channels: str = "channels"
    format: str = "format"
    source_format: str = "source_format"
    orientation: str = "orientation"  # the EXIF orientation the file had (image is upright)
    # The picture's perceptual fingerprint (29 bytes, 225 bits: fingerprint.fingerprint), by
    # which copies were grouped; not a model input (statistics and the trainer leave it out).
    image_hash: str = "image_hash"

    def __post_init__(self) -> None:
        names = dataclasses.astuple(self)
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"feature names must be distinct and non-empty, got {names}.")

    def to_json(self) -> str:
        """As a JSON object, the form an execution property carries."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> FeatureNames:
        return cls(**(values or {}))

    @classmethod
    def from_json(cls, text: str | None) -> FeatureNames:
        return cls.from_dict(json.loads(text) if text else None)

    @classmethod
    def of_report(cls, report: ConversionReport) -> FeatureNames:
        """The names a conversion wrote, from its report.json (its options' features)."""
        return cls.from_dict(report.options.get("features"))


def read_feature_names(examples_uri: str) -> FeatureNames:
    """The feature names of the examples in `examples_uri` (an Examples artifact or an
    `imgtfx convert` folder, local or in a bucket), from its report.json."""
    from imgtfx.components.examples.conversion_report import read_report

    return FeatureNames.of_report(read_report(examples_uri))
