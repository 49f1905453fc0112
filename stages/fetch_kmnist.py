"""Stage fetch_kmnist: put the four verified KMNIST gz files in data/kmnist/.

Reads: kmnist.source.  Writes: data/kmnist/ (four gz files), metrics/fetch_kmnist.json.
"""

import argparse

from nnstudies import atomic, cli, kmnist, params


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/kmnist")
    parser.add_argument("--metrics", default="metrics/fetch_kmnist.json")
    args = parser.parse_args()
    source = params.load(["kmnist"])["kmnist"]["source"]
    fetched = kmnist.fetch(source, args.out)
    for f in fetched:
        print(f"{'kept' if f.reused else 'fetched'} {f.name}  {f.size} bytes  md5 {f.md5}")
    # Loading both splits proves the files parse, and records their sizes.
    train_images, _ = kmnist.load_split(args.out, train=True)
    test_images, _ = kmnist.load_split(args.out, train=False)
    atomic.write_json(args.metrics, {
        "train_images": len(train_images),
        "test_images": len(test_images),
        "source": source,
        "files": {f.name: {"md5": f.md5, "bytes": f.size} for f in fetched},
    })


if __name__ == "__main__":
    cli.run(main)
