"""The CPU path: what decides a float result's last bits on a CPU, and the threads a stage uses.

Two machines that run the same code, params and seeds give the same bytes when they run the
same CPU path: torch's kernel capability (``get_cpu_capability``: default, avx2, avx512),
the BLAS and oneDNN builds and the code paths they pick, numba's target and the thread
count (a reduction split over more threads adds in another order).  :func:`path` names
these for the results file; :func:`host` names the machine for MLflow tags only (two
machines on one path must write the same results bytes, so no host name goes there).

A training group's ``cpu_path`` param picks the path: ``host`` takes whatever this machine and
its environment pick; ``strict`` (:data:`STRICT`) pins torch, MKL and oneDNN to their AVX2
kernels, which every x86 CPU of the last decade runs, so machines that differ in CPU compute
the same bits (benchmarks/cpu_paths.py: NetConv identical with and without
MKL_ENABLE_INSTRUCTIONS=AVX2, 12 of 1,000 test predictions differ from the host path; 1.39x
the host's time per step on an AVX-512 Xeon).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys

from nnstudies.errors import UserError

# Environment variables that change which kernels run (docs/reliability.md, "CPU paths").
PATH_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
                  "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


# torch's AVX2 kernels; MKL's AVX2 branch under conditional numerical reproducibility (the same
# bits on any CPU that has it); oneDNN (conv) capped at AVX2.  Each library reads its variable
# once, at its first kernel, so :func:`pin` must run before any computation.
STRICT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
CPU_PATHS = ("host", "strict")


def pin(cpu_path: str, where: str = "cpu_path") -> None:
    """Run this process on ``cpu_path`` (``strict`` overrides the environment's settings).

    A process that has computed before (torch fixed its capability at its first kernel), or a
    CPU without AVX2, cannot take the strict path: one line says so, nothing runs."""
    if cpu_path == "host":
        return
    os.environ.update(STRICT)
    torch = sys.modules.get("torch")
    capability = torch.backends.cpu.get_cpu_capability() if torch is not None else "AVX2"
    if capability != "AVX2":
        raise UserError(f"params.yaml: {where}: strict needs torch's AVX2 kernels, but this "
                        f"process runs {capability} (a CPU without AVX2, or torch computed "
                        "before the stage pinned its path); set it to host")


def set_threads(threads: int) -> None:
    """Use ``threads`` for torch, MKL and numba, whatever OMP_NUM_THREADS says.

    The variables cover libraries not loaded yet (each reads them when it loads: a stage may
    import its study late); the calls, those already loaded: numba first, since starting its
    thread pool resets torch's thread count (measured).  This also keeps a huge
    OMP_NUM_THREADS from ever starting its pool (100,000 threads segfaulted a stage).

    numba sizes its pool once, at import, from NUMBA_NUM_THREADS, and every compilation
    re-reads the variables and stops if that one no longer matches a started pool: where
    numba is loaded already, the variable keeps the pool's size and ``set_num_threads``
    picks how many of them run (else a first compilation, with an empty cache, failed)."""
    numba = sys.modules.get("numba")
    pool = numba.config.NUMBA_NUM_THREADS if numba is not None else threads
    for name, value in (("OMP_NUM_THREADS", threads), ("MKL_NUM_THREADS", threads),
                        ("NUMBA_NUM_THREADS", pool)):
        os.environ[name] = str(value)
    if numba is not None:
        numba.set_num_threads(min(threads, pool))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def path() -> dict:
    """The CPU path of this process (for a results file: no host or CPU model names)."""
    facts: dict = {"machine": platform.machine()}
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch_capability"] = torch.backends.cpu.get_cpu_capability()
        facts["threads"] = torch.get_num_threads()
        config = torch.__config__.show()
        facts["blas"] = _search(r"BLAS_INFO=(\w+)", config)
        facts["mkl"] = _search(r"Math Kernel Library Version ([\d.]+)", config)
        facts["onednn"] = _search(r"MKL-DNN (v[\d.]+)", config)
        facts["onednn_enabled"] = bool(torch.backends.mkldnn.enabled)
    if "numba" in sys.modules and os.environ.get("NUMBA_CPU_NAME"):
        facts["numba_target"] = os.environ["NUMBA_CPU_NAME"]  # else the host's own CPU name
    pinned = {name: os.environ[name] for name in PATH_VARIABLES if os.environ.get(name)}
    if pinned:
        facts["variables"] = pinned
    return facts


def host() -> dict[str, str]:
    """The machine, for MLflow tags: its CPU model and name."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = _search(r"model name\s*:\s*(.+)", f.read()) or ""
    except OSError:
        pass
    return {"host.cpu": model or platform.processor() or platform.machine(),
            "host.name": socket.gethostname(), "host.cores": str(os.cpu_count() or 0)}


def _search(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1).strip() if match else None
