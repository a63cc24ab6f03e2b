"""Small, named patches that make TFX's own steps faster on the local runner, each beside the
measurement that asked for it. Applied by the local runner only; each is a no-op where its
precondition does not hold."""

from __future__ import annotations


def fast_tfrecord_checksums() -> bool:
    """Beam's TFRecord reader, which StatisticsGen and the Evaluator read examples through
    (tfx_bsl's TFXIO), checks every record's CRC32C with crcmod in software unless
    python-snappy is installed (apache_beam/io/tfrecordio.py, `_default_crc32c_fn`): 0.34 GB/s
    here, 7 of StatisticsGen's 40 s on 22,000 contest photos. google-crc32c, installed with
    google-cloud-storage, computes the same checksum with the CPU's CRC32 instruction
    (17 GB/s). Returns whether the fast checksum is in use."""
    import google_crc32c
    from apache_beam.io import tfrecordio

    if google_crc32c.implementation != "c":  # the pure-Python fallback is slower still
        return False
    tfrecordio._default_crc32c_fn.fn = google_crc32c.value  # Beam's cache of the chosen one
    return True
