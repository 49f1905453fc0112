"""Stage fetch_kmnist: put the four verified KMNIST gz files in data/kmnist/.

Reads: kmnist.source, tracking.  Writes: data/kmnist/ (four gz files), metrics/fetch_kmnist.json.
Logs to MLflow (study "kmnist"): the files' md5s as params, the image counts as metrics and
the metrics file as an artifact, so every data version a run used is on record.
"""

import argparse

from nnstudies import atomic, cli, kmnist, params, tracking


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/kmnist")
    parser.add_argument("--metrics", default="metrics/fetch_kmnist.json")
    args = parser.parse_args()
    p = params.load(["kmnist", "tracking"])
    source = p["kmnist"]["source"]
    with tracking.start("kmnist", "fetch_kmnist", p) as run:
        fetched = kmnist.fetch(source, args.out)
        for f in fetched:
            print(f"{'kept' if f.reused else 'fetched'} {f.name}  {f.size} bytes  md5 {f.md5}")
        # fetch parsed every file (IDX format, shapes, labels, pairs): record the sizes.
        items = {f.name: f.items for f in fetched}
        counts = {"train_images": items["train-images-idx3-ubyte.gz"],
                  "test_images": items["t10k-images-idx3-ubyte.gz"]}
        atomic.write_json(args.metrics, {
            **counts,
            "source": source,
            "files": {f.name: {"md5": f.md5, "bytes": f.size} for f in fetched},
        })
        run.log_params({"data": {"md5": {f.name: f.md5 for f in fetched}}})
        run.log_metrics(counts)
        run.log_artifact(args.metrics, "metrics")


if __name__ == "__main__":
    cli.run(main)
