"""ImageExampleGen: a labelled image folder tree (plus optional labels CSV) as TFX Examples."""

from components.image_example_gen.component import ImageExampleGen, hash_split_config
from components.image_example_gen.options import FeatureNames, ImageOptions
from components.image_example_gen.outputs import read_report, read_vocabulary

__all__ = [
    "FeatureNames",
    "ImageExampleGen",
    "ImageOptions",
    "hash_split_config",
    "read_report",
    "read_vocabulary",
]
