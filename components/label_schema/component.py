"""LabelSchema: SchemaGen's inferred schema, with label domains taken from the label vocabulary.

SchemaGen infers the label's range from the statistics it saw, so a class absent from one run's
data would make the next run's examples look anomalous, or pass unnoticed. The vocabulary written
by ImageExampleGen is the truth: `label` is an int in [0, n) and `label_name` one of the names.
The image bytes feature is marked as an image domain so that validation does not treat it as text,
and the features whose values one run sees by chance (orientation, format, source_format; id
and path, whose values a small run can take for a vocabulary) get the domains every run may
have.
"""

import os

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from imgtfx.components.examples.features import IMAGE_FORMATS, FeatureNames, read_feature_names
from imgtfx.components.examples.vocabulary import read_vocabulary

SCHEMA_FILE = "schema.pbtxt"


def curate_schema(
    schema: schema_pb2.Schema, vocabulary: list[str], names: FeatureNames = FeatureNames()
) -> schema_pb2.Schema:
    """Returns a copy of `schema` with label and image domains set from the vocabulary."""
    curated = schema_pb2.Schema()
    curated.CopyFrom(schema)
    features = {f.name: f for f in curated.feature}
    if names.label in features:
        label = features[names.label]
        label.ClearField("domain_info")
        label.int_domain.min = 0
        label.int_domain.max = len(vocabulary) - 1
        label.int_domain.is_categorical = True
    if names.label_name in features:
        label_name = features[names.label_name]
        label_name.ClearField("domain_info")
        label_name.domain = names.label_name
        curated.ClearField("string_domain")
        for domain in schema.string_domain:
            if domain.name != names.label_name:
                curated.string_domain.add().CopyFrom(domain)
        domain = curated.string_domain.add(name=names.label_name)
        domain.value.extend(vocabulary)
    if names.image in features:
        image = features[names.image]
        image.ClearField("domain_info")
        image.image_domain.SetInParent()
    # What one run saw by chance is no rule for the next: a later sideways phone photo
    # (orientation 6) or a GIF would be flagged as an anomaly under SchemaGen's inferred domains.
    if names.orientation in features:
        orientation = features[names.orientation]
        orientation.ClearField("domain_info")
        orientation.int_domain.min, orientation.int_domain.max = 1, 8  # EXIF's orientations
    _string_domain(curated, features.get(names.format), list(IMAGE_FORMATS))
    _string_domain(curated, features.get(names.source_format), None)  # any format read
    for unique in (names.id, names.path):  # one value an image: never a vocabulary
        _string_domain(curated, features.get(unique), None)
    return curated


def _string_domain(schema: schema_pb2.Schema, feature, values: list[str] | None) -> None:
    """`feature`'s string domain set to `values`, or removed (any value) for None."""
    if feature is None:
        return
    domain_name = feature.domain or feature.name
    feature.ClearField("domain_info")
    kept = [d for d in schema.string_domain if d.name != domain_name]
    schema.ClearField("string_domain")
    schema.string_domain.extend(kept)
    if values is not None:
        feature.domain = domain_name
        schema.string_domain.add(name=domain_name).value.extend(values)


@component
def LabelSchema(  # noqa: N802 - a TFX component, named like one
    schema: InputArtifact[standard_artifacts.Schema],
    examples: InputArtifact[standard_artifacts.Examples],
    curated_schema: OutputArtifact[standard_artifacts.Schema],
) -> None:
    """Writes `curated_schema`: `schema` with label domains from `examples`' labels.txt, for
    the feature names the examples carry (read_feature_names)."""
    inferred = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE))
    vocabulary = read_vocabulary(examples.uri)
    curated = curate_schema(inferred, vocabulary, read_feature_names(examples.uri))
    tf.io.gfile.makedirs(curated_schema.uri)
    tfdv.write_schema_text(curated, os.path.join(curated_schema.uri, SCHEMA_FILE))
