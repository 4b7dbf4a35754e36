"""One lock file: what the tests run with is what a clean clone installs and what the Lambda layer ships."""

import importlib.metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> dict[str, str]:
    """name -> version for every `name==version` line that applies to this interpreter."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, version = (part.strip() for part in requirement.split("==", 1))
        pins[canonicalize_name(name.split("[", 1)[0])] = version
    return pins


LOCK = _pins(ROOT / "requirements.lock")


def test_the_layer_ships_the_locked_versions():
    """The layer's botocore replaces the runtime's and the fast paths hook its internals: it ships as tested."""
    layer = _pins(ROOT / "layers/core/requirements.txt")
    assert {"boto3", "botocore", "aws-lambda-powertools", "msgspec", "isal", "pydantic"} <= layer.keys()
    differ = {name: (version, LOCK.get(name)) for name, version in layer.items() if LOCK.get(name) != version}
    assert not differ, f"layer pin != requirements.lock (run: make lock): {differ}"


def test_every_requirement_of_the_layer_is_pinned():
    wanted = {
        canonicalize_name(line.split("[", 1)[0].strip())
        for line in (ROOT / "layers/core/requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert wanted <= _pins(ROOT / "layers/core/requirements.txt").keys(), "run: make lock"


def test_the_tests_run_the_locked_versions():
    """A venv that drifted from the lock (an install by hand, an old venv) fails here, not in production."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    differ = {name: (installed.get(name), version) for name, version in LOCK.items() if installed.get(name) != version}
    assert not differ, f"installed != requirements.lock (run: make venv): {differ}"
