"""Every test here runs on a stream as strict as DynamoDB Streams (devkit.strict.streams): several shards that
split, empty pages, trims, whole-second times, at-least-once concurrent delivery. A local stack brings its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.strict.streams import StrictStreams


@pytest.fixture
def streams() -> Iterator[StrictStreams]:
    """The strict stream in place of moto's (for tests on moto without a local stack)."""
    model = StrictStreams(split_every=40)
    patches = model.patches()
    for patch in patches:
        patch.start()
    yield model
    for patch in reversed(patches):
        patch.stop()
