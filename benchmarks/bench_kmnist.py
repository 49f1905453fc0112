"""Seconds per training epoch of the three KMNIST nets: this project's loop vs the course's.

The baseline is the straightforward course pipeline: torchvision's KMNIST dataset with
ToTensor + Normalize(0.5, 0.5) per sample, through a DataLoader (batch 64, unshuffled),
contiguous tensors.  The project's loop slices batches out of one normalised in-memory
tensor and runs the CNN channels_last on the CPU.  Both train the same net from the same
seed on the same images in the same order, through the same train_epoch/evaluate code,
so their accuracies agree and only the data path and memory layout differ.

    OMP_NUM_THREADS=1 python benchmarks/bench_kmnist.py --data data/samples/kmnist-holdout

Not a test: it prints a table (and writes it as JSON with --json).
"""

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from nnstudies import cli
from nnstudies.kmnist import data as kmnist
from nnstudies.kmnist.train import fit, pick_device, tensor_batches


def course_loaders(data_dir: Path, root: Path, batch_size: int, test_batch_size: int):
    """torchvision KMNIST datasets (per-sample transforms) behind DataLoaders, as kuzu_main.py."""
    from torchvision import datasets, transforms

    raw = root / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in Path(data_dir).glob("*-ubyte.gz"):  # torchvision reads the inflated files
        with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loaders = []
    for train, size in ((True, batch_size), (False, test_batch_size)):
        dataset = datasets.KMNIST(str(root), train=train, download=False, transform=transform)
        loaders.append(torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=False))
    return loaders


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=kmnist.SAMPLE, help="folder with the four KMNIST gz files")
    parser.add_argument("--nets", nargs="+", default=["lin", "full", "conv"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--project-format", default="auto", choices=["auto", "contiguous_format", "channels_last"],
                        help="memory layout of the project's loop (auto: what training uses)")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    cli.torch_threads()
    device = pick_device(args.device)
    train_data = kmnist.load_split(args.data, train=True)
    test_data = kmnist.load_split(args.data, train=False)
    images = len(train_data[1])
    project_format = None if args.project_format == "auto" else getattr(torch, args.project_format)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline_batches = course_loaders(Path(args.data), Path(tmp), 64, 1000)
        for net in args.nets:
            row = {"net": net}
            for name, batches, memory_format in (
                    ("baseline", baseline_batches, torch.contiguous_format),
                    ("project", (tensor_batches(train_data, 64, device),
                                 tensor_batches(test_data, 1000, device)), project_format)):
                started = time.perf_counter()
                result = fit(net, {}, *batches, lr=0.01, momentum=0.5, epochs=args.epochs, seed=0,
                             device=device, log_interval=10 ** 9, log=lambda line: None,
                             memory_format=memory_format)
                seconds = result.train_seconds / args.epochs
                row[name] = {"seconds_per_epoch": seconds, "images_per_second": images / seconds,
                             "test_accuracy": result.history[-1]["test_accuracy"],
                             "wall_seconds": time.perf_counter() - started}
            row["ratio"] = row["project"]["seconds_per_epoch"] / row["baseline"]["seconds_per_epoch"]
            rows.append(row)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{images} training images, {args.epochs} epochs, batch 64, project format {args.project_format}")
    print(f"{'net':5} {'baseline s/ep':>13} {'project s/ep':>12} {'ratio':>6} {'baseline img/s':>14} "
          f"{'project img/s':>13} {'baseline acc':>12} {'project acc':>11}")
    for r in rows:
        b, p = r["baseline"], r["project"]
        print(f"{r['net']:5} {b['seconds_per_epoch']:13.3f} {p['seconds_per_epoch']:12.3f} {r['ratio']:6.2f} "
              f"{b['images_per_second']:14.0f} {p['images_per_second']:13.0f} "
              f"{b['test_accuracy']:12.4f} {p['test_accuracy']:11.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "torch": torch.__version__,
                                               "project_format": args.project_format,
                                               "threads": torch.get_num_threads(),
                                               "train_images": images, "epochs": args.epochs,
                                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main)
