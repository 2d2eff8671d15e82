"""Headless Chromium for tests that look at pages as a person would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

# This machine's network is closed: without these Chromium keeps trying to reach its services.
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")

needs_chromium = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `apt-get install -y "
                       "chromium` (or `make system-deps`) to run it"),
]


def run_chromium(profile: Path, *args: str, width: int = 1280,
                 height: int = 2000) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile; `args` say what to do (--screenshot=...)."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
         *args], capture_output=True, text=True, timeout=120, check=True)
