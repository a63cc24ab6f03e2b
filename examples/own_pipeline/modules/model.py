"""Trainer's module file: a small Keras CNN on Transform's images.

The number of classes comes from the curated schema (LabelSchema sets `label`'s range from the
label vocabulary); the serving signature takes serialized tf.Examples as ImageExampleGen writes
them, so the Evaluator and BulkInferrer read the same examples as the rest of the pipeline.
"""

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

IMAGE = "image_raw_xf"
LABEL = "label"


def _dataset(fn_args, files, transform_output, batch_size: int = 16) -> tf.data.Dataset:
    return fn_args.data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL),
        transform_output.transformed_metadata.schema,
    ).map(lambda features, label: (features[IMAGE], tf.reshape(label, [-1])))


def _classes(schema_path: str) -> int:
    schema = tfx.utils.parse_pbtxt_file(schema_path, schema_pb2.Schema())
    (label,) = [feature for feature in schema.feature if feature.name == LABEL]
    return label.int_domain.max + 1


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    classes = _classes(fn_args.schema_path)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(32, 32, 3), name=IMAGE),
            tf.keras.layers.Conv2D(16, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Conv2D(32, 3, activation="relu"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        _dataset(fn_args, fn_args.train_files, transform_output),
        steps_per_epoch=fn_args.train_steps,
        validation_data=_dataset(fn_args, fn_args.eval_files, transform_output),
        validation_steps=fn_args.eval_steps,
    )
    model.tft_layer = transform_output.transform_features_layer()
    raw_spec = transform_output.raw_feature_spec()
    raw_spec.pop(LABEL)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, raw_spec))
        return {"probabilities": model(transformed[IMAGE])}

    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        signatures={"serving_default": serve_examples.get_concrete_function()},
    )
