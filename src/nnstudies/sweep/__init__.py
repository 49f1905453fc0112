"""Sweeps: how reliably does each network size learn each task?

Every (size, seed) point is ONE training run (one initialisation, as the course runs it).
``engine`` takes each point from the per-point cache (``cache``) or trains it, the seeds of a
size together as lanes of a compiled kernel, in batches on Dask (``cluster``); the results are
counted per size with 95% Wilson intervals and concluded at 95% confidence (``stats``).
``checker`` and ``seq`` declare each study's points; ``python -m nnstudies.sweep`` reruns one
point alone, or checks cached points against a recomputation.
"""
