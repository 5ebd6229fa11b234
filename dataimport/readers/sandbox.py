"""python-calamine in a child process with memory and CPU limits.

calamine is native code reading an untrusted file: an allocation it cannot make aborts the
process (calamine issue #693), and no exception handler catches that. So a sheet is loaded by
this file run as a script in a child interpreter (`python -I`, nothing of the project
imported) under RLIMIT_AS and RLIMIT_CPU. The child writes the sheet's rows to a spool file,
one JSON array per row (values tagged by type: never pickle, since the child parsed untrusted
bytes); the parent replays the spool as often as it reads the sheet, holding one row at a time.

A crash, a signal or a limit in the child is UNREADABLE_FILE in the parent (a classified,
non-retryable failure: a retry would only crash the next child the same way). calamine
refusing the workbook with an error is REJECTED: the parent then streams it with openpyxl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic

MEMORY_LIMIT_BYTES = 4 * 1024**3  # address space of the child (calamine + one row of Python)
CPU_LIMIT_SECONDS = 300  # and twice that in wall time: a child blocked without CPU is killed
REJECTED_EXIT = 3  # calamine raised: not a workbook it can read (openpyxl is tried next)
MEMORY_EXIT = 4  # a Python-level MemoryError under the address-space limit
_ERROR_KEY = "error"  # a spool line {"error": ...}: a cell calamine cannot convert


class SheetRejected(Exception):
    """calamine refused the workbook (a normal error, not a crash)."""


class SandboxFailed(Exception):
    """The child crashed or hit a limit; `reason` says which, for UNREADABLE_FILE."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowUnreadable(Exception):
    """calamine could not convert a row's cell (the parent reports it as invalid-xlsx)."""


class SpooledSheet:
    """A sheet the child loaded: its rows, replayable, from the spool file."""

    def __init__(self, spool: Path) -> None:
        self._spool: Path | None = spool

    def iter_rows(self) -> Iterator[list[object]]:
        assert self._spool is not None, "sheet released"
        with self._spool.open(encoding="utf-8") as handle:
            for line in handle:
                # Tagged values are the only objects inside a row: the hook decodes them as
                # they are parsed, so a row of plain cells costs no pass of its own.
                decoded = json.loads(line, object_hook=_decoded_object)
                if isinstance(decoded, dict):
                    raise RowUnreadable(str(decoded.get(_ERROR_KEY, "unknown error")))
                yield decoded

    def release(self) -> None:
        if self._spool is not None:
            self._spool.unlink(missing_ok=True)
            self._spool = None

    def __del__(self) -> None:
        self.release()


class PendingSheet:
    """A sheet whose child is running: wait() for its rows, cancel() when they are not wanted.

    Started ahead, a child reads the next sheet while the parent works through the previous
    one; the readers start one only when the previous child has finished, so at most one child
    (and its memory) is alive at a time.
    """

    def __init__(self, path: Path, sheet_name: str) -> None:
        handle, spool_name = tempfile.mkstemp(prefix="dataimport-sheet-", suffix=".jsonl")
        os.close(handle)  # mkstemp: 0600, a name nobody else can predict
        self._spool = Path(spool_name)
        # stderr goes to a file, not a pipe: a chatty child can never block on a full pipe.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by wait() or cancel()
        self._deadline = monotonic() + 2 * CPU_LIMIT_SECONDS
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._process = self._start(path, sheet_name)
        except BaseException:
            self._discard()
            raise

    def _start(self, path: Path, sheet_name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-I",
                __file__,
                str(path),
                sheet_name,
                str(self._spool),
                str(MEMORY_LIMIT_BYTES),
                str(CPU_LIMIT_SECONDS),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def wait(self) -> SpooledSheet:
        """The sheet's rows once the child has exited (SheetRejected, SandboxFailed)."""
        process = self._process
        assert process is not None, "sheet already collected"
        self._process = None
        try:
            code = process.wait(timeout=max(0.0, self._deadline - monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self._discard()
            raise SandboxFailed(f"no result within {2 * CPU_LIMIT_SECONDS} s") from None
        if code == 0:
            self._stderr.close()
            return SpooledSheet(self._spool)
        self._stderr.seek(0)
        message = self._stderr.read().decode("utf-8", "replace")[-300:]
        self._discard()
        if code == REJECTED_EXIT:
            raise SheetRejected(message)
        raise SandboxFailed(_reason(code))

    def cancel(self) -> None:
        """Stop the child (if it still runs) and remove its spool."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            self._discard()

    def _discard(self) -> None:
        self._stderr.close()
        self._spool.unlink(missing_ok=True)

    def __del__(self) -> None:
        self.cancel()


def start_sheet(path: Path, sheet_name: str) -> PendingSheet:
    """Start the limited child reading one sheet; PendingSheet.wait() gives its rows."""
    return PendingSheet(path, sheet_name)


def load_sheet(path: Path, sheet_name: str) -> SpooledSheet:
    """The sheet's rows as the limited child read them (SheetRejected, SandboxFailed)."""
    return start_sheet(path, sheet_name).wait()


def _reason(code: int) -> str:
    limits = f"{MEMORY_LIMIT_BYTES / 1024**2:,.0f} MiB of memory, {CPU_LIMIT_SECONDS} s of CPU"
    if code == MEMORY_EXIT:
        return f"the workbook reader ran out of memory (limits: {limits})"
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return f"the workbook reader was stopped at its limits ({limits})"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"the workbook reader crashed ({name}; limits: {limits})"
    return f"the workbook reader failed (exit status {code}; limits: {limits})"


# ----- values across the process boundary -----------------------------------------------------


def _encoded(value: object) -> object:
    """json.dumps' `default`: called only for what JSON has no type for (dates, times,
    durations), so a row of plain cells is encoded without a Python call per cell."""
    if isinstance(value, datetime):
        return {"t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {"t": "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {"t": "timedelta", "v": value.total_seconds()}
    return str(value)


def _decoded_object(value: dict[str, object]) -> object:
    """A tagged value ({"t": kind, "v": raw}) as its type; any other object (the error line)
    as it is."""
    if "t" not in value:
        return value
    kind, raw = value.get("t"), value.get("v")
    if kind == "datetime" and isinstance(raw, str):
        return datetime.fromisoformat(raw)
    if kind == "date" and isinstance(raw, str):
        return date.fromisoformat(raw)
    if kind == "time" and isinstance(raw, str):
        return time.fromisoformat(raw)
    if kind == "timedelta" and isinstance(raw, int | float):
        return timedelta(seconds=raw)
    return str(raw)


# ----- the child ---------------------------------------------------------------------------------


def _limit_self(memory: int, cpu: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core with cell data


def _child(path: str, sheet_name: str, spool: str, memory: int, cpu: int) -> int:
    _limit_self(memory, cpu)
    try:
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_path(path)
            try:
                sheet = workbook.get_sheet_by_name(sheet_name)
            finally:
                workbook.close()
        except MemoryError:
            return MEMORY_EXIT
        except Exception as error:
            print(f"{type(error).__name__}", file=sys.stderr)  # no text: it may quote cells
            return REJECTED_EXIT
        with open(spool, "w", encoding="utf-8") as out:
            rows = iter(sheet.iter_rows())
            while True:
                try:
                    values = next(rows)
                except StopIteration:
                    break
                except Exception as error:  # a cell calamine cannot convert
                    out.write(json.dumps({_ERROR_KEY: str(error)[:300]}) + "\n")
                    break
                out.write(json.dumps(values, default=_encoded) + "\n")
    except MemoryError:
        return MEMORY_EXIT
    return 0


if __name__ == "__main__":
    file, sheet, out, memory, cpu = sys.argv[1:6]
    sys.exit(_child(file, sheet, out, int(memory), int(cpu)))
