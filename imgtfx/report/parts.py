"""The building blocks of the report page: fonts that draw every class name, charts as PNG data
URIs, HTML tables and sections, and how numbers, counts and paths are written.

Reads no file and imports no TensorFlow. Every text from the data is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import io

import matplotlib

matplotlib.use("Agg")
# Labels are text: a '$' in a class name is not the start of a formula (read when each
# text is made, so set for every chart of this module).
matplotlib.rcParams["text.parse_math"] = False
# Class names are Korean in the seed's data: matplotlib ships DejaVu Sans only, which has no
# Hangul. NanumGothic (Hangul, Hanja, Latin; from the koreanize-matplotlib package, no system
# font needed) takes each glyph DejaVu lacks.
_FALLBACK_FONT = ("koreanize_matplotlib", "fonts/NanumGothic.ttf", "NanumGothic")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@functools.lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Registers the fonts of every chart; returns the code points they can draw."""
    from importlib import resources

    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    package, name, family = _FALLBACK_FONT
    path = str(resources.files(package) / name)
    font_manager.fontManager.addfont(path)
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", family]
    dejavu = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return frozenset().union(*(FT2Font(p).get_charmap() for p in (dejavu, path)))


_fonts()  # before any chart: a figure's ticks keep the fonts they were made with


def drawable(text: str) -> str:
    """`text` for a chart: a character no chart font has (emoji, scripts beyond Korean, Chinese
    and Latin) is drawn as U+FFFD, never an empty box and a warning; the HTML around the
    charts shows every name as it is."""
    fonts = _fonts()
    return "".join(c if ord(c) in fonts or c.isspace() else "\ufffd" for c in text)


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnail_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def img(src: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{src}" alt="{html.escape(alt)}">'


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def shown(label: str, name: str) -> str:
    """How a class is named in the page: "name (label)" where it has a name of its own."""
    return label if name == label else f"{name} ({label})"


def count(n: int, noun: str) -> str:
    """'1 photo', '2 photos', '1,049 labels'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def number(value: float | None, whole: bool = False) -> str:
    """A metric for a table: counts as whole numbers, rates with four decimals."""
    if value is None:
        return "n/a"
    return f"{int(value):,}" if whole else f"{value:.4f}"


def clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def breakable_path(path: str) -> str:
    """A path that wraps after its slashes, not inside a name."""
    return "/<wbr>".join(html.escape(part) for part in path.split("/"))
