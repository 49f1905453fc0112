"""Sweeps: how reliably does each network size learn each task?

Every (size, seed) point is ONE training run (one initialisation, as the course runs it) by
the study's own training function, run as a Dask task (``cluster``); the results are counted
per size with 95% Wilson intervals (``stats``).  ``checker`` and ``seq`` build each study's
points; ``python -m nnstudies.sweep`` reruns one point alone.
"""
