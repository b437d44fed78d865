"""How many workers `--workers auto` and a number start (in-process: no build runs)."""

from __future__ import annotations

from pretrain_records.pipeline import executors
from pretrain_records.pipeline.config import resolve
from pretrain_records.pipeline.unit_job import UnitJob

MB = 1 << 20


def jobs(megabytes: int, dupe_factor: int, units: int = 4, masking: str = "static"):
    config = resolve({"dupe_factor": dupe_factor, "masking": masking})
    size = megabytes * MB // units
    return [UnitJob(f"f{i}", f"k{i}", f"u{i}", (), (size,), config) for i in range(units)]


def chosen(workers, todo, monkeypatch, cores=2):
    monkeypatch.setattr(executors, "available_cores", lambda: cores)
    executor = executors.executor_for("local", workers, {}, todo)
    return executor.workers if isinstance(executor, executors.Processes) else 1


def test_auto_counts_input_bytes_times_dupe_passes(monkeypatch):
    assert chosen(None, jobs(64, 1), monkeypatch) == 1  # 64 MB x 1: start-up costs more
    assert chosen(None, jobs(20, 5), monkeypatch) == 1  # 100 MB of passes
    assert chosen(None, jobs(64, 5), monkeypatch) == 2  # 320 MB of passes
    assert chosen(None, jobs(64, 5, masking="dynamic"), monkeypatch) == 1  # one pass
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=8) == 8  # capped by the cores
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=1) == 1


def test_a_number_of_workers_is_taken_as_given_while_there_are_units_to_share(monkeypatch):
    assert chosen(2, jobs(1, 1), monkeypatch) == 2
    assert chosen(1, jobs(6400, 10), monkeypatch) == 1
    assert chosen(2, jobs(64, 5, units=1), monkeypatch) == 1  # one unit: nothing to share
