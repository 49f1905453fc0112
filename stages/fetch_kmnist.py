"""Stage fetch_kmnist: put the four verified KMNIST gz files in data/kmnist/.

Reads: kmnist.source, tracking.  Writes: data/kmnist/ (four gz files), metrics/fetch_kmnist.json
(image counts), results/fetch_kmnist.json (source, each file's md5, bytes and item count).
"""

from nnstudies import layout, stage
from nnstudies.kmnist import data

PARAMS = ["tracking", "kmnist.source"]


def produce(p, ctx):
    return data.stage(p["kmnist"]["source"], ctx.path(layout.KMNIST_DATA))


if __name__ == "__main__":
    stage.main("fetch_kmnist", "kmnist", PARAMS, produce)
