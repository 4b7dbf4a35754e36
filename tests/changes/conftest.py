"""moto's streams as AWS has them (see devkit.streams) for every test here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.streams import stream_patches


@pytest.fixture(autouse=True)
def _streams_as_aws() -> Iterator[None]:
    patches = stream_patches()
    for patch in patches:
        patch.start()
    yield
    for patch in reversed(patches):
        patch.stop()
