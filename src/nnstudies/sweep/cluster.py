"""Run a sweep's points on Dask distributed: a LocalCluster here, or a scheduler's address.

Each point is one task.  Dask reruns the task of a worker that dies on another worker (up to
``distributed.scheduler.allowed-failures`` times), so a sweep survives lost workers; a point
that raises fails the whole sweep, named, before any output is written.  Inputs that many
points share (a grammar) are tasks too, so a worker that joins, or that replaces a dead one,
fetches or recomputes them: nothing is read from a shared disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnstudies import cpu, yamlfile
from nnstudies.errors import UserError
from nnstudies.progress import Progress

CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler (Dask retries within it): a typo fails fast
WORKER_TIMEOUT = 60.0  # seconds a reachable scheduler may take to have one worker


class SweepError(UserError):
    """The sweep could not run, or one of its points raised."""


@dataclass
class Job:
    name: str  # how progress and errors name it: "checker hid=4 seeds=0-11"
    point: dict  # its coordinates and settings: fn's input
    fn: Callable  # fn(point, *args) -> results; importable, workers load it by name
    args: tuple = ()  # may hold futures of shared inputs, resolved on the worker
    rerun: str = ""  # the command that reruns (its first point) alone
    points: list = field(default_factory=list)  # a batch: the sweep points it trains, in order


def grouped(todo: list[dict], by: tuple[str, ...], size: int):
    """(name, settings, part): the points grouped by their values of ``by`` (in order of first
    appearance), cut into parts of at most ``size`` seeds; ``settings``: the part's common
    point with ``seeds`` listed; ``name``: "hid=4 seeds=0-11"."""
    groups: dict[tuple, list[dict]] = {}
    for pt in todo:
        groups.setdefault(tuple(pt[k] for k in by), []).append(pt)
    for values, group in groups.items():
        for i in range(0, len(group), size):
            part = group[i:i + size]
            seeds = [pt["seed"] for pt in part]
            name = " ".join(f"{v}" if k == "task" else f"{k}={v}" for k, v in zip(by, values))
            name += f" seeds={seeds[0]}" + (f"-{seeds[-1]}" if len(seeds) > 1 else "")
            settings = {k: v for k, v in part[0].items() if k != "seed"}
            yield name, {**settings, "seeds": seeds}, part


@contextlib.contextmanager
def quiet(log: Path):
    """Dask's own log records (a lost scheduler prints ~30 lines of traceback) go to ``log``,
    not the terminal: the sweep says what happened in one line of its own."""
    import distributed  # noqa: F401 - its import sets up the loggers redirected here

    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    saved = []
    # Dask gives several of its loggers a terminal handler of their own (distributed.client...)
    names = {n for n in logging.root.manager.loggerDict
             if n.split(".")[0] in ("distributed", "tornado", "bokeh", "asyncio")}
    for name in sorted(names | {"distributed", "tornado", "bokeh", "asyncio"}):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [handler], False
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def connect(scheduler: str, workers: int = 0):
    """A Client of a LocalCluster (``scheduler == "local"``: ``workers`` processes, 0 = one
    per core, one thread each) or of the scheduler at that address.  An address that does not
    answer, or a scheduler without workers, is one SweepError line before any work."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        # Processes, not threads: the points are CPU-bound Python and torch with one thread.
        # Everything listens on 127.0.0.1 only, the scheduler's HTTP routes on a free port.
        with LocalCluster(n_workers=workers or cores(), threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address="127.0.0.1:0",
                          silence_logs=logging.CRITICAL) as local, \
                Client(local) as client:
            yield client
        return
    try:
        _handshake(scheduler)
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise SweepError(f"params.yaml: sweep.scheduler = {yamlfile.show(scheduler)}: no Dask "
                         f"scheduler answers there ({_one_line(err)}); start one (`dask scheduler`, docs/sweeps.md) "
                         "or set sweep.scheduler: local") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except TimeoutError:
            raise SweepError(f"the Dask scheduler at {scheduler} has no worker (waited "
                             f"{WORKER_TIMEOUT:.0f} s): start `dask worker {scheduler}` on a "
                             "machine with this package installed (docs/sweeps.md)") from None
        yield client


def _handshake(address: str) -> None:
    """Dask's Client bounds the TCP connect, but then waits without bound for the peer's
    handshake (distributed.comm.core.connect: ``await comm.read()``), so any other server that
    accepts and stays silent hangs the sweep forever.  Open one comm first, the whole of it
    bounded; a peer that answers with something else than Dask's handshake fails it too."""
    from distributed.comm import connect
    from distributed.security import Security

    async def handshake() -> None:  # with what Client would pass (tls:// settings from config)
        comm = await connect(address, timeout=CONNECT_TIMEOUT,
                             **Security().get_connection_args("client"))
        await comm.close()

    try:  # connect() gives up after CONNECT_TIMEOUT itself; the handshake gets as long again
        asyncio.run(asyncio.wait_for(handshake(), 2 * CONNECT_TIMEOUT))
    except TimeoutError:
        raise OSError(f"a server accepts connections there but sent no Dask handshake within "
                      f"{2 * CONNECT_TIMEOUT:.0f} s") from None
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - garbage from a peer fails in whatever form it takes
        raise OSError("a server answers there, but not in Dask's protocol") from None


def describe(client) -> str:
    """'2 workers, 2 threads at tcp://127.0.0.1:39211'."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    threads = sum(w["nthreads"] for w in workers)
    return f"{len(workers)} workers, {threads} threads at {client.scheduler.address}"


def sharer(client=None) -> Callable:
    """``share(fn, *args)``: an input many points use, computed once.  With a client it is a
    task (its key hashes fn and args), which Dask recomputes if every copy is lost."""
    if client is None:
        return lambda fn, *args: fn(*args)
    return lambda fn, *args: client.submit(fn, *args, pure=True)


def call(fn: Callable, point: dict, *args) -> tuple[Any, dict]:
    """One point, on a worker or here: on the point's ``cpu_path`` (strict: the same bits on
    any x86 worker; a worker that computed on another path before cannot, and the point fails
    saying so), single-threaded (the points are tiny, and one thread adds in one order
    wherever a point runs) and timed (the timing goes to MLflow only)."""
    import torch

    cpu.pin(point.get("cpu_path", "host"), "the point's cpu_path (its study's train group)")
    torch.set_num_threads(1)
    start_ms, clock, cpu_clock = int(time.time() * 1000), time.perf_counter(), time.process_time()
    result = fn(point, *args)
    return result, {"seconds": time.perf_counter() - clock,
                    "cpu_seconds": time.process_time() - cpu_clock,
                    "start_ms": start_ms, "end_ms": int(time.time() * 1000), "worker": _worker(),
                    "cpu_path": cpu.path(), "host": cpu.host()}


def run(client, jobs: list[Job], label: str, every: float = 10.0, out=None,
        on_result: Callable[[int, tuple], None] | None = None) -> list[tuple[Any, dict]]:
    """(result, timing) of every job, in order.  A progress line (points done, ETA) at most
    every ``every`` seconds.  On a point's error: cancel the rest, raise SweepError."""
    from distributed import wait
    from distributed.client import FuturesCancelledError

    run_id = uuid.uuid4().hex[:8]  # distinct keys: a rerun on the same cluster recomputes
    futures = {client.submit(call, job.fn, job.point, *job.args, pure=False,
                             key=f"{label}-{run_id}-{i}"): i for i, job in enumerate(jobs)}
    outcomes: list = [None] * len(jobs)
    progress = Progress(label, len(jobs), unit="batch", every=every, out=out)
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except (FuturesCancelledError, OSError) as err:  # the scheduler went away
                done_count = sum(o is not None for o in outcomes)
                why = "lost the connection" if isinstance(err, FuturesCancelledError) \
                    else _one_line(err)
                raise SweepError(f"the Dask scheduler went away after {done_count} of "
                                 f"{len(jobs)} batches ({why}); the finished points "
                                 "are kept in the point cache: restart the scheduler and its "
                                 "workers (docs/sweeps.md), then rerun the stage") from None
            for future in done:
                i = futures[future]
                if future.status != "finished":
                    raise SweepError(_failure(jobs[i], future))
                outcomes[i] = future.result()
                if on_result:
                    on_result(i, outcomes[i])
            progress.update(len(jobs) - len(pending), note=_eta(progress, len(jobs) - len(pending)))
    finally:
        with contextlib.suppress(Exception):  # a lost scheduler cannot be told anything
            client.cancel(list(pending))  # a failed sweep leaves nothing running
    return outcomes


def run_serial(jobs: list[Job], label: str, every: float = 10.0, out=None) -> list[tuple[Any, dict]]:
    """The same points one after another in this process (no Dask): the baseline."""
    progress = Progress(label, len(jobs), unit="batch", every=every, out=out)
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(call(job.fn, job.point, *job.args))
        except Exception as exc:
            raise SweepError(_message(job, exc)) from exc
        progress.update(len(outcomes), note=_eta(progress, len(outcomes)))
    return outcomes


def _failure(job: Job, future) -> str:
    if future.status == "error":
        return _message(job, future.exception())
    return f"sweep batch {job.name} was {future.status} (the scheduler lost it)"


def _message(job: Job, exc: BaseException) -> str:
    again = f"; rerun it alone for the traceback: {job.rerun}" if job.rerun else ""
    return f"sweep batch {job.name} failed: {type(exc).__name__}: {_one_line(exc)}{again}"


def _eta(progress: Progress, done: int) -> str:
    if not done or done == progress.total:
        return ""
    left = (progress.clock() - progress.start) / done * (progress.total - done)
    return f"ETA {left:.0f} s"


def _worker() -> str:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # not on a worker: run alone or serially
        return "local"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300] + ("..." if len(text) > 300 else "")
