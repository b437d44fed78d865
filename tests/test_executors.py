"""How many workers `--workers auto` and a number start, and how a process's pipeline uses its
share (in-process: no build runs)."""

from __future__ import annotations

from pretrain_records.pipeline.config import resolve
from pretrain_records.pipeline.ground import machine
from pretrain_records.pipeline.records.unit_job import UnitJob
from pretrain_records.pipeline.running import executors

MB = 1 << 20


def jobs(megabytes: int, dupe_factor: int, units: int = 4, masking: str = "static"):
    config = resolve({"dupe_factor": dupe_factor, "masking": masking})
    size = megabytes * MB // units
    return [UnitJob(f"f{i}", f"k{i}", f"u{i}", (), (size,), config) for i in range(units)]


def chosen(workers, todo, monkeypatch, cores=2, memory_gb=64):
    monkeypatch.setattr(executors, "available_cores", lambda: cores)
    monkeypatch.setattr(executors, "available_memory", lambda: int(memory_gb * (1 << 30)))
    executor = executors.executor_for("local", workers, {}, todo)
    return executor.workers if isinstance(executor, executors.Processes) else 1


def test_auto_counts_input_bytes_times_dupe_passes(monkeypatch):
    assert chosen(None, jobs(20, 2), monkeypatch) == 1  # 20 MB x 2 passes: start-up costs more
    assert chosen(None, jobs(48, 1), monkeypatch) == 2  # 48 MiB of passes: a second worker
    assert chosen(None, jobs(20, 5), monkeypatch) == 2  # 100 MB of passes
    assert chosen(None, jobs(64, 5, masking="dynamic"), monkeypatch) == 2  # one pass of 64 MB
    assert chosen(None, jobs(40, 5, masking="dynamic"), monkeypatch) == 1  # one pass of 40 MB
    assert chosen(None, jobs(330, 1), monkeypatch, cores=8) == 7
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=8) == 8  # capped by the cores
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=1) == 1
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=8, memory_gb=3.5) == 3  # 1 GiB each
    assert chosen(None, jobs(6400, 1), monkeypatch, cores=8, memory_gb=0.5) == 1


def test_available_memory_is_at_most_what_the_kernel_reports():
    with open("/proc/meminfo") as stream:
        reported = next(int(line.split()[1]) for line in stream if line.startswith("MemAvailable"))
    memory = machine.available_memory()
    assert memory is not None and 0 < memory <= reported * 1024 + (512 << 20)  # others move


def test_a_number_of_workers_is_taken_as_given_while_there_are_units_to_share(monkeypatch):
    assert chosen(2, jobs(1, 1), monkeypatch) == 2
    assert chosen(1, jobs(6400, 10), monkeypatch) == 1
    assert chosen(2, jobs(64, 5, units=1), monkeypatch) == 1  # one unit: nothing to share


def test_a_process_pipeline_has_fixed_parallelism_and_no_autotuning(english_model, monkeypatch):
    """Its parallelism is fixed (a worker's share of the cores), so tf.data's autotuning is
    off: its model thread held up every worker's end by seconds."""
    from pretrain_records.pipeline.records import unit_pipeline
    from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

    tokenizer = Tokenizer(english_model.read_bytes(), name="spm.model")
    todo = jobs(1, 1)
    for threads, expected in ((1, 1), (None, 5)):
        monkeypatch.setattr(unit_pipeline, "available_cores", lambda: 5)
        records = unit_pipeline.units_records(todo, lambda: None, tokenizer, threads)
        options = records.options()
        assert options.autotune.enabled is False
        assert options.threading.private_threadpool_size == expected + unit_pipeline.UNITS_AT_ONCE
        assert list(records) == []  # no unit claimed: no records
