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
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from . import cache as cache_mod
from . import cyclegan, toyfaces
from .training import Precision, pick_device


def _plain_decode(paths, size: int):
    """The plain way: what a naive Dataset.__getitem__ does for every image of every epoch."""
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
        yield x


def bench_data(args) -> dict:
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


def bench_cyclegan(args) -> dict:
    """CycleGAN training throughput (image pairs per second): the course's way against the plain way.

    The course's way: the uint8 faces on the device (BatchLoader), batches of ``--batch`` (by
    default the device's setting: 8 on a GPU; 1 on a CPU, where larger batches do not pay for
    this model), mixed precision and channels-last on CUDA (and ``torch.compile`` with
    ``--compile``). The plain way:
    float32, batch 1, every face decoded from its JPEG with PIL, resized, cropped and flipped
    per sample in a Dataset read through a DataLoader. Both run the same training step.
    """
    device = pick_device(args.device)
    s = cyclegan.default_settings(device)
    args.batch = args.batch or s.batch_size  # the device's own setting: 8 on a GPU, 1 on a CPU
    size = args.size or s.image_size
    load = max(size, round(size * 1.125))
    arch = dataclasses.replace(s, image_size=size, generator=args.generator or s.generator, ngf=args.ngf or s.ngf,
                               ndf=args.ndf or s.ndf, n_blocks=args.n_blocks or s.n_blocks)

    class PlainPairs(torch.utils.data.Dataset):
        """The plain way: decode, resize, crop and flip one young and one old JPEG per item."""

        def __init__(self, a, b):
            self.a, self.b = a, b
            self.g = np.random.default_rng(0)

        def __len__(self):
            return max(len(self.a), len(self.b))

        def _load(self, path):
            with Image.open(path) as im:
                im = im.convert("RGB").resize((load, load), Image.Resampling.BILINEAR)
            top, left = self.g.integers(0, load - size + 1, 2)
            x = np.asarray(im, dtype=np.float32)[top:top + size, left:left + size]
            if self.g.random() < 0.5:
                x = x[:, ::-1]
            return torch.from_numpy(x.copy()).permute(2, 0, 1) / 127.5 - 1

        def __getitem__(self, i):
            return self._load(self.a[i % len(self.a)]), self._load(self.b[self.g.integers(len(self.b))])

    def timed(model, batches, warmup, steps):
        it = iter(batches)
        for _ in range(warmup):
            model.train_step(next(it))
            model.precision.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_step(next(it))
            model.precision.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    def forever(loader):
        while True:
            yield from loader

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = max(4 * args.batch, 64)
        if args.jpegs:
            src = sorted(str(p) for p in Path(args.jpegs).glob("*.jpg"))
            if len(src) < 2:
                sys.exit(f"need at least two .jpg files in {args.jpegs}")
            paths_a, paths_b = src[: len(src) // 2][:n], src[len(src) // 2:][:n]
            what = f"JPEGs from {args.jpegs}"
        else:
            toy = toyfaces.generate_toy_faces(tmp / "toy", n_images=2 * n, n_identities=n, progress=False)
            young = toy["age"] <= 35
            paths_a, paths_b = toy.loc[young, "path"].tolist(), toy.loc[~young, "path"].tolist()
            what = "toy-face JPEGs"
        print(f"CycleGAN training step at {size}px ({load}px crops), {arch.generator} generator, ngf {arch.ngf}, "
          f"{arch.n_blocks} blocks, ndf {arch.ndf}, identity loss {arch.lambda_identity}, on {device}; "
              f"{len(paths_a)} + {len(paths_b)} {what}\n")

        # The course's way.
        precision = Precision(device)
        caches = [cache_mod.build_cache(pd.DataFrame({"path": p, "age": 0}), load, cache_dir=tmp / "cache", verbose=False)
                  for p in (paths_a, paths_b)]
        loaders = [cache_mod.BatchLoader(c, args.batch, device=device, crop=size, flip=True, seed=i,
                                         memory_format=precision.memory_format) for i, c in enumerate(caches)]
        torch.manual_seed(0)
        fast = cyclegan.CycleGAN(arch, device=device, precision=precision, compile=args.compile)
        warm = args.warmup if args.warmup is not None else (10 if args.compile else 2)
        dt = timed(fast, forever(cyclegan.UnpairedBatches(*loaders)), warm, args.steps)
        fast_rate = args.steps * args.batch / dt
        print(f"  course's way: {precision}, batch {args.batch}, faces on {device} as uint8"
              f"{', torch.compile' if args.compile else ''}: {fast_rate:8.2f} pairs/s ({dt / args.steps * 1000:.0f} ms/step)")
        del fast, loaders

        # The plain way (without the cuDNN autotuning that the course's Precision switches on).
        torch.backends.cudnn.benchmark = False
        plain_precision = Precision(device, enabled=False, channels_last=False)
        torch.manual_seed(0)
        plain = cyclegan.CycleGAN(arch, device=device, precision=plain_precision)
        loader = torch.utils.data.DataLoader(PlainPairs(paths_a, paths_b), batch_size=1, shuffle=True)
        on_device = ((a.to(device), b.to(device)) for a, b in forever(loader))
        plain_steps = args.plain_steps or args.steps
        dt = timed(plain, on_device, 2, plain_steps)
        plain_rate = plain_steps / dt
        print(f"  plain way:    float32, batch 1, JPEGs decoded per sample (DataLoader):      "
              f"{plain_rate:8.2f} pairs/s ({dt / plain_steps * 1000:.0f} ms/step)")
        print(f"  -> {fast_rate / plain_rate:.1f}x the plain way's throughput")
    return {"fast_pairs_per_s": fast_rate, "plain_pairs_per_s": plain_rate, "ratio": fast_rate / plain_rate}


BENCHMARKS = {"data": bench_data, "cyclegan": bench_cyclegan}


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
    c = sub.add_parser("cyclegan", help="CycleGAN training pairs/s: the course's way against the plain way")
    c.add_argument("--size", type=int, default=None, help="image size (default: the device's settings)")
    c.add_argument("--batch", type=int, default=None,
                   help="batch size of the course's way (default: the device's settings, 8 on a GPU, 1 on a CPU)")
    c.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    c.add_argument("--steps", type=int, default=20, help="timed steps of the course's way")
    c.add_argument("--plain-steps", type=int, default=0, help="timed steps of the plain way (default: --steps)")
    c.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; 10 with --compile)")
    c.add_argument("--compile", action="store_true", help="torch.compile the networks (the course's way)")
    c.add_argument("--generator", default=None, help="resnet or seed003 (default: the device's settings)")
    c.add_argument("--ngf", type=int, default=None)
    c.add_argument("--ndf", type=int, default=None)
    c.add_argument("--n-blocks", type=int, default=None)
    c.add_argument("--jpegs", help="folder of JPEGs to use (default: generated toy faces)",
                   default=os.environ.get("UTKFACE_SAMPLE_DIR"))
    args = ap.parse_args(argv)
    return BENCHMARKS[args.what](args)


if __name__ == "__main__":
    main()
