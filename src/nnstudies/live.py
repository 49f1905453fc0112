"""Live curves: a stage's per-epoch metrics reach MLflow while it trains.

The outbox (nnstudies.tracking) sends a run when its stage ends.  A stage that still logs
metrics after ``NNSTUDIES_LIVE_AFTER`` seconds (default 5; ``off``: never) also gets a
follower: a detached ``python -m nnstudies.live`` that creates the MLflow run, RUNNING, and
every ``EVERY`` seconds sends the metric lines the stage appended to its folder
``<repo root>/.nnstudies/live/<id>/``:

- ``start.json``: the stage's pid, store, experiment, params and tags at its start;
- ``metrics.jsonl``: one line per metric, in the order the Run buffers them (so the first n
  lines of the file are the first n metrics of the run's record);
- ``sent.json``: the follower's run id, how many lines it sent, which params, and ``final``;
- ``done``: written by the stage at its end: ``record`` (its record is in the outbox) or
  ``discard`` (no run wanted: bad input, or no record could be written).

When the record is sent, the sender adopts the live run (:func:`adopt`): it waits for the
follower's last batch, then logs only what the follower did not send (later metrics, new
params, artifacts), so the run a user watched is the run that lands, with no point twice.
Nothing of this is on the DVC outputs' path: a store that is down, slow or refusing means no
live run, and the record lands later from the outbox as before.  A stage killed outright
leaves its live run KILLED (the follower sees its pid gone).  Short stages never start MLflow
twice, nor a stage that stops on bad input: nothing starts before the delay is over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

EVERY = 1.0  # seconds between two batches of a follower
WAIT = 60.0  # seconds a sender waits for a follower's last batch before it sends without it
TAG = "nnstudies.live"  # on a live run: its folder's id
_ID = re.compile(r"^[0-9a-f]{16}$")
_FOLLOWERS: list[subprocess.Popen] = []  # held so that no "still running" warning fires on exit


def delay() -> float | None:
    """Seconds a stage runs before its follower starts a live run; None: never."""
    text = os.environ.get("NNSTUDIES_LIVE_AFTER", "5").strip().lower()
    if text in ("off", "no", "false", "never"):
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        return 5.0


def folder(root: Path, ident: str) -> Path:
    return root / ".nnstudies" / "live" / ident


class Feed:
    """The stage's side: ``start.json``, then one appended line per metric, then ``done``."""

    def __init__(self, root: Path, start: dict, metrics: list[tuple[str, float, int, int]]):
        self.ident = uuid.uuid4().hex[:16]
        self.path = folder(root, self.ident)
        self.path.mkdir(parents=True)
        (self.path / "start.json").write_text(json.dumps({**start, "pid": os.getpid()}))
        self._lines = open(self.path / "metrics.jsonl", "a")  # closed in end()
        self._broken = False
        self.append(metrics)  # those buffered so far
        (self.path / "follower.pid").write_text(str(_spawn(root, self.ident)))

    def append(self, metrics: list[tuple[str, float, int, int]]) -> None:
        """Nothing more once a write failed: the file then holds a prefix of the run's metrics,
        which is all the sender relies on."""
        if self._broken:
            return
        try:
            self._lines.write("".join(json.dumps(m) + "\n" for m in metrics))
            self._lines.flush()
        except (OSError, ValueError):
            self._broken = True

    def end(self, outcome: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._lines.close()
        with contextlib.suppress(OSError):
            (self.path / "done").write_text(outcome)


def _spawn(root: Path, ident: str) -> int:
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    log = root / ".nnstudies" / "outbox" / "sender.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        _FOLLOWERS.append(subprocess.Popen(
            [sys.executable, "-m", "nnstudies.live", str(root), ident], cwd=root, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    return _FOLLOWERS[-1].pid


# -- the follower -------------------------------------------------------------------------

def follow(root: Path, ident: str) -> None:
    """While the stage runs, keep its live run up to date."""
    from nnstudies.atomic import _alive

    with contextlib.suppress(OSError):
        os.nice(19)  # the stage it follows comes first on shared cores
    path = folder(root, ident)
    start = json.loads((path / "start.json").read_text())
    ended = lambda: (path / "done").exists() or not _alive(start["pid"])  # noqa: E731
    if ended():
        return _finish(path, start, None, ended)
    from nnstudies import tracking

    uri = start["uri"]
    if tracking.refused_store(uri, root) or tracking.store_problem(uri):
        return _finish(path, start, None, ended)  # the record lands later, as without a follower
    client, run_id = _create_run(root, path, start, ended)
    if run_id is None:
        return _finish(path, start, None, ended)
    sent, offset = 0, 0
    while True:
        last = ended()  # read after this check: the stage wrote every line before `done`
        with open(path / "metrics.jsonl", "rb") as lines:
            lines.seek(offset)
            chunk = lines.read()
        chunk = chunk[:chunk.rfind(b"\n") + 1]  # whole lines only
        offset += len(chunk)
        batch = [json.loads(line) for line in chunk.splitlines()]
        if batch:
            from mlflow.entities import Metric

            for i in range(0, len(batch), 1000):
                tracking._retry(client.log_batch, run_id,
                                metrics=[Metric(*m) for m in batch[i:i + 1000]])
            sent += len(batch)
            _write_sent(path, run_id, sent, start, final=False)
        if last:
            break
        time.sleep(EVERY)
    _finish(path, start, (client, run_id, sent), ended)


def _create_run(root: Path, path: Path, start: dict, ended):
    """The live run, created under the store's lock (as a sender's runs); given up when the
    stage ends first (its sender, holding the lock, waits for this follower)."""
    from mlflow.entities import Param

    from nnstudies import tracking

    lock_path = tracking.lock_path(start["uri"], root)
    with open(lock_path, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if ended():
                    return None, None
                time.sleep(0.2)
        try:
            client = tracking._open_store(start["uri"])
            experiment_id = tracking._experiment_id(client, start["experiment"], start["uri"], root)
            run_id = tracking._retry(client.create_run, experiment_id, start_time=start["start_ms"],
                                     tags={**start["tags"], TAG: path.name}).info.run_id
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    params = [Param(k, v) for k, v in start["params"].items()]
    for i in range(0, len(params), 100):
        tracking._retry(client.log_batch, run_id, params=params[i:i + 100])
    _write_sent(path, run_id, 0, start, final=False)
    return client, run_id


def _write_sent(path: Path, run_id: str, sent: int, start: dict, final: bool) -> None:
    from nnstudies import atomic

    atomic.write_text(path / "sent.json", json.dumps(
        {"run_id": run_id, "metrics": sent, "params": sorted(start["params"]), "final": final}))


def _finish(path: Path, start: dict, live, ended) -> None:
    """``done: record``: leave the folder for the sender (final); ``discard``: delete the live
    run; no ``done`` but the stage is gone (killed): the run ends KILLED."""
    outcome = (path / "done").read_text().strip() if (path / "done").exists() else None
    if outcome == "record":
        if live:
            _write_sent(path, live[1], live[2], start, final=True)
        else:
            from nnstudies import atomic

            atomic.write_text(path / "sent.json", json.dumps({"run_id": None, "final": True}))
        return
    if live:
        from nnstudies import tracking

        client, run_id, _ = live
        if outcome == "discard":
            tracking._retry(client.delete_run, run_id)
        else:
            tracking._retry(client.set_terminated, run_id, "KILLED")
    shutil.rmtree(path, ignore_errors=True)


# -- the sender's side ----------------------------------------------------------------------

def adopt(client, experiment_id: str, rec: dict, root: Path) -> tuple[str, int, set[str]] | None:
    """The record's live run, once its follower has sent its last batch: (run id, metric lines
    it sent, param keys it sent); None when there is none to adopt.  A follower still busy
    after ``WAIT`` seconds loses its run (deleted: the record is sent whole instead)."""
    from nnstudies.atomic import _alive

    ident = rec.get("live")
    if not isinstance(ident, str) or not _ID.match(ident):
        return None
    path = folder(root, ident)
    if not path.is_dir():
        return None
    deadline = time.time() + WAIT
    while True:
        sent = _read_sent(path)
        if sent.get("final") or time.time() > deadline:
            break
        for follower in _FOLLOWERS:
            follower.poll()  # a follower of this very process (a synchronous send) is reaped
        pid = _follower_pid(path)
        if pid <= 0 or not _alive(pid):
            break  # it died before its last batch: its run is deleted below
        time.sleep(0.2)
    run_id = sent.get("run_id")
    if not isinstance(run_id, str):
        return None
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - gone or unreadable: the record is sent whole
        return None
    if run.info.experiment_id != experiment_id or run.data.tags.get(TAG) != ident or \
            run.info.status != "RUNNING":
        return None
    if not sent.get("final"):
        from nnstudies import tracking

        tracking._retry(client.delete_run, run_id)
        return None
    count = sent.get("metrics")
    count = count if isinstance(count, int) and 0 <= count <= len(rec["metrics"]) else 0
    return run_id, count, {k for k in sent.get("params", []) if isinstance(k, str)}


def _follower_pid(path: Path) -> int:
    try:
        return int((path / "follower.pid").read_text())
    except (OSError, ValueError):
        return -1


def _read_sent(path: Path) -> dict:
    return _read_json(path / "sent.json")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def forget(rec: dict, root: Path) -> None:
    """The record landed: its live folder goes."""
    ident = rec.get("live")
    if isinstance(ident, str) and _ID.match(ident):
        shutil.rmtree(folder(root, ident), ignore_errors=True)


def main(argv: list[str]) -> int:
    """A follower: no traceback in the sender's log, one line naming what failed."""
    root, ident = Path(argv[0]), argv[1]
    try:
        follow(root, ident)
    except Exception as err:  # noqa: BLE001 - the record still lands whole from the outbox
        from nnstudies.tracking import _one_line

        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f"{stamp} [{os.getpid()}] live run {ident} stopped: {_one_line(err)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
