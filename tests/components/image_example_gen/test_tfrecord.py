"""The Python gzipped TFRecord writer writes exactly TensorFlow's record format."""

import gzip
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from imgtfx.components.image_example_gen.tfrecord import GzipRecordWriter

RECORDS = [b"", b"x", os.urandom(300_000), "명소".encode() * 1000, os.urandom(70_000)]


def _write(path, level=0):
    with GzipRecordWriter(path, level) as writer:
        for record in RECORDS:
            writer.write(record)


def test_bytes_are_tensorflows_record_format(tmp_path):
    ours, theirs = str(tmp_path / "ours.gz"), str(tmp_path / "theirs")
    _write(ours)
    with tf.io.TFRecordWriter(theirs) as writer:
        for record in RECORDS:
            writer.write(record)
    with gzip.open(ours, "rb") as f, open(theirs, "rb") as g:
        assert f.read() == g.read()


def test_tf_data_reads_it_back_at_any_level(tmp_path):
    for level in (0, 6):
        path = str(tmp_path / f"level{level}.gz")
        _write(path, level)
        read = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
        assert read == RECORDS


def test_beam_reads_it_back(tmp_path):
    path = str(tmp_path / "records.gz")
    _write(path)
    with beam.Pipeline() as pipeline:
        read = pipeline | beam.io.ReadFromTFRecord(path)  # compression from the .gz suffix
        assert_that(read, equal_to(RECORDS))


def test_a_bad_record_checksum_is_detected(tmp_path):
    path = str(tmp_path / "records.gz")
    _write(path)
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())
    data[-5] ^= 0xFF  # a byte of the last record's data
    corrupt = str(tmp_path / "corrupt.gz")
    with gzip.open(corrupt, "wb") as f:
        f.write(bytes(data))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(corrupt, compression_type="GZIP"))
