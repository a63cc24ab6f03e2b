"""Pretrained backbones: Keras Applications models, built offline, with their weights from a file.

Each backbone is the Keras Applications model without its top (`include_top=False`), its own
preprocessing inside the model, so that serving still feeds pixels as decoded ([0, 255] RGB).
Weights (`TrainerOptions.weights`):
  none      random: the whole network trains from the first step.
  imagenet  Keras' cache (~/.keras/models/<file>, the file Keras Applications downloads once on a
            machine with a network); never downloaded here: a missing file is an error.
  PATH      a weights file as Keras Applications itself reads it: the backbone without its
            top, as Keras caches ImageNet weights (`*_notop.h5`) or as `save_weights` writes it
            for that backbone (HDF5 `.h5`, or a TensorFlow checkpoint). Local or any URI
            tf.io.gfile reads (gs://). Convolution weights do not depend on the input size, so
            a file saved at 224 px loads at any `image_size`.
A file that does not fit (another architecture, another width) is one error, before training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile

import tensorflow as tf
import tf_keras as keras

SMALL_CNN = "small_cnn"
NO_WEIGHTS = "none"
IMAGENET = "imagenet"
# Keras Applications' own lower bound on the input side without the top (obtain_input_shape).
MIN_IMAGE_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Backbone:
    """How to build one Keras Applications backbone: its constructor in keras.applications,
    its arguments, and the preprocessing it needs in front ("" when the model has its own)."""

    constructor: str
    arguments: tuple[tuple[str, object], ...] = ()
    preprocessing: str = ""


BACKBONES = {
    "mobilenet_v3_small": Backbone("MobileNetV3Small", (("include_preprocessing", True),)),
    "mobilenet_v3_large": Backbone("MobileNetV3Large", (("include_preprocessing", True),)),
    "efficientnet_v2_b0": Backbone("EfficientNetV2B0", (("include_preprocessing", True),)),
    # ResNet50 expects Caffe's preprocessing: BGR, ImageNet means subtracted, no scaling.
    "resnet50": Backbone("ResNet50", preprocessing="caffe"),
}
NAMES = (SMALL_CNN, *BACKBONES)


class WeightsError(ValueError):
    """A weights file that is missing or does not fit its backbone: said before training."""


class CaffePreprocessing(keras.layers.Layer):
    """keras.applications.resnet50.preprocess_input as a layer: RGB -> BGR, minus the ImageNet
    channel means."""

    MEANS = (103.939, 116.779, 123.68)

    def call(self, images):
        return images[..., ::-1] - tf.constant(self.MEANS, images.dtype)


def build(name: str, image_size: int, weights: str = NO_WEIGHTS) -> keras.Model:
    """The Keras Applications backbone `name` without its top, for image_size x image_size
    RGB input, with `weights` loaded; its output is the last feature map. Its input is in
    [0, 255] once `preprocess` has run (the Applications model rescales inside itself)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(NAMES)}.")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"backbone {name} needs images of at least {MIN_IMAGE_SIZE} px, got {image_size}."
        )
    spec = BACKBONES[name]
    constructor = getattr(keras.applications, spec.constructor)
    arguments = dict(spec.arguments, include_top=False, input_shape=(image_size, image_size, 3))
    if weights == IMAGENET:
        try:
            return constructor(weights=IMAGENET, **arguments)
        except Exception as e:  # get_file's URL fetch failure, or a cached file cut short
            raise WeightsError(
                f"no ImageNet weights for {name} in Keras' cache "
                f"({os.path.join(os.path.expanduser('~'), '.keras', 'models')}): they are "
                f"fetched once on a machine with a network (see the README); or give a weights "
                f"file with --weights PATH. ({type(e).__name__}: {str(e)[:300]})"
            ) from None
    network = constructor(weights=None, **arguments)
    if weights != NO_WEIGHTS:
        load_weights(network, weights, name)
    return network


def preprocess(name: str, images):
    """What backbone `name` needs in front of it, on float pixels in [0, 255]."""
    if BACKBONES[name].preprocessing == "caffe":
        return CaffePreprocessing(name="caffe_preprocessing")(images)
    return images


def load_weights(network: keras.Model, path: str, name: str) -> None:
    """Loads `path` (local or a gfile URI) into `network`; WeightsError when it cannot or when
    not every weight of the network comes from the file."""
    with _local_copy(path) as local:
        try:
            if _is_checkpoint(local):
                network.load_weights(local).assert_existing_objects_matched()
            else:
                network.load_weights(local)
        except (ValueError, OSError, AssertionError, tf.errors.OpError) as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(
                f"the weights file {path} does not fit backbone {name} (a file of another "
                f"architecture or width?): {detail}"
            ) from None


def weights_digest(path: str) -> str:
    """SHA-256 of a weights file (of every file of a TensorFlow checkpoint): the Trainer's
    custom_config carries it, so that new weights at the same path re-train the model."""
    digest = hashlib.sha256()
    for file in _files_of(path):
        with tf.io.gfile.GFile(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(options):
    """`options` (TrainerOptions) with its weights file checked to fit its backbone and its
    SHA-256 recorded (weights_digest), before any step runs: a file that does not fit is one
    line, not a failed Trainer after the conversion. Random, Keras' cache, and files on
    minio:// or s3:// (the Kubeflow Trainer's pod gets those; TensorFlow here cannot read
    them) are as they are.

    Raises:
      WeightsError: no such file, or one that does not fit the backbone.
    """
    import dataclasses

    weights = options.weights
    if weights in (NO_WEIGHTS, IMAGENET) or weights.startswith(("minio://", "s3://")):
        return options
    check_weights(weights)
    build(options.backbone, options.image_size, weights)
    return dataclasses.replace(options, weights_sha256=weights_digest(weights))


def check_weights(weights: str) -> None:
    """Raises WeightsError for a weights path that names no file (before any pipeline runs)."""
    if weights in (NO_WEIGHTS, IMAGENET):
        return
    if not tf.io.gfile.exists(weights) and not tf.io.gfile.exists(weights + ".index"):
        raise WeightsError(f"no weights file at {weights}.")


def _is_checkpoint(path: str) -> bool:
    return not tf.io.gfile.exists(path) and tf.io.gfile.exists(path + ".index")


def _files_of(path: str) -> list[str]:
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        return [path]
    if tf.io.gfile.exists(path + ".index"):  # a checkpoint: its index and data shards
        return sorted(tf.io.gfile.glob(path + ".*"))
    raise WeightsError(f"no weights file at {path}.")


class _local_copy:
    """A local path to the file(s) of `path`: itself when local, else a temporary copy (h5py
    reads local files only)."""

    def __init__(self, path: str):
        self._path = path
        self._folder = None

    def __enter__(self) -> str:
        files = _files_of(self._path)
        if "://" not in self._path:
            return self._path
        self._folder = tempfile.mkdtemp(prefix="weights-")
        for file in files:
            target = os.path.join(self._folder, os.path.basename(file))
            tf.io.gfile.copy(file, target, overwrite=True)
        return os.path.join(self._folder, os.path.basename(self._path))

    def __exit__(self, *_):
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
