"""The points engine of the sweeps and the KMNIST seeds: every point of a study, from its point
cache (sweep.cache) where it is there, else trained in batches on Dask (sweep.cluster), each
finished batch added to the cache at once.

A study module declares ``CODE`` (the modules its training runs), ``points(p)`` (every point:
coordinates and settings, a dict) and ``batches(todo, size, share)`` (the points to train as
``cluster.Job``s, each with its ``points`` and a function returning their results in order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType

from nnstudies import layout
from nnstudies.sweep import cluster
from nnstudies.sweep.cache import PointCache, code_hash


@dataclass
class Done:
    label: str  # the stage
    points: list[dict]  # every point of the study, in its order
    results: list[dict]  # their results, in the same order
    trained: list[tuple]  # (job, (results, timing)) of each batch trained now
    cpu_paths: list[dict]  # the CPU paths the points were computed on, each once

    @property
    def children(self) -> list[dict]:
        """One MLflow child run per batch trained now, with its timing and worker."""
        return [{"name": f"{self.label} {job.name}", "params": {**job.point, "seeds": len(job.points)},
                 "metrics": {"seconds": timing["seconds"], "cpu_seconds": timing["cpu_seconds"]},
                 "tags": {"dask.worker": timing["worker"], **timing["host"]},
                 "start_ms": timing["start_ms"], "end_ms": timing["end_ms"]}
                for job, (_, timing) in self.trained]


def run(study: ModuleType, label: str, p: dict, batch: int) -> Done:
    """Every point of ``study`` for the stage ``label``, training only what the cache lacks."""
    points = study.points(p)
    cache = PointCache(layout.sweep_points(label), code_hash(study.CODE))
    cache.drop_stale()
    todo = [pt for pt in points if cache.get(pt) is None]
    trained: list = []
    if todo:
        with cluster.quiet(layout.dask_log(label)), \
                cluster.connect(p["sweep"]["scheduler"], p["sweep"]["workers"]) as client:
            jobs = study.batches(todo, batch, cluster.sharer(client))
            print(f"{label}: {len(todo)} of {len(points)} points to train "
                  f"({len(points) - len(todo)} in the point cache), {len(jobs)} batches on "
                  f"{cluster.describe(client)}", flush=True)

            def keep(i, outcome):
                cache.put(list(zip(jobs[i].points, outcome[0])), outcome[1]["cpu_path"])

            trained = list(zip(jobs, cluster.run(client, jobs, label, on_result=keep)))
    else:
        print(f"{label}: all {len(points)} points are in the point cache", flush=True)
    paths = {json.dumps(cache.cpu_path(pt), sort_keys=True) for pt in points}
    return Done(label, points, [cache.get(pt) for pt in points], trained,
                [json.loads(t) for t in sorted(paths)])
