"""Transform's module file: the images decoded and resized once, for every epoch after.

`tf.io.decode_image(..., expand_animations=False)` reads every format ImageExampleGen keeps
(JPEG, PNG, GIF, animated GIF, BMP: the `format` feature says which); `decode_jpeg` and
`decode_png`, as TFX's cifar10 example uses them, fail on a BMP or an animated GIF.
"""

import tensorflow as tf

IMAGE = "image_raw"  # ImageExampleGen's feature names (FeatureNames' defaults)
LABEL = "label"
SIZE = 32


def _decoded(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), [SIZE, SIZE])


def preprocessing_fn(inputs):
    # SchemaGen(infer_feature_shape=True): every feature is [batch, 1].
    images = tf.map_fn(
        _decoded,
        tf.reshape(inputs[IMAGE], [-1]),
        fn_output_signature=tf.TensorSpec([SIZE, SIZE, 3], tf.float32),
    )
    return {f"{IMAGE}_xf": images, LABEL: inputs[LABEL]}
