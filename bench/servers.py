"""Local servers for the benchmarks, each on a free 127.0.0.1 port, stopped on exit; and measured child runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
PYTHON = sys.executable
DYNALITE = BENCH / "node_modules" / ".bin" / "dynalite"
DYNAMODUMP_VENV = BENCH / ".venv-dynamodump"
DYNAMODUMP = DYNAMODUMP_VENV / "bin" / "dynamodump"

#: Credentials and region for local servers (none of them checks signatures).
LOCAL_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def replay() -> Iterator[int]:
    """The replay endpoint (bench.replay) in its own process; yields its port."""
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "bench.replay", "--port", str(port)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("port "):
            raise RuntimeError(f"replay endpoint did not start: {line!r}")
        yield port
    finally:
        if proc.stdin:
            proc.stdin.close()
        _stop(proc)


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@contextmanager
def dynalite() -> Iterator[Server]:
    """dynalite (npm, in memory) on 127.0.0.1; yields its port and pid (one node process, one thread of JS)."""
    ensure_dynalite()
    port = free_port()
    proc = subprocess.Popen(
        [str(DYNALITE), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port)
        yield Server(port, proc.pid)
    finally:
        _stop(proc)


@contextmanager
def moto_s3() -> Iterator[int]:
    """moto's server (S3 here) on 127.0.0.1; yields its port."""
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=10).read()
        yield port
    finally:
        _stop(proc)


def ensure_dynalite() -> None:
    if not DYNALITE.exists():
        if not shutil.which("npm"):
            raise RuntimeError("npm is needed for dynalite (apt-get install npm)")
        print("installing dynalite (npm) into bench/node_modules ...", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=BENCH, check=True)


def ensure_dynamodump() -> None:
    if not DYNAMODUMP.exists():
        print("installing dynamodump (PyPI) into bench/.venv-dynamodump ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DYNAMODUMP_VENV)], check=True)
        subprocess.run([str(DYNAMODUMP_VENV / "bin" / "pip"), "install", "-q", "dynamodump"], check=True)


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM of a process: its own peak RSS (ru_maxrss would include the parent's, carried across exec)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """A child process's wall seconds, CPU seconds (wait4) and peak RSS (VmHWM, read while it runs).

    ``server_cpu``: CPU seconds a watched server process used during the run;
    ``server_busy``: its CPU seconds over the seconds from the first to the last
    moment it was working (20 ms samples above 30 %): how busy the run kept it
    once its data started to flow, leaving out the client's start-up and table
    creation. ``host_steal``: the share of this machine's CPU time its host gave to
    others during the run (``steal`` in /proc/stat): on a shared virtual machine, a run
    with more than a few percent stolen measures the neighbours, not the tool.
    """

    seconds: float
    cpu: float
    peak_rss_mb: float
    stdout: str
    server_cpu: float | None = None
    server_busy: float | None = None
    host_steal: float | None = None


def cpu_steal() -> tuple[float, float] | None:
    """(stolen, all) CPU seconds of this machine so far, from /proc/stat's first line (None elsewhere)."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[7] / tick, sum(fields[:8]) / tick) if len(fields) >= 8 else None


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900.0, server: Server | None = None
) -> Run:
    """Run ``cmd`` to the end; its own rusage (not the benchmark's), and ``server``'s CPU over the run.

    Raises on a non-zero exit.
    """
    WORK.mkdir(exist_ok=True)
    server_before = process_cpu(server.pid) if server else 0.0
    steal_before = cpu_steal()
    out_path = WORK / "last-run.out"
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        peak = 0.0
        samples: list[tuple[float, float]] = []
        while True:
            peak = max(peak, peak_rss_mb(proc.pid))
            if server:
                samples.append((time.perf_counter(), process_cpu(server.pid)))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{text[-3000:]}")
    server_cpu = process_cpu(server.pid) - server_before if server else None
    steal_after = cpu_steal()
    steal = None
    if steal_before and steal_after and steal_after[1] > steal_before[1]:
        steal = (steal_after[0] - steal_before[0]) / (steal_after[1] - steal_before[1])
    return Run(seconds, usage.ru_utime + usage.ru_stime, peak, text, server_cpu, busy_while_working(samples), steal)


def busy_while_working(samples: list[tuple[float, float]], working: float = 0.3) -> float | None:
    """CPU seconds over wall seconds between the first and the last sample interval above ``working`` CPU."""
    busy = [
        i
        for i in range(1, len(samples))
        if samples[i][0] > samples[i - 1][0]
        and (samples[i][1] - samples[i - 1][1]) / (samples[i][0] - samples[i - 1][0]) > working
    ]
    if not busy:
        return None
    (t0, cpu0), (t1, cpu1) = samples[busy[0] - 1], samples[busy[-1]]
    return (cpu1 - cpu0) / (t1 - t0)
