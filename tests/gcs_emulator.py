"""A Google Cloud Storage API server on localhost for the tests, and a fresh bucket per test.

The server is gcp-storage-emulator (the `test` extra installs it), run in memory as a
subprocess of its own on a free port of 127.0.0.1; `STORAGE_EMULATOR_HOST` points Google's
client at it, in this process and in the CLI subprocesses the tests start (they inherit it).
Nothing leaves localhost. Use it from a test module:

    pytest_plugins = ["tests.gcs_emulator"]

What the emulator does not do as GCS does (found by tests/test_gcs_storage.py): it ignores the
preconditions (`ifGenerationMatch`) and the `generation` of a read.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

START_SECONDS = 60


@dataclasses.dataclass
class Emulator:
    url: str  # what STORAGE_EMULATOR_HOST is set to
    log: Path  # the server's log: one line per request it answered, with its query string
    process: subprocess.Popen

    def request_lines(self) -> list[str]:
        """The request lines the server logged (`"GET /path?query HTTP/1.1" 200 -`)."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if '"' in line]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(log: Path) -> tuple[str, subprocess.Popen]:
    """Starts the server on a free port and waits until it answers (a port taken meanwhile by
    someone else: another port)."""
    for _ in range(3):
        port = _free_port()
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "gcp_storage_emulator", "start"]
                + ["--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as answer:
                    if answer.status == 200:
                        return url, process
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        _stop(process)
    raise RuntimeError(f"gcp-storage-emulator did not start:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The running server; STORAGE_EMULATOR_HOST set for the session's remaining tests."""
    log = tmp_path_factory.mktemp("gcs-emulator") / "server.log"
    url, process = _start(log)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STORAGE_EMULATOR_HOST", url)
            yield Emulator(url, log, process)
    finally:
        _stop(process)


@pytest.fixture()
def gcs_bucket(gcs_emulator: Emulator) -> str:
    """`gs://NAME` of a new, empty bucket of the emulator, this test's own."""
    from pretrain_records.pipeline.storage import gcs

    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator.url
    name = f"mpr-test-{uuid.uuid4().hex[:12]}"
    gcs.client().create_bucket(name, project="mpr-tests")
    return f"gs://{name}"
