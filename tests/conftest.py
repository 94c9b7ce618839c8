"""Shared fixtures: where the real captures are, and skipping cleanly without them.

The corpus is found through ``XCOL_CORPUS`` (default ``<repo>/../shared/corpus``).
Tests that need it use the ``corpus`` fixture, ``capture.need()`` or the
``corpus`` marker, and are skipped with the path they looked at when it
is absent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers: capture, reference

from capture import CORPUS_ENV, corpus_root  # noqa: E402

SKIP_REASON = (
    f"real captures not found at {corpus_root()} "
    f"(set {CORPUS_ENV} to the shared corpus directory)"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corpus: the test replays real captures from XCOL_CORPUS")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Anything marked ``corpus`` is skipped as a whole when the corpus is absent.
    if corpus_root().is_dir():
        return
    for item in items:
        if item.get_closest_marker("corpus"):
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus root directory (skips when absent)."""
    root = corpus_root()
    if not root.is_dir():
        pytest.skip(SKIP_REASON)
    return root
