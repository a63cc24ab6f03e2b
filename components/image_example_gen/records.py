"""The plan's record of one image, and its plain form for Beam's shuffles."""

from __future__ import annotations

from typing import NamedTuple

from imgtfx.components.image_example_gen.tree import FoundFile


class Checked(NamedTuple):
    """What the check learned of an image (image_files.ImageInfo without its bytes), and the
    length and CRC32C of the file's bytes, so that the shard writer, which reads them again,
    knows they are the bytes checked."""

    format: str
    source_format: str
    height: int
    width: int
    channels: int
    orientation: int
    transcoded: bool
    fingerprint: bytes
    digest: int
    length: int
    crc: int
    centre: bytes = b""  # the fingerprint of the picture's centre, for cropped copies

    @property
    def rewritten(self) -> bool:
        """The example holds other bytes than the file's (turned upright, or transcoded)."""
        return self.transcoded or self.orientation != 1


class LabeledImage(NamedTuple):
    file: FoundFile
    id: str
    label_name: str
    split: str = ""  # the output split, once assigned
    bucket: int = -1  # TFX's hash bucket of the partition feature (hash splits only)
    moved: bool = False  # moved out of its hash split so that its class is in every split
    checked: Checked | None = None  # once the image was read and checked
    group: str = ""  # the representative's path of its group of copies ("" for none)
    # the representative's partition feature value (str, int or bytes): the group's split
    group_value: str | int | bytes = ""
    group_labels: int = 0  # labels in that group: a group of one label moves as one
    distance: int = 0  # fingerprint bits from the representative
    exact: bool = False  # the representative's very image data
    # Why a copy was kept out of the examples ("skipped: duplicate_image"); "" when it was not.
    kept_out: str = ""


def as_tuple(record: LabeledImage) -> tuple:
    """A plan record as plain nested tuples, for Beam's shuffles: its default coder encodes
    tuples of str, int, bool and bytes natively but pickles NamedTuples (a round trip of a
    record measured 18 us pickled, 2.5 us as tuples; the plan shuffles each record several
    times)."""
    checked = tuple(record.checked) if record.checked is not None else None
    return (tuple(record.file), *record[1:6], checked, *record[7:])


def from_tuple(plain: tuple) -> LabeledImage:
    checked = Checked(*plain[6]) if len(plain) > 6 and plain[6] is not None else None
    return LabeledImage(FoundFile(*plain[0]), *plain[1:6], checked, *plain[7:])
