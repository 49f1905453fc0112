"""docs/sweeps.md's Slurm snippet, built as written: the SLURMCluster it makes binds the
scheduler to the named interface (never 0.0.0.0), its job script runs the shared venv's
interpreter with one thread per worker process.  No Slurm is needed: the cluster starts its
scheduler here and `job_script()` only renders the script; nothing is submitted."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed: "
                               "pip install -c constraints.txt -e '.[cluster]'")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

DOC = ROOT / "docs" / "sweeps.md"
# What this machine has in place of the doc's cluster: its loopback interface, free ports.
STANDINS = {'"ib0"': '"lo"', '"port": 8786': '"port": 0', '"127.0.0.1:8787"': '"127.0.0.1:0"'}


def slurm_snippet() -> str:
    """The doc's SLURMCluster(...) construction: the python block after '**Slurm**', up to
    `cluster.scale` (which would call sbatch)."""
    text = DOC.read_text()
    block = re.search(r"\*\*Slurm\*\*.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/sweeps.md: no python block after **Slurm**"
    code = block.group(1).split("cluster.scale(")[0]
    for doc_value, here in STANDINS.items():
        assert doc_value in code, f"the snippet no longer has {doc_value}: update STANDINS"
        code = code.replace(doc_value, here)
    return code


def listening() -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections("inet")
            if c.status == psutil.CONN_LISTEN}


def test_doc_slurm_cluster_binds_the_interface_and_runs_the_shared_venv_single_threaded():
    code = slurm_snippet()
    named = re.search(r'python="([^"]+)"', code)  # else jobqueue writes this process's sys.executable
    assert named, "the snippet names no python=: compute nodes would run the login node's path"
    before = listening()
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)  # the doc's own code, as a reader runs it
    cluster = scope["cluster"]
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
        opened = listening() - before
    finally:
        cluster.close()

    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", address), address  # lo's address, not 0.0.0.0
    # Everything the snippet opened (scheduler, dashboard) listens on loopback only.
    assert opened and {ip for ip, _ in opened} == {"127.0.0.1"}, opened
    python = named.group(1)
    (worker,) = [line for line in script.splitlines() if "dask_worker" in line]
    assert worker.startswith(f"{python} -m distributed.cli.dask_worker {address} "), worker
    args = worker.split()
    assert args[args.index("--interface") + 1] == "lo", worker
    assert args[args.index("--nthreads") + 1] == "1", worker  # one thread per point
    assert "export ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2" in script
    assert "0.0.0.0" not in script
