"""Groups of copies of one picture, from the fingerprints of checked images, before the split.

A near copy lies at most THRESHOLD bits from another (fingerprint.fingerprint: re-encoded,
resized, brightness or contrast nudged, the upright twin of a sideways photo), or, cropped up to
5% a side, from the other's centre (fingerprint.centre_fingerprint; image_distance); an exact
copy has the same image data too (fingerprint.exact_digest).

Candidates come from banding (LSH): the fingerprint's bits (and the centre's, as entries of
their own), in a fixed random order, are cut into BANDS bands of BAND_BITS bits; images that
agree on a whole band meet in its bucket, and only they are compared. A bucket holds a few
images on average (1 in 2**BAND_BITS of the rest), and one that holds more than MAX_BUCKET
(pictures alike in that band) is compared in chunks of MAX_BUCKET neighbours by fingerprint, so
no bucket costs all its pairs. Buckets travel to the comparing step ROUTES of a band together,
gathered per bundle: Beam's shuffle pays per element, and an element per image and band cost
0.55 ms an image on the local runner. They carry an image's 8-byte id and its fingerprint only,
packed as 39-byte entries into one file per bundle (in the output's temporary folder), and what
goes through the shuffle is where each part lies in its file: the local runner holds a shuffle's
values in memory several times over (its buffer, the grouped stream, the decoded values), and
each image's tuple under its 20 bands held 1.1 GB at 88,000 contest photos (ImageExampleGen's
peak, 2.5 GiB). The near pairs found are then resolved to their images by two joins on the id,
one element per image.

Exact copies (the same exact_digest and fingerprint) collapse first: each set of them is one
image for banding and clustering, its earliest in canonical order (its head), carrying the
other labels the set is under; the rest follow their head into its group afterwards, one
element each. A tree in which every photo repeats one of a few shots bands a few images a
landmark, not every photo with its dozens of identical neighbours.

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

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam

from imgtfx.components.image_example_gen.bands import (
    THRESHOLD,
    DistinctPairs,
    GatherBands,
    distance,
    image_id,
    route_pairs,
)

MAX_NEIGHBOURS = 8
SPARE_OFFERS = 2  # neighbours kept beyond MAX_NEIGHBOURS for those measuring again drops


class Image(NamedTuple):
    """What grouping knows of one checked image."""

    key: str  # unique: the relative path
    order: tuple  # canonical order: (partition value, path)
    label: str
    fingerprint: bytes
    digest: int
    centre: bytes = b""  # the fingerprint of its centre (fingerprint.centre_fingerprint)
    exact_labels: tuple = ()  # the other labels its exact copies are under (a head's)


class Membership(NamedTuple):
    """An image's group: its representative (the group's first image in canonical order)."""

    representative: str  # the representative's key (path)
    partition_value: str | int | bytes  # the representative's partition feature value
    labels: int  # distinct labels in the group (1: the group moves as one)
    distance: int  # bits from the representative
    exact: bool  # the representative's image data (exact_digest), not only near it


def offered(element: tuple[bytes, dict[str, list]]) -> Iterator[tuple]:
    """An image's near pairs, resolved on its side: (neighbour id, (the image, bits)) for each
    image that found it a near pair."""
    _, joined = element
    for image in joined["image"]:  # one, but where two keys share an id
        for asked in joined["asked"]:  # none, or one sorted list (DistinctPairs)
            for asking, bits in asked:
                yield asking, (image, bits)


class EarliestOffers(beam.CombineFn):
    """The neighbours offered to one image, only the earliest in canonical order: the
    MAX_NEIGHBOURS that clustering reads plus SPARE_OFFERS for neighbours that measuring again
    drops (an id shared by two images, about n**2 / 2**65). Combined before the shuffle, so the
    join holds a few images an image, not every near neighbour's whole record."""

    def create_accumulator(self):
        return []

    def add_input(self, offers, offer):
        offers.append(offer)
        if len(offers) > 4 * (MAX_NEIGHBOURS + SPARE_OFFERS):
            offers[:] = self.extract_output(offers)
        return offers

    def merge_accumulators(self, accumulators):
        return self.extract_output([offer for offers in accumulators for offer in offers])

    def extract_output(self, offers):
        earliest = {}
        for image, bits in offers:
            earliest[image[0]] = (image, bits)  # one offer a neighbour
        ordered = sorted(earliest.values(), key=lambda offer: (offer[0][1], offer[0][0]))
        return ordered[: MAX_NEIGHBOURS + SPARE_OFFERS]


def neighbours_of(element: tuple[bytes, dict[str, list]]) -> Iterator[tuple]:
    """(an image, its distinct near neighbours with their bits, the MAX_NEIGHBOURS earliest in
    canonical order), measured again on the images themselves."""
    _, joined = element
    for own in joined["image"]:
        own = Image(*own)
        best: dict[str, tuple[Image, int]] = {}
        for other, _ in (offer for offers in joined["found"] for offer in offers):
            other = Image(*other)
            bits = image_distance(own, other)
            if other.key != own.key and bits <= THRESHOLD:
                best[other.key] = (other, bits)
        if best:
            ordered = sorted(best.values(), key=lambda nb: nb[0].order)
            yield tuple(own), [(tuple(image), bits) for image, bits in ordered[:MAX_NEIGHBOURS]]


def image_distance(a: Image, b: Image) -> int:
    """Bits between two pictures: between their fingerprints, or between one's centre and the
    other's whole (a copy cropped a few percent a side lies near the original's centre)."""
    bits = distance(a.fingerprint, b.fingerprint)
    if a.centre:
        bits = min(bits, distance(a.centre, b.fingerprint))
    if b.centre:
        bits = min(bits, distance(a.fingerprint, b.centre))
    return bits


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
        labels = len({label for k in keys for label in (by_key[k].label, *by_key[k].exact_labels)})
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


def exact_sets(element: tuple[tuple, Iterable[tuple]]) -> Iterator:
    """One set of exact copies -> its head (main: the earliest in canonical order, with the
    set's other labels), and, where it has copies, 'followers' (head key, follower key) and
    'heads' (head key, head)."""
    _, copies = element
    head = Image(*min(copies, key=lambda image: (image[1], image[0])))
    labels, followed = set(), False
    for image in copies:
        if image[0] != head.key:
            labels.add(image[2])
            followed = True
            yield beam.pvalue.TaggedOutput("followers", (head.key, image[0]))
    head = tuple(head._replace(exact_labels=tuple(sorted(labels - {head.label}))))
    yield head
    if followed:
        yield beam.pvalue.TaggedOutput("heads", (head[0], head))


def followed(element: tuple[str, dict[str, list]]) -> Iterator[tuple[str, tuple]]:
    """A head's membership (from the near groups, else a group of its exact copies with it as
    representative) given to it and each of its followers: they have its bits and digest."""
    key, joined = element
    found = list(joined["near"])
    if found:
        membership = found[0]
    elif joined["head"]:
        head = Image(*joined["head"][0])
        labels = len({head.label, *head.exact_labels})
        membership = tuple(Membership(key, head.order[0], labels, 0, True))
    else:
        return
    yield key, membership
    for follower in joined["followers"]:
        yield follower, membership


@beam.ptransform_fn
def GroupCopies(images: beam.PCollection, folder: str) -> beam.PCollection:  # noqa: N802
    """Image tuples -> (key, Membership tuple) of every image in a group of copies: exact copies
    collapsed to their head, the heads grouped by near copies (NearGroups), the followers given
    their head's group; the bands' entries go through files of `folder`."""
    exact = (
        images
        | "ByContent" >> beam.Map(lambda image: ((image[4], image[3]), image))
        | "ExactCopies" >> beam.GroupByKey()
        | "Heads" >> beam.FlatMap(exact_sets).with_outputs("followers", "heads", main="images")
    )
    near = exact.images | "Near" >> NearGroups(folder)
    return (
        {"near": near, "head": exact.heads, "followers": exact.followers}
        | "ByHead" >> beam.CoGroupByKey()
        | "Followed" >> beam.FlatMap(followed)
    )


@beam.ptransform_fn
def NearGroups(images: beam.PCollection, folder: str) -> beam.PCollection:  # noqa: N802
    """Image tuples -> (key, Membership tuple) of every image in a group of near copies (the
    module's banding, joins and leader clustering); the bands' entries go through files of
    `folder`."""
    by_id = images | "ById" >> beam.Map(lambda image: (image_id(image[0]), image))
    pairs = (
        images
        | "Bands" >> beam.ParDo(GatherBands(folder))
        | "Buckets" >> beam.GroupByKey()
        | "NearPairs" >> beam.FlatMap(route_pairs)
        | "DistinctPairs" >> beam.CombinePerKey(DistinctPairs())
    )
    found = (
        {"image": by_id, "asked": pairs}
        | "Resolve" >> beam.CoGroupByKey()
        | "Offered" >> beam.FlatMap(offered)
        | "EarliestOffers" >> beam.CombinePerKey(EarliestOffers())
    )
    return (
        {"image": by_id, "found": found}
        | "ByImage" >> beam.CoGroupByKey()
        | "Earliest" >> beam.FlatMap(neighbours_of)
        | "Together" >> beam.combiners.ToList()
        | "Leaders" >> beam.FlatMap(_cluster)
    )


# ---------------------------------------------------------------------------------------------
# The plan's records: grouped, copies kept out where the options say (duplicates.jsonl: see
# duplicates_jsonl.py).


class Copies(NamedTuple):
    records: beam.PCollection  # LabeledImage, with its group of copies where it has one
    dropped: beam.PCollection  # LabeledImage kept out (keep-one, conflicting labels), its
    # kept_out saying why ("skipped: duplicate_image")
    outcomes: beam.PCollection  # their Outcomes


def find_copies(
    records: beam.PCollection, options, feature_name: str, folder: str, label_indexes=None
) -> Copies:
    """Groups the checked records' copies (their band entries written to files of `folder`, a
    temporary folder; `label_indexes` as splits.partition_value needs them, a side input) and
    keeps out what `options` says: with
    dedupe="keep-one" the exact copies of each group's first image (skipped as
    duplicate_image), with reject_conflicting_duplicates every member of a group under two or
    more labels (rejected as conflicting_labels_duplicate)."""
    from imgtfx.components.image_example_gen import splits

    def as_image(record, label_indexes) -> tuple:
        value = splits.partition_value(record, feature_name, options.features, label_indexes)
        checked = record.checked
        return tuple(
            Image(
                record.file.path,
                (value, record.file.path),
                record.label_name,
                checked.fingerprint,
                checked.digest,
                checked.centre,
            )
        )

    memberships = (
        records
        | "ForGrouping" >> beam.Map(as_image, label_indexes)
        | "GroupCopies" >> GroupCopies(folder)
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
    from imgtfx.components.examples import reasons

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
    yield beam.pvalue.TaggedOutput("dropped", record._replace(kept_out=f"{status}: {reason}"))
