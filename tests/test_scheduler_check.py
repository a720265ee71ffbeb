"""A scheduler address is checked before a batch command reads or writes anything."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.test_jobs import JOB
from weatherunc.cli import app
from weatherunc.pipelines.execution import JOB_SCHEDULERS, SchedulerError, check_scheduler

runner = CliRunner()


@pytest.fixture
def free_address() -> str:
    """A TCP address on this machine where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture
def listening_address() -> str:
    """A TCP address on this machine that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("name", ["threads", "processes", "synchronous"])
def test_local_schedulers_pass(name: str) -> None:
    check_scheduler(name)


def test_job_schedulers_pass_and_processes_is_not_one_of_them() -> None:
    for name in JOB_SCHEDULERS:
        check_scheduler(name, local=JOB_SCHEDULERS)
    with pytest.raises(SchedulerError, match="'processes' failed check 'address'.*one of local, threads"):
        check_scheduler("processes", local=JOB_SCHEDULERS)


@pytest.mark.parametrize("address", ["bogus", "tcp://host", "tcp://:8786", "tcp://host:port", "tcp://h:0"])
def test_malformed_address_names_it(address: str) -> None:
    with pytest.raises(
        SchedulerError, match=f"scheduler '{address}' failed check 'address'.*tcp://host:8786"
    ):
        check_scheduler(address)


def test_unreachable_address_fails_fast(free_address: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SchedulerError, match=f"'{free_address}' failed check 'reachable'"):
        check_scheduler(free_address)
    assert time.perf_counter() - start < 5


def test_listening_address_passes(listening_address: str) -> None:
    check_scheduler(listening_address)
    check_scheduler(listening_address.removeprefix("tcp://"))  # distributed's default protocol


def test_run_refuses_an_unreachable_scheduler_before_any_work(tmp_path: Path, free_address: str) -> None:
    """The command in a process of its own, imports included: a clear error within a few seconds."""
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({**JOB, "output_dir": str(tmp_path / "out")}))
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "weatherunc.cli", "run", str(config), "--scheduler", free_address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"scheduler '{free_address}' failed check 'reachable'" in result.stderr
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists(), "nothing is written before the scheduler is checked"


def test_ingest_and_demo_refuse_a_malformed_scheduler(tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    result = runner.invoke(app, ["ingest", "mrms_embedded", "--out", str(out), "--scheduler", "bogus"])
    assert result.exit_code == 2 and "'bogus' failed check 'address'" in result.output
    assert not out.exists()
    result = runner.invoke(app, ["demo", "--out-dir", str(tmp_path / "demo"), "--scheduler", "tcp://x"])
    assert result.exit_code == 2 and "'tcp://x' failed check 'address'" in result.output
    assert not (tmp_path / "demo").exists()


def test_a_local_cluster_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local cluster's nannies set OMP_NUM_THREADS=1 in this process's environment; closed, the
    cluster leaves it as before (unset, or its value), so later processes keep their threads."""
    import os

    from weatherunc.pipelines.execution import cluster_client

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    with cluster_client("local", workers=1) as client:
        assert client.submit(os.environ.get, "OMP_NUM_THREADS").result() == "1"  # the worker's
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "2"
