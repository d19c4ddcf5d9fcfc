"""Benchmarks that print how much faster the course's way is than the plain way, in one run.

    python -m helpers.benchmark data [--jpegs DIR] [--n 23708] [--size 128]

``data`` measures the data layer:

1. toy faces generated per second (all cores, JPEG writing included);
2. building the uint8 cache from ``--n`` JPEGs at ``--size`` px (decode once, draft mode,
   all cores), against decoding the same files the plain way (one process, full decode,
   resize, to a float tensor, as a per-sample Dataset does every epoch);
3. one training epoch read from the cache against one epoch decoded the plain way.

``--jpegs`` is a folder of 200x200 JPEGs (UTKFace, say); its files are reused in turn until
there are ``--n`` of them. Without it, toy faces are generated for the purpose. Other
benchmarks (training throughput) are added by the model modules.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _plain_decode(paths, size: int):
    """The plain way: what a naive Dataset.__getitem__ does for every image of every epoch."""
    import torch
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
        yield x


def bench_data(args) -> dict:
    from . import cache as cache_mod
    from . import toyfaces

    workers = args.workers or os.cpu_count() or 1
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"machine: {os.cpu_count()} CPU cores; using {workers} worker processes\n")

        # 1. toy faces per second
        t0 = time.perf_counter()
        toy = toyfaces.generate_toy_faces(
            tmp / "toy", n_images=args.toy_n, n_identities=max(1, args.toy_n // 5), workers=workers, progress=False
        )
        dt = time.perf_counter() - t0
        results["toy_faces_per_s"] = len(toy) / dt
        print(f"toy faces: {len(toy):,} in {dt:.1f} s = {len(toy) / dt:,.0f} faces/s "
              f"(5,000 would take {5000 / (len(toy) / dt):.1f} s)")

        # 2. the cache against plain decoding
        if args.jpegs:
            src = sorted(str(p) for p in Path(args.jpegs).glob("*.jpg"))
            if not src:
                sys.exit(f"no .jpg files in {args.jpegs}")
            what = f"{len(src):,} JPEGs from {args.jpegs}"
        else:
            src = toy["path"].tolist()
            what = f"{len(src):,} toy-face JPEGs"
        paths = [src[i % len(src)] for i in range(args.n)]
        print(f"\ncache: {args.n:,} images at {args.size}px, cycling through {what}")
        df = pd.DataFrame({"path": paths, "age": 0})
        t0 = time.perf_counter()
        faces = cache_mod.build_cache(df, args.size, cache_dir=tmp / "cache", workers=workers, verbose=False)
        build = time.perf_counter() - t0
        print(f"  build the uint8 cache ({workers} processes, draft mode): {build:6.1f} s "
              f"({faces.nbytes / 2**20:,.0f} MiB)")

        plain_n = min(args.n, args.plain_n) if args.plain_n else args.n
        t0 = time.perf_counter()
        for _ in _plain_decode(paths[:plain_n], args.size):
            pass
        plain = (time.perf_counter() - t0) * args.n / plain_n
        est = "" if plain_n == args.n else f" (measured on {plain_n:,}, scaled)"
        print(f"  decode the plain way (1 process, full decode):   {plain:6.1f} s{est}")
        print(f"  -> the cache is built {plain / build:.1f}x faster than one plain pass")

        # 3. one epoch
        loader = cache_mod.BatchLoader(faces, batch_size=64, flip=True)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        epoch = time.perf_counter() - t0
        print(f"\none epoch at {args.size}px, batch 64: from the cache {epoch:.2f} s, "
              f"the plain way {plain:.1f} s -> {plain / epoch:.0f}x faster per epoch")
        results.update(cache_build_s=build, plain_pass_s=plain, cache_epoch_s=epoch,
                       build_ratio=plain / build, epoch_ratio=plain / epoch)
    return results


BENCHMARKS = {"data": bench_data}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m helpers.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data", help="toy faces per second; uint8 cache against plain decoding")
    d.add_argument("--jpegs", help="folder of 200x200 JPEGs to decode (default: generated toy faces)",
                   default=os.environ.get("UTKFACE_SAMPLE_DIR"))
    d.add_argument("--n", type=int, default=23708, help="images to cache (UTKFace has 23,708)")
    d.add_argument("--size", type=int, default=128)
    d.add_argument("--toy-n", type=int, default=2000, help="toy faces to generate")
    d.add_argument("--plain-n", type=int, default=0, help="decode only this many the plain way, then scale")
    d.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)
    return BENCHMARKS[args.what](args)


if __name__ == "__main__":
    main()
