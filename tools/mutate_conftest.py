"""Staged by ``tools/mutate.py`` as the root ``conftest.py`` of each mutation run: the tests a mutant
is most likely to fail run first, and a test the mutant makes hang stops that mutant at once.

mutmut hands each mutant's tests to pytest in set order (random) and stops at the first failure, so
a mutant only one test can kill ran, on average, half its module's tests first. Here:

- the clean run (``MUTANT_UNDER_TEST`` empty) records each test's time, setup and teardown included;
- a test that fails under a mutant is recorded against the mutated function (one line per kill,
  appended; each mutant runs in its own forked process);
- a mutant's tests run ordered by the kills recorded against its function, most first, then by
  the kills against any function, then fastest first: mutants of one function tend to fall to the
  same tests;
- a recorded equivalent whose function is unchanged (``mutate-skip.txt``) runs no test (pytest
  exits 5, "no tests"): ``tools/mutate.py`` then checks its mutated line and function hash;
- a test that runs longer than ``SLOWER`` times its clean time (at least ``FLOOR`` seconds) ends the
  mutant's process with exit code 36, which mutmut counts as a timeout, as it would have after
  the whole set's time times its multiplier: the same verdict, minutes sooner.

Two costs every mutant paid, for nothing, are gone: ``tools/mutate.py`` turns off pytest's
unraisable-exception plugin (it runs ``gc.collect()`` twice as each run ends: ~0.3 s a mutant
with moto loaded), and botocore's parsed service models are shared by every session of the
process tree (each test makes new sessions, each parsed the S3 model again: ~0.1 s a client).

Only order and the time allowed change: every test a mutant survives still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.loaders
import botocore.session
import pytest

HERE = Path(__file__).resolve().parent
KILLS = HERE / "mutate-kills.log"
DURATIONS = HERE / "mutate-durations.json"
SLOWER = 10.0
FLOOR = 10.0
TIMEOUT_EXIT = 36  # mutmut's exit code for a mutant that timed out

_durations: dict[str, float] = {}  # this (clean) run's times, written at its end
_clean: dict[str, float] = {}  # the clean run's times, read once a mutant's tests are collected
_models: dict[tuple[Any, ...], Any] = {}
_load_service_model = botocore.loaders.Loader.load_service_model
_load_data = botocore.loaders.Loader.load_data


def _shared_service_model(self: Any, service_name: str, type_name: str, api_version: str | None = None) -> Any:
    key = ("model", service_name, type_name, api_version)
    if key not in _models:
        _models[key] = _load_service_model(self, service_name, type_name, api_version)
    return _models[key]


def _shared_data(self: Any, name: str) -> Any:
    key = ("data", name)
    if key not in _models:
        _models[key] = _load_data(self, name)
    return _models[key]


def _share_service_models() -> None:
    """Parse each botocore model once, here, before mutmut forks a process per mutant."""
    botocore.loaders.Loader.load_service_model = _shared_service_model  # type: ignore[method-assign]
    botocore.loaders.Loader.load_data = _shared_data  # type: ignore[method-assign]
    session = botocore.session.get_session()
    for service in ("dynamodb", "s3", "dynamodbstreams", "stepfunctions", "lambda", "cloudformation"):
        for kind in ("service-2", "paginators-1", "waiters-2"):
            with contextlib.suppress(botocore.exceptions.DataNotFoundError):
                session.get_component("data_loader").load_service_model(service, kind)


_share_service_models()


def _mutant() -> str:
    """The mutant under test, or '' in mutmut's clean, stats and forced-fail runs."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name if "__mutmut_" in name else ""


def _function(mutant: str) -> str:
    return mutant.rpartition("__mutmut_")[0]


def _clean_durations() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        return {}


def _kills() -> tuple[Counter[tuple[str, str]], Counter[str]]:
    by_function: Counter[tuple[str, str]] = Counter()
    by_test: Counter[str] = Counter()
    try:
        lines = KILLS.read_text().splitlines()
    except OSError:
        return by_function, by_test
    for line in lines:
        function, _, test = line.partition("\t")
        if test:
            by_function[function, test] += 1
            by_test[test] += 1
    return by_function, by_test


def _skipped() -> set[str]:
    try:
        return set((HERE / "mutate-skip.txt").read_text().split())
    except OSError:
        return set()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Under a mutant: none for a recorded equivalent not to run again, else the likeliest killers first, then the fastest."""
    mutant = _mutant()
    if not mutant:
        return
    if mutant in _skipped():  # tools/mutate.py checks its line and function after the run
        config.hook.pytest_deselected(items=list(items))
        items.clear()
        return
    function = _function(mutant)
    _clean.update(_clean_durations())
    by_function, by_test = _kills()
    items.sort(key=lambda i: (-by_function[function, i.nodeid], -by_test[i.nodeid], _clean.get(i.nodeid, 60.0)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    """Time each test in the clean run; under a mutant, stop one that runs far past its clean time."""
    mutant = _mutant()
    if not mutant:
        started = time.perf_counter()
        yield
        _durations[item.nodeid] = time.perf_counter() - started
        return
    allowed = max(FLOOR, SLOWER * _clean.get(item.nodeid, FLOOR))

    def hung(signum: int, frame: Any) -> None:
        os._exit(TIMEOUT_EXIT)

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, allowed)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_logreport(report: Any) -> None:
    """Under a mutant, record the test that failed against the mutated function."""
    mutant = _mutant()
    if mutant and report.failed:
        with KILLS.open("a") as out:
            out.write(f"{_function(mutant)}\t{report.nodeid}\n")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """After the clean run (every test passed), keep each test's time for ordering and timeouts."""
    if not _mutant() and _durations and exitstatus == 0 and os.environ.get("MUTANT_UNDER_TEST") == "":
        DURATIONS.write_text(json.dumps(_durations, sort_keys=True))
