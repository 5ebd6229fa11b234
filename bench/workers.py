"""Worker processes for a benchmark run, and the RSS sampler that watches them.

Each run gets its own task queue and its own `python worker.py` processes (the project's
worker, as `dataimport up` runs it), started with the bench stack's environment and the
staging-retention schedule off. A run starts importing only once every worker polls both the
workflow and the activity side of the queue, so worker start-up is not timed.

The sampler reads the resident set size (psutil) of each worker and all its children every
SAMPLE_SECONDS and keeps each worker's peak and the peak of their sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 0.1
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def _tree_rss(proc: psutil.Process, children: bool = True) -> int:
    """RSS of a process plus (with `children`) its children, in bytes (0 once it is gone)."""
    try:
        procs = [proc, *(proc.children(recursive=True) if children else [])]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


@dataclass
class RssSampler:
    """Samples the RSS of `pids` (with their children unless children=False) until stopped."""

    pids: Sequence[int]
    children: bool = True
    peaks: dict[int, int] = field(default_factory=dict)
    peak_total: int = 0
    first: dict[int, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        procs = {pid: psutil.Process(pid) for pid in self.pids}
        self.first = {pid: _tree_rss(p, self.children) for pid, p in procs.items()}

        def loop() -> None:
            while not self._stop.is_set():
                sizes = {pid: _tree_rss(p, self.children) for pid, p in procs.items()}
                for pid, size in sizes.items():
                    self.peaks[pid] = max(self.peaks.get(pid, 0), size)
                self.peak_total = max(self.peak_total, sum(sizes.values()))
                self.samples += 1
                self._stop.wait(SAMPLE_SECONDS)

        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def worker_env(
    state_dir: Path, database_url: str, temporal_address: str, task_queue: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "DATAIMPORT_HOME": str(state_dir),
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "DATAIMPORT_TASK_QUEUE": task_queue,
        "DATAIMPORT_STORAGE_DIR": str(state_dir / "uploads"),
        "DATAIMPORT_STAGING_RETENTION_SCHEDULE": "false",
    }
    paths = [*filter(None, env.get("PYTHONPATH", "").split(os.pathsep)), str(PROJECT_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


@dataclass
class WorkerProcesses:
    """`count` `python worker.py` processes on `task_queue`; logs in state_dir/logs/."""

    state_dir: Path
    env: Mapping[str, str]
    task_queue: str
    count: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start(self) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for n in range(self.count):
            with (logs / f"bench-worker-{self.task_queue}-{n}.log").open("ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "worker.py"],
                        cwd=PROJECT_ROOT,
                        env=dict(self.env),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    async def wait_ready(self, client: Client) -> None:
        """Until every worker polls the workflow and the activity side of the queue."""
        host = socket.gethostname()
        wanted = {f"{pid}@{host}" for pid in self.pids}
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"worker {proc.pid} exited with {proc.returncode}; see "
                        f"{self.state_dir / 'logs'}"
                    )
            seen = [await self._pollers(client, kind) for kind in _QUEUE_TYPES]
            if all(wanted <= identities for identities in seen):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"workers {self.pids} not polling {self.task_queue} after start")

    async def _pollers(self, client: Client, kind: TaskQueueType.ValueType) -> set[str]:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=kind,
            )
        )
        return {poller.identity for poller in response.pollers}

    def stop(self) -> None:
        """SIGTERM (graceful drain), then SIGKILL after STOP_TIMEOUT; only our own pids."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_QUEUE_TYPES = (
    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
)
