"""What ``train.py`` checks before it trains, so that no finished run, result or input is lost (not Hub code).

- The output folder must be a folder (or not exist yet); a finished run in it is kept unless
  ``--overwrite-output-dir``.
- One run per output folder: a lock file (``OUT/.train.lock``, the pid and host that hold it) refuses a second
  run; a lock left by a process that no longer exists on this host is taken over, with a warning.
- ``OUT/run_settings.json`` records every setting that changes the result. A resume (``--resume-from``) with
  any other value refuses and names each difference; settings that do not change the result
  (:data:`RESULT_NEUTRAL`, e.g. ``--eval-batch-size``) may change.

Every process of a launch calls :func:`guard_output_dir`; only the main one (``RANK`` 0) locks and writes.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
from pathlib import Path

from .settings import TrainSettings

SETTINGS_FILE = "run_settings.json"
LOCK_FILE = ".train.lock"
FINISHED_MARKER = "metrics.json"

RESULT_NEUTRAL = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from",
        "eval_batch_size",
        "logging_steps",
        "report_to",
        "checkpoint_every",
        "keep_checkpoints",
        "data_dir",
        "folds",
        "eval_every_epoch",
    }
)
"""Settings that may differ on a resume: where things go, how often to log or checkpoint, the evaluation
batch size (same predictions), where the corpus is read from (same files, another path), which folds of a
cross-validation this invocation trains (each fold's result is the same), and whether every epoch is also scored
(the model is the same)."""


class RunGuardError(ValueError):
    """The output folder cannot take this run (see the module docstring); the message says why and what to do."""


def result_settings(args: dict) -> dict:
    """The settings of a run that change its result (every argument not in :data:`RESULT_NEUTRAL`), as JSON
    values."""
    return {
        k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
        for k, v in sorted(args.items())
        if k not in RESULT_NEUTRAL
    }


def settings_differences(recorded: dict, current: dict) -> list[str]:
    """``--flag: recorded -> current`` for every result setting that differs (a setting missing on one side
    counts as ``None``)."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        before, now = recorded.get(key), current.get(key)
        if before != now:
            lines.append(f"--{key.replace('_', '-')}: {before!r} when the run started, {now!r} now")
    return lines


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(out: Path) -> Path:
    """Create ``OUT/.train.lock`` atomically (released at exit); raise :class:`RunGuardError` when a live
    process holds it."""
    lock = out / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                holder = {}
            same_host = holder.get("host") == me["host"]
            if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
                print(f"warning: {lock} was left by process {holder['pid']}, which has ended; taking it over")
                lock.unlink(missing_ok=True)
                continue
            raise RunGuardError(
                f"{out} is in use by another train.py run (process {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, lock file {lock}). Wait for it to finish or use another "
                "--output-dir; if no such run exists any more, delete the lock file."
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
        atexit.register(release_lock, lock)  # also when the process ends without train.main's own release
        return lock
    raise RunGuardError(f"could not take the lock {lock}")


def release_lock(lock: Path) -> None:
    """Remove ``lock`` if this process holds it (``train.main`` calls it when the run ends, so a second run in
    the same process, e.g. a notebook, may use the folder)."""
    try:
        if json.loads(lock.read_text(encoding="utf-8")).get("pid") == os.getpid():
            lock.unlink()
    except (OSError, json.JSONDecodeError):
        pass


def guard_output_dir(settings: TrainSettings) -> Path | None:
    """Check ``settings.output_dir`` before any training (see the module docstring); raise :class:`RunGuardError`.
    Returns the lock taken (None on a non-main process), for :func:`release_lock`."""
    out = Path(settings.output_dir)
    if out.exists() and not out.is_dir():
        raise RunGuardError(f"--output-dir {out} is a file, not a folder; nothing was trained")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunGuardError(
                    f"--output-dir {out}: {parent} is a file, not a folder; nothing was trained"
                )
            if not os.access(parent, os.W_OK | os.X_OK) and not out.exists():
                raise RunGuardError(f"--output-dir {out}: {parent} is not writable; nothing was trained")
            break
    if not _is_main_process():
        return None
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise RunGuardError(f"--output-dir {out} is not writable; nothing was trained")
    lock = acquire_lock(out)
    current = result_settings(settings.record())
    recorded_path = out / SETTINGS_FILE
    finished = (out / FINISHED_MARKER).is_file()
    if settings.overwrite_output_dir:
        recorded_path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
        return lock
    if settings.resume_from is not None:
        if recorded_path.is_file():
            recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
            differences = settings_differences(recorded, current)
            if differences:
                raise RunGuardError(
                    f"--resume-from would go on with other settings than the run in {out} started with, so its "
                    "result would be neither run's:\n  "
                    + "\n  ".join(differences)
                    + "\nResume with the same settings, or start afresh with --overwrite-output-dir."
                )
        else:
            recorded_path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
        return lock
    if finished or recorded_path.is_file():
        what = "a finished run" if finished else "a run that did not finish"
        raise RunGuardError(
            f"--output-dir {out} holds {what} ({FINISHED_MARKER if finished else SETTINGS_FILE}); it is kept. "
            "Use another --output-dir, --resume-from latest to go on with the same settings, or "
            "--overwrite-output-dir to replace it."
        )
    recorded_path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return lock
