"""LabelSchema's curation: a schema inferred from one run still passes the next run's photos."""

from __future__ import annotations

import tensorflow_data_validation as tfdv

from imgtfx.components.examples import layout
from imgtfx.components.examples.features import IMAGE_FORMATS
from imgtfx.components.examples.vocabulary import read_vocabulary
from imgtfx.components.image_files import TF_FORMATS
from imgtfx.components.label_schema.component import curate_schema
from tests.helpers.conversions import run_do
from tests.helpers.images import encode, photo, with_orientation, write


def _statistics(out):
    return tfdv.generate_statistics_from_tfrecord(
        layout.split_files(str(out), "train"), stats_options=tfdv.StatsOptions()
    )


def _jpeg(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def _convert(root, out, images: dict[str, bytes]):
    for rel, data in images.items():
        write(root / rel, data)
    run_do(root, out)
    return _statistics(out)


def test_a_sideways_photo_and_a_gif_later_are_no_anomalies_but_a_new_label_is(tmp_path):
    kinds = [("PNG", "png"), ("JPEG", "jpg")] * 4
    first = {}
    for c in (0, 1):
        for i, (fmt, ext) in enumerate(kinds):
            first[f"{c}/{i}.{ext}"] = encode(fmt, seed=i + 10 * c)
    inferred = tfdv.infer_schema(_convert(tmp_path / "a", tmp_path / "out-a", first))
    curated = curate_schema(inferred, read_vocabulary(str(tmp_path / "out-a")))

    later = dict(first)
    for c in (0, 1):
        for i in range(8):
            later[f"{c}/{i}.gif"] = encode("GIF", seed=50 + 10 * c + i)
            later[f"{c}/s{i}.jpg"] = with_orientation(_jpeg(photo(seed=70 + 10 * c + i)), 6)
    statistics = _convert(tmp_path / "b", tmp_path / "out-b", later)
    flagged = tfdv.validate_statistics(statistics, inferred).anomaly_info
    assert {"orientation", "format"} <= set(flagged)  # SchemaGen's own schema flags them
    assert not tfdv.validate_statistics(statistics, curated).anomaly_info

    later.update({f"{c}/{i}.png": encode("PNG", seed=90 + i) for c in (2,) for i in range(3)})
    statistics = _convert(tmp_path / "c", tmp_path / "out-c", later)
    assert set(tfdv.validate_statistics(statistics, curated).anomaly_info) >= {"label_name"}


def test_the_format_domain_is_every_format_the_converter_keeps():
    assert set(IMAGE_FORMATS) == set(TF_FORMATS.values())
