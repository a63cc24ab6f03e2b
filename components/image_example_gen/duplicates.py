"""Groups of copies of one picture, from the fingerprints of checked images, before the split.

A near copy lies at most THRESHOLD bits from another (image_files.fingerprint: re-encoded,
resized, a few percent cropped, brightness or contrast nudged, the upright twin of a sideways
photo); an exact copy has the same image data too (image_files.exact_digest).

Candidates come from banding (LSH): the fingerprint's bits, in a fixed random order, are cut into
BANDS bands of BAND_BITS bits; images that agree on a whole band meet in its bucket, and only
they are compared. A bucket holds a few images on average (1 in 2**BAND_BITS of the rest), and
one that holds more than MAX_BUCKET (pictures alike in that band) is compared in chunks of
MAX_BUCKET neighbours by fingerprint, so no bucket costs all its pairs. Buckets travel to the
comparing step ROUTES of a band together, gathered per bundle: Beam's shuffle pays per
element, and an element per image and band cost 0.55 ms an image on the local runner. They
carry an image's 8-byte id and its fingerprint only, packed as 39-byte entries into one file per
bundle (in the output's temporary folder), and what goes through the shuffle is where each
part lies in its file: the local runner holds a shuffle's values in memory several times over
(its buffer, the grouped stream, the decoded values), and each image's tuple under its 20
bands held 1.1 GB at 88,000 contest photos (ImageExampleGen's peak, 2.5 GiB). The near pairs
found are then resolved to their images by two joins on the id, one element per image.

Groups never chain: images are taken in a canonical order (the partition key: the CSV id or the
relative path), and each joins the earliest group whose representative (its first image) lies
within THRESHOLD bits, else starts a group of its own (leader clustering). Every member is
within THRESHOLD of its representative, so a group spans at most 2 x THRESHOLD bits however
many photos lie a few bits apart. That pass runs in one place over the images that have a near
copy, each with at most MAX_NEIGHBOURS neighbours, earliest first: memory follows the copies,
not the dataset.

Stability: an image keeps its group as images are added unless a new image precedes its
representative in the canonical order and lies within THRESHOLD of it, or of a representative
it then joins in turn; an image with no near copy among the new ones keeps its group.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.transforms import window

from components.image_files import FINGERPRINT_BITS

# Bits of FINGERPRINT_BITS (226): 11.5%. Measured on 1,200 planted copies at 320x180, 480x270
# and 960x540: every copy but crops within 14 bits, crops (1-3% off each side) up to 28, 4 of
# 150 beyond 26; distinct contest photos of one landmark as near as 17 bits at 88,000 photos,
# 124 of the 712 grouped there at 30 bits within 26 (bench-scale, 2026-12-02).
THRESHOLD = 26
BANDS = 20
BAND_BITS = 12
MAX_BUCKET = 64
MAX_NEIGHBOURS = 8
ROUTES = 64  # shuffle keys a band (its buckets share them by value modulo ROUTES)
GATHERED = 20_000  # (bucket, image) entries a bundle holds before it sends them on
# The bands' bits: a fixed permutation of the fingerprint's bits, repeated to fill the bands.
_ORDER = np.random.default_rng(FINGERPRINT_BITS).permutation(FINGERPRINT_BITS)
_BAND_POSITIONS = np.resize(_ORDER, BANDS * BAND_BITS).reshape(BANDS, BAND_BITS)
_BAND_WEIGHTS = 1 << np.arange(BAND_BITS - 1, -1, -1)


class Image(NamedTuple):
    """What grouping knows of one checked image."""

    key: str  # unique: the relative path
    order: tuple  # canonical order: (partition value, path)
    label: str
    fingerprint: bytes
    digest: int


class Membership(NamedTuple):
    """An image's group: its representative (the group's first image in canonical order)."""

    representative: str  # the representative's key (path)
    partition_value: str  # the representative's partition feature value: the group's split
    labels: int  # distinct labels in the group (1: the group moves as one)
    distance: int  # bits from the representative
    exact: bool  # the representative's image data (exact_digest), not only near it


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
    fingerprint under each of its bands, the bands' buckets sent ROUTES to a shuffle key, as
    fixed-size entries written to one file of `folder` (see the module). A retried bundle's
    file is left unread; the folder is deleted whole once ImageExampleGen has written."""

    def __init__(self, folder: str):
        self._folder = folder

    def start_bundle(self):
        self._gathered: dict[tuple[int, int], bytearray] = {}
        self._entries = 0

    def process(self, image):
        key, fingerprint = image[0], image[3]
        own = image_id(key)
        for band, value in band_keys(fingerprint):
            part = self._gathered.setdefault((band, value % ROUTES), bytearray())
            part += _ENTRY.pack(value, own, fingerprint)
        self._entries += BANDS
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
        with tf.io.gfile.GFile(path, "wb") as f:
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
        with tf.io.gfile.GFile(path, "rb") as f:
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


def near_pairs(bucket: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple]:
    """(id, (neighbour id, bits)) both ways for each pair of (id, fingerprint) in one bucket
    within THRESHOLD; a bucket larger than MAX_BUCKET is compared in chunks of that many images
    sorted by fingerprint (with half a chunk of overlap), never all its pairs."""
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
    values = {member: int.from_bytes(member[1], "big") for member in members}
    for chunk in chunks:
        for i, a in enumerate(chunk):
            for b in chunk[i + 1 :]:
                bits = (values[a] ^ values[b]).bit_count()
                if bits <= THRESHOLD and a[0] != b[0]:
                    yield a[0], (b[0], bits)
                    yield b[0], (a[0], bits)


def offered(element: tuple[bytes, dict[str, list]]) -> Iterator[tuple]:
    """An image's near pairs, resolved on its side: (neighbour id, (the image, bits)) for each
    image that found it a near pair."""
    _, joined = element
    asked = set(joined["asked"])  # a pair meets in each band it shares
    for image in joined["image"]:  # one, but where two keys share an id
        for asking, bits in asked:
            yield asking, (image, bits)


def neighbours_of(element: tuple[bytes, dict[str, list]]) -> Iterator[tuple]:
    """(an image, its distinct near neighbours with their bits, the MAX_NEIGHBOURS earliest in
    canonical order), measured again on the images themselves."""
    _, joined = element
    for own in joined["image"]:
        own = Image(*own)
        best: dict[str, tuple[Image, int]] = {}
        for other, _ in joined["found"]:
            other = Image(*other)
            bits = distance(own.fingerprint, other.fingerprint)
            if other.key != own.key and bits <= THRESHOLD:
                best[other.key] = (other, bits)
        if best:
            ordered = sorted(best.values(), key=lambda nb: nb[0].order)
            yield tuple(own), [(tuple(image), bits) for image, bits in ordered[:MAX_NEIGHBOURS]]


def leader_groups(
    images: Iterable[Image], neighbours: dict[str, list[tuple[Image, int]]]
) -> dict[str, Membership]:
    """Leader clustering in canonical order (see the module): {key: Membership} of every image
    in a group of two or more. `images`: every image with a near neighbour; `neighbours`: each
    one's earliest near neighbours with their distance."""
    by_key = {image.key: image for image in images}
    representative: dict[str, tuple[str, int]] = {}  # key -> (representative key, bits)
    for image in sorted(by_key.values(), key=lambda i: i.order):
        earlier = [
            (other.order, other.key, bits)
            for other, bits in neighbours.get(image.key, [])
            if other.order < image.order and representative.get(other.key, ("",))[0] == other.key
        ]
        if earlier:
            _, leader, bits = min(earlier)
            representative[image.key] = (leader, bits)
        else:
            representative[image.key] = (image.key, 0)
    members: dict[str, list[str]] = {}
    for key, (leader, _) in representative.items():
        members.setdefault(leader, []).append(key)
    groups = {}
    for leader, keys in members.items():
        if len(keys) < 2:
            continue
        head = by_key[leader]
        labels = len({by_key[k].label for k in keys})
        for key in keys:
            bits = representative[key][1]
            exact = bits == 0 and by_key[key].digest == head.digest
            groups[key] = Membership(leader, head.order[0], labels, bits, exact)
    return groups


def _cluster(pairs: list[tuple[tuple, list[tuple]]]) -> Iterator[tuple[str, tuple]]:
    images, neighbours = [], {}
    for own, found in pairs:
        image = Image(*own)
        images.append(image)
        neighbours[image.key] = [(Image(*other), bits) for other, bits in found]
    for key, membership in leader_groups(images, neighbours).items():
        yield key, tuple(membership)


@beam.ptransform_fn
def GroupCopies(images: beam.PCollection, folder: str) -> beam.PCollection:  # noqa: N802
    """Image tuples -> (key, Membership tuple) of every image in a group of copies; the bands'
    entries go through files of `folder`."""
    by_id = images | "ById" >> beam.Map(lambda image: (image_id(image[0]), image))
    pairs = (
        images
        | "Bands" >> beam.ParDo(GatherBands(folder))
        | "Buckets" >> beam.GroupByKey()
        | "NearPairs" >> beam.FlatMap(route_pairs)
    )
    found = (
        {"image": by_id, "asked": pairs}
        | "Resolve" >> beam.CoGroupByKey()
        | "Offered" >> beam.FlatMap(offered)
    )
    return (
        {"image": by_id, "found": found}
        | "ByImage" >> beam.CoGroupByKey()
        | "Earliest" >> beam.FlatMap(neighbours_of)
        | "Together" >> beam.combiners.ToList()
        | "Leaders" >> beam.FlatMap(_cluster)
    )


# ---------------------------------------------------------------------------------------------
# The plan's records: grouped, copies kept out where the options say, and duplicates.jsonl.


class Copies(NamedTuple):
    records: beam.PCollection  # LabeledImage, with its group of copies where it has one
    dropped: beam.PCollection  # LabeledImage kept out (keep-one, conflicting labels); split
    # names why ("skipped: duplicate_image")
    outcomes: beam.PCollection  # their Outcomes


def find_copies(records: beam.PCollection, options, feature_name: str, folder: str) -> Copies:
    """Groups the checked records' copies (their band entries written to files of `folder`, a
    temporary folder) and keeps out what `options` says: with
    dedupe="keep-one" the exact copies of each group's first image (skipped as
    duplicate_image), with reject_conflicting_duplicates every member of a group under two or
    more labels (rejected as conflicting_labels_duplicate)."""
    from components.image_example_gen import splits

    def as_image(record) -> tuple:
        value = splits.partition_value(record, feature_name, options.features)
        checked = record.checked
        return tuple(
            Image(
                record.file.path,
                (value, record.file.path),
                record.label_name,
                checked.fingerprint,
                checked.digest,
            )
        )

    memberships = (
        records | "ForGrouping" >> beam.Map(as_image) | "GroupCopies" >> GroupCopies(folder)
    )
    kept = records | "JoinGroups" >> beam.FlatMap(
        _joined_or_kept_out,
        beam.pvalue.AsDict(memberships),
        options.dedupe,
        options.reject_conflicting_duplicates,
    ).with_outputs("dropped", "outcomes", main="records")
    return Copies(kept.records, kept.dropped, kept.outcomes)


def _joined_or_kept_out(record, memberships: dict, dedupe: str, reject_conflicting: bool):
    """The record with its group, or kept out as `dedupe` and `reject_conflicting` say."""
    from components.examples import reasons

    found = memberships.get(record.file.path)
    if found is None:
        yield record
        return
    membership = Membership(*found)
    record = record._replace(
        group=membership.representative,
        group_value=membership.partition_value,
        group_labels=membership.labels,
        distance=membership.distance,
        exact=membership.exact,
    )
    if record.group and reject_conflicting and record.group_labels > 1:
        status, reason = reasons.REJECTED, reasons.CONFLICTING_LABELS_DUPLICATE
        detail = f"a copy of {record.group}, whose copies lie under {record.group_labels} labels"
    elif dedupe == "keep-one" and record.exact and record.group != record.file.path:
        status, reason, detail = reasons.SKIPPED, reasons.DUPLICATE_IMAGE, f"kept {record.group}"
    else:
        yield record
        return
    yield beam.pvalue.TaggedOutput(
        "outcomes", reasons.Outcome(record.file.path, status, reason, detail)
    )
    yield beam.pvalue.TaggedOutput("dropped", record._replace(split=f"{status}: {reason}"))
