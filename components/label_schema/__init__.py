"""LabelSchema: pins the label domains of an inferred schema to ImageExampleGen's vocabulary."""

from imgtfx.components.label_schema.component import LabelSchema, curate_schema

__all__ = ["LabelSchema", "curate_schema"]
