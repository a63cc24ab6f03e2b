"""The bands of the copies' fingerprints (bands.py): a bucket's near pairs, measured at once or
in chunks, the same as measuring each pair by itself."""

from __future__ import annotations

import numpy as np

from imgtfx.components.fingerprint import FINGERPRINT_BITS
from imgtfx.components.image_example_gen import bands


def test_a_bucket_is_measured_at_once_as_pair_by_pair():
    """Buckets of every size (small ones pair by pair, larger ones at once with numpy, the largest
    in chunks) give the pairs, bits and order that measuring each pair by itself gives."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, bands.FINGERPRINT_BYTES, dtype=np.uint8)
    for size in (2, 5, bands.SMALL_BUCKET, 40, bands.MAX_BUCKET + 30):  # a few pairs near
        members = []
        for i in range(size):  # near the base: up to 15 bits flipped
            bits = np.unpackbits(base.copy())
            flipped = rng.choice(FINGERPRINT_BITS, int(rng.integers(0, 16)), replace=False)
            bits[flipped] ^= 1
            members.append((i.to_bytes(8, "big"), np.packbits(bits).tobytes()))
        members.append(members[0])  # the same entry twice (two bands' chunks): once
        found = list(bands.near_pairs(members))
        distinct = sorted(set(members))
        if len(distinct) <= bands.MAX_BUCKET:
            expected = []
            for i, a in enumerate(distinct):
                for b in distinct[i + 1 :]:
                    d = bands.distance(a[1], b[1])
                    if d <= bands.THRESHOLD:
                        expected += [(a[0], (b[0], d)), (b[0], (a[0], d))]
            assert found == expected and found, size
        else:  # chunks: a subset of the pairs, each measured right
            assert all(bands.distance(
                dict(distinct)[a], dict(distinct)[b]) == d <= bands.THRESHOLD
                for a, (b, d) in found)  # fmt: skip


def test_a_bucket_of_many_alike_pictures_is_compared_in_chunks():
    members = [(i.to_bytes(8, "big"), bytes(29)) for i in range(300)]
    found = set(bands.near_pairs(members))
    # Chunks of MAX_BUCKET with half of one overlapping: far fewer than all 300 x 299 pairs,
    # and every image has its neighbours.
    assert len(found) < 300 * 299 // 3
    assert {a for a, _ in found} == {m[0] for m in members}
