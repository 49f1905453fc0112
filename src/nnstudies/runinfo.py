"""What a training run ran on, recorded in its metrics so that differences are explainable.

Same params + same seed give identical metrics on one machine; across machines, a different
torch or numpy version, thread count or device can change the last digits.  Stages include
``**runinfo.environment()`` in their metrics JSON.
"""

from __future__ import annotations

import platform


def environment(device="cpu") -> dict:
    """{device, torch, numpy, python, threads, cpu}: what shaped the numbers' last digits."""
    import numpy
    import torch

    device = torch.device(device)
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return {"device": f"{device}{name}", "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine()}
