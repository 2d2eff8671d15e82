"""The investigation page in headless Chromium: its screenshot shows the sections in order."""

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))

from browser import needs_chromium, run_chromium  # noqa: E402
from investigation_records import investigation  # noqa: E402

from casebook.executor.narration import narrate_deterministic  # noqa: E402
from casebook.executor.reports.html import render_html  # noqa: E402

# Colours the stylesheet gives each landmark (RGB).
BANNER_AMBER = (245, 158, 11)
CHART_BLUE = (37, 99, 235)
SCORE_ORANGE = (249, 115, 22)
CITE_CHIP = (224, 231, 255)
QUERY_DARK = (15, 23, 42)

pytestmark = needs_chromium


def screenshot(page: Path, out: Path, profile: Path) -> np.ndarray:
    run_chromium(profile, f"--screenshot={out}", page.as_uri())
    return read_png(out)


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB(A) PNG as a height x width x 3 array (enough for Chromium's screenshots)."""
    data = path.read_bytes()
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and color in (2, 6) and interlace == 0
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    image = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        line = np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int64)
        kind = raw[start]
        if kind == 0:
            row = line
        elif kind == 1:
            row = line.reshape(-1, bpp).cumsum(axis=0).reshape(-1) & 255
        elif kind == 2:
            row = (line + prev) & 255
        else:
            row = np.array(_unfilter(kind, line.tolist(), prev.tolist(), bpp), dtype=np.int64)
        image[y] = row
        prev = row
    return image.reshape(height, width, bpp)[:, :, :3]


def _unfilter(kind: int, line: list[int], up: list[int], bpp: int) -> list[int]:
    out = [0] * len(line)
    for i, value in enumerate(line):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (value + ((left + up[i]) >> 1)) & 255
            continue
        corner = up[i - bpp] if i >= bpp else 0
        guess = left + up[i] - corner
        pa, pb, pc = abs(guess - left), abs(guess - up[i]), abs(guess - corner)
        best = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else corner)
        out[i] = (value + best) & 255
    return out


def rows_with(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The row numbers where `color` appears (exactly)."""
    return np.nonzero(np.all(image == np.array(color, dtype=np.uint8), axis=2).any(axis=1))[0]


def test_the_page_shows_banner_summary_chart_causes_in_that_order(tmp_path):
    record = investigation()
    record.narrative = narrate_deterministic(record).model_copy(
        update={
            "fallback_reason": "The Claude API rate-limited the request (HTTP 429) after 3 "
            "attempts."
        }
    )
    page = tmp_path / "inv-test.html"
    page.write_text(render_html(record))

    image = screenshot(page, tmp_path / "inv-test.png", tmp_path / "profile")
    assert image.shape == (2000, 1280, 3)
    banner, chart, score = (rows_with(image, c) for c in (BANNER_AMBER, CHART_BLUE, SCORE_ORANGE))
    assert len(banner) and len(chart) and len(score), "a landmark is missing from the page"
    # The fallback banner sits above the summary and its chart, which sit above the causes.
    assert banner.min() < chart.min() < score.min() < 1000
    # Citation chips link the narrative to its findings, near the top of the page.
    assert rows_with(image, CITE_CHIP).min() < chart.max()
    # Queries stay folded in <details> until asked for.
    assert len(rows_with(image, QUERY_DARK)) == 0
