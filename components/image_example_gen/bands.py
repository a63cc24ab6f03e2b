"""Candidate pairs of copies by banding the fingerprints (LSH), for duplicates.py (whose
docstring says how and why): each image's entries under its bands go through files, the buckets
are compared in chunks, and each image's near pairs are gathered into one set before the joins.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.transforms import window

from imgtfx.components import file_io
from imgtfx.components.fingerprint import FINGERPRINT_BITS

# Bits of FINGERPRINT_BITS (226): 11.5%. Measured on 1,200 planted copies at 320x180, 480x270
# and 960x540: every copy but crops within 14 bits; crops up to 5% a side within 26 of the
# original's centre for 93% (tests/components/test_fingerprints.py); distinct contest photos
# of one landmark as near as 17 bits at 88,000 photos, 124 of the 712 grouped there at 30 bits
# within 26 (bench-scale, 2026-12-02).
THRESHOLD = 26
BANDS = 20
BAND_BITS = 12
MAX_BUCKET = 64
ROUTES = 64  # shuffle keys a band (its buckets share them by value modulo ROUTES)
GATHERED = 20_000  # (bucket, image) entries a bundle holds before it sends them on
# The bands' bits: a fixed permutation of the fingerprint's bits, repeated to fill the bands.
_ORDER = np.random.default_rng(FINGERPRINT_BITS).permutation(FINGERPRINT_BITS)
_BAND_POSITIONS = np.resize(_ORDER, BANDS * BAND_BITS).reshape(BANDS, BAND_BITS)
_BAND_WEIGHTS = 1 << np.arange(BAND_BITS - 1, -1, -1)


def band_keys(fingerprint: bytes) -> list[tuple[int, int]]:
    """(band index, band value) of each band of a fingerprint."""
    bits = np.unpackbits(np.frombuffer(fingerprint, np.uint8))[:FINGERPRINT_BITS]
    return list(enumerate((bits[_BAND_POSITIONS] @ _BAND_WEIGHTS).tolist()))


def distance(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


FINGERPRINT_BYTES = (FINGERPRINT_BITS + 7) // 8
_ENTRY = struct.Struct(f">H8s{FINGERPRINT_BYTES}s")  # band value, image id, fingerprint


def image_id(key: str) -> bytes:
    """The 8-byte id an image has in the band shuffle (of its key). Ids that collide (about
    n**2 / 2**65: 5e-7 at 4.1 million images) cost nothing but a wasted candidate: pairs are
    measured again on the images themselves once resolved (neighbours_of)."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()


class GatherBands(beam.DoFn):
    """Image tuples -> ((band, route), (file, offset, length)) per bundle: each image's id and
    fingerprint under each of its bands, and its centre's under the centre's, the bands'
    buckets sent ROUTES to a shuffle key, as fixed-size entries written to one file of `folder`
    (see the module). A retried bundle's file is left unread; the folder is deleted whole once
    ImageExampleGen has written."""

    def __init__(self, folder: str):
        self._folder = folder

    def start_bundle(self):
        self._gathered: dict[tuple[int, int], bytearray] = {}
        self._entries = 0

    def process(self, image):
        key, whole = image[0], image[3]
        centre = image[5] if len(image) > 5 else b""  # duplicates.Image.centre, where known
        prints = [whole, centre] if centre else [whole]
        own = image_id(key)
        for fingerprint in prints:
            for band, value in band_keys(fingerprint):
                part = self._gathered.setdefault((band, value % ROUTES), bytearray())
                part += _ENTRY.pack(value, own, fingerprint)
        self._entries += BANDS * len(prints)
        if self._entries >= GATHERED:
            yield from self._send()

    def finish_bundle(self):
        for element in self._send():
            yield window.GlobalWindows.windowed_value(element)

    def _send(self):
        gathered, self._gathered, self._entries = self._gathered, {}, 0
        if not gathered:
            return
        tf.io.gfile.makedirs(self._folder)
        path = f"{self._folder}/bands-{uuid.uuid4().hex}.bin"
        places, offset = [], 0
        with file_io.open_binary(path, "wb") as f:
            for key, part in gathered.items():
                f.write(bytes(part))
                places.append((key, (path, offset, len(part))))
                offset += len(part)
        yield from places


def read_parts(places: Iterable[tuple[str, int, int]]) -> Iterator[bytes]:
    """The packed entries at (file, offset, length) places, a file opened once."""
    by_file: dict[str, list[tuple[int, int]]] = {}
    for path, offset, length in places:
        by_file.setdefault(path, []).append((offset, length))
    for path, slices in sorted(by_file.items()):
        with file_io.open_binary(path) as f:
            for offset, length in sorted(slices):
                f.seek(offset)
                yield f.read(length)


def route_pairs(element: tuple[tuple[int, int], Iterable[tuple]]) -> Iterator[tuple]:
    """(id, (neighbour id, bits)) of the near pairs of every bucket of one shuffle key."""
    _, places = element
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for part in read_parts(places):
        for value, own, fingerprint in _ENTRY.iter_unpack(part):
            buckets.setdefault(value, []).append((own, fingerprint))
    for bucket in buckets.values():
        if len(bucket) > 1:
            yield from near_pairs(bucket)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
SMALL_BUCKET = 12  # fewer members: compared pair by pair in Python, faster than numpy's set-up


def near_pairs(bucket: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple]:
    """(id, (neighbour id, bits)) both ways for each pair of (id, fingerprint) in one bucket
    within THRESHOLD; a bucket larger than MAX_BUCKET is compared in chunks of that many images
    sorted by fingerprint (with half a chunk of overlap), never all its pairs. A chunk's pairs
    are measured at once (XOR and a popcount table over its fingerprints' bytes)."""
    members = sorted(set(bucket))
    if len(members) < 2:
        return
    if len(members) > MAX_BUCKET:
        members.sort(key=lambda m: m[1])
        half = MAX_BUCKET // 2
        starts = [*range(0, len(members) - MAX_BUCKET, half), len(members) - MAX_BUCKET]
        chunks = [members[s : s + MAX_BUCKET] for s in starts]
    else:
        chunks = [members]
    for chunk in chunks:
        yield from (_pairs_in_python if len(chunk) < SMALL_BUCKET else _pairs_at_once)(chunk)


def _pairs_in_python(chunk: list[tuple[bytes, bytes]]) -> Iterator[tuple]:
    values = [int.from_bytes(m[1], "big") for m in chunk]
    for i, a in enumerate(chunk):
        for k in range(i + 1, len(chunk)):
            bits = (values[i] ^ values[k]).bit_count()
            if bits <= THRESHOLD and a[0] != chunk[k][0]:
                yield a[0], (chunk[k][0], bits)
                yield chunk[k][0], (a[0], bits)


def _pairs_at_once(chunk: list[tuple[bytes, bytes]]) -> Iterator[tuple]:
    prints = np.frombuffer(b"".join(m[1] for m in chunk), np.uint8).reshape(len(chunk), -1)
    bits = _POPCOUNT[prints[:, None, :] ^ prints[None, :, :]].sum(axis=2, dtype=np.int32)
    for i, k in zip(*np.nonzero(np.triu(bits <= THRESHOLD, 1)), strict=True):
        a, b = chunk[i][0], chunk[k][0]
        if a != b:
            d = int(bits[i, k])
            yield a, (b, d)
            yield b, (a, d)


class DistinctPairs(beam.CombineFn):
    """An image's near pairs as one set: a pair meets in each band it shares and, in a bucket
    compared in chunks, in each chunk; combined before the shuffle (Beam lifts a combiner into
    the step that makes the pairs), so the join gets one set an image, not every meeting (20
    bands x 2 chunks of 64: 2,500 elements a photo on a tree of near-identical photos)."""

    def create_accumulator(self):
        return set()

    def add_input(self, pairs, pair):
        pairs.add(pair)
        return pairs

    def merge_accumulators(self, accumulators):
        return set().union(*accumulators)

    def extract_output(self, pairs):
        return sorted(pairs)  # the order offered() yields them in
