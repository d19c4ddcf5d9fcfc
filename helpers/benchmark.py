"""Benchmarks that print how much faster the course's way is than the plain way, in one run.

    python -m helpers.benchmark data [--jpegs DIR] [--n 23708] [--size 128]
    python -m helpers.benchmark cyclegan [--device D] [--compile] ...
    python -m helpers.benchmark budget [--settings NAME,...] [--share 0.25,0.40]

``data`` measures the data layer:

1. toy faces generated per second (all cores, JPEG writing included);
2. building the uint8 cache from ``--n`` JPEGs at ``--size`` px (decode once, draft mode,
   all cores), against decoding the same files the plain way (one process, full decode,
   resize, to a float tensor, as a per-sample Dataset does every epoch);
3. one training epoch read from the cache against one epoch decoded the plain way.

``--jpegs`` is a folder of 200x200 JPEGs (UTKFace, say); its files are reused in turn until
there are ``--n`` of them. Without it, toy faces are generated for the purpose.

``cyclegan`` measures CycleGAN's training throughput, the course's way against the plain way.

``budget`` prices every GPU setting (:data:`helpers.config.GPU_SETTINGS`) for a Colab T4 without a GPU:
it builds each model as its setting says and runs one training step on the CPU at batch 1 and at
batch 2 (2 and 3 for the age GAN, whose step needs two faces), counting

- the parameters, and the FLOPs of a step (``torch.utils.flop_counter.FlopCounterMode``: convolutions
  and matrix products, forward and backward), extended linearly to the setting's batch;
- the peak training memory, estimated: the weights, gradients and Adam state in float32 (what a
  checkpoint holds, plus the gradients), a float16 copy of the weights for autocast, the activations
  saved for backward in float16 (counted with ``torch.autograd.graph.saved_tensors_hooks``, at the
  setting's batch), the uint8 training faces kept on the GPU for the full UTKFace, and 1 GiB for
  CUDA's context and cuDNN's workspace;
- the checkpoint's size (written to memory the way :class:`helpers.training.Trainer` writes it), how
  many a run writes and how many it keeps;
- the training steps on the UTKFace sample and on the full UTKFace (epoch-counted settings scale
  with the faces), and the T4 minutes at 25% and 40% of its 65 TFLOP/s float16 peak.

A line per setting then says whether it fits 12 GB and whether its notebook's training takes
10-30 T4 minutes at 25% of peak on the full UTKFace.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import config


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m helpers.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="exit codes: 0 done; 1 the benchmark cannot run here (the message says why, e.g. "
                                        "--compile without a CUDA GPU); 2 usage error")
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
    b = sub.add_parser("budget", help="every GPU setting priced for a Colab T4: params, FLOPs, memory, checkpoints, "
                                      "steps, minutes")
    b.add_argument("--settings", default="", help=f"comma-separated names (default: all of {', '.join(config.GPU_SETTINGS)})")
    b.add_argument("--share", default="0.25,0.4",
                   help="shares of the T4's float16 peak to price at (default 0.25,0.4)")
    b.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return ap


def main(argv=None):
    """``python -m helpers.benchmark``: the arguments are parsed before torch is imported (see helpers.cli)."""
    args = build_parser().parse_args(argv)
    from . import benchmark as app  # the heavy part below; this module itself when imported

    return app.run(args)


if __name__ == "__main__":
    main()  # each benchmark prints its table and returns its rows (for callers), not an exit status

# ruff: noqa: E402 -- the heavy imports come after the command line, on purpose
import dataclasses
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from . import agegan, cdcgan, config, dcgan, encoder, toyfaces
from . import cache as cache_mod
from . import cyclegan
from .training import Checkpointer, Precision, pick_device

#: A Colab T4's float16 tensor-core peak (NVIDIA's T4 datasheet: 65 TFLOP/s mixed precision).
T4_FP16_TFLOPS = 65.0
#: Faces in the full UTKFace (what Colab students download from Kaggle), and in the course's sample of it.
UTKFACE_FULL = 23_708
UTKFACE_SAMPLE = 7_390
#: What a budget must fit: the GPU memory a T4 leaves a notebook with room to spare (16 GB card), and the
#: window of T4 minutes, at 25% of peak on the full UTKFace, that a notebook's training should take.
GPU_MEMORY_BYTES = 12 * 10**9
WINDOW_MINUTES = (10.0, 30.0)
SHARES = (0.25, 0.40)
#: CUDA's context and cuDNN's workspace, added to every memory estimate.
CUDA_OVERHEAD_BYTES = 2**30
#: Training faces one epoch visits, on the sample's training split (5,912 faces): DCGAN and the age GAN see them
#: all; CycleGAN's epoch has as many pairs as the larger domain (1,432 of 15-30 and 50+; 1,411 of the other).
#: The full UTKFace has UTKFACE_FULL / UTKFACE_SAMPLE times as many. cDCGAN and encoders count steps.
SAMPLE_EPOCH_FACES = {"dcgan": 5_912, "cyclegan": 1_432, "agegan": 5_912}
SAMPLE_TRAIN_FACES = 5_912
#: The same on the toy faces (config.DATA.toy_images = 5,000, 4,000 of them for training; CycleGAN's larger domain
#: is the 1,818 faces of 50+), which are the same set everywhere: the GPU settings without "_REAL" train on them.
TOY_EPOCH_FACES = {"dcgan": 4_000, "cyclegan": 1_818, "agegan": 4_000}
TOY_TRAIN_FACES = 4_000


def sync(device) -> None:
    """Wait for the GPU to finish its queued work (CUDA runs asynchronously); nothing to wait for elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


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


class CompileError(RuntimeError):
    """``--compile`` cannot run here (no CUDA GPU, an old one, or the compiler failed); the message says what to do."""


def check_compile(device) -> None:
    """``--compile``'s guard: a CUDA GPU of compute capability 7.0 or newer (Triton's), else :class:`CompileError`."""
    device = torch.device(device)
    if device.type != "cuda":
        raise CompileError(f"--compile needs a CUDA GPU, and this run is on {device.type} (torch.compile would spend "
                           "minutes compiling for a CPU, which the course never does): leave --compile out")
    major, minor = torch.cuda.get_device_capability(device)
    if major < 7:
        raise CompileError(f"--compile needs a GPU of compute capability 7.0 or newer (Triton's), and this one has "
                           f"{major}.{minor}: leave --compile out")


def compiled(fn):
    """``fn()`` for a compiled model; a failure of the compiler (its first call compiles) becomes a :class:`CompileError`."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 -- Inductor and Triton raise many kinds; each means "compiling failed here"
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CompileError(f"torch.compile failed on this machine ({type(err).__name__}: {first}): run the "
                           "benchmark without --compile") from err


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
    if args.compile:
        check_compile(device)
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
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_step(next(it))
            model.precision.update()
        sync(device)
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
        batches = forever(cyclegan.UnpairedBatches(*loaders))
        if args.compile:
            dt = compiled(lambda: timed(fast, batches, warm, args.steps))
        else:
            dt = timed(fast, batches, warm, args.steps)
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


# --------------------------------------------------------------------------- the T4 budget of every GPU setting


def _family(s) -> str:
    return {config.CycleGANSettings: "cyclegan", config.AgeGANSettings: "agegan", config.DCGANSettings: "dcgan",
            config.CDCGANSettings: "cdcgan", config.EncoderSettings: "encoder"}[type(s)]


def build_for_budget(s, device="cpu"):
    """``(models, make_batch)``: the setting's model(s), built as it says, and ``make_batch(model, n)`` of ``n`` faces.

    The encoder's setting gives two models (the seed's encoder and the improved one, trained one after the
    other); each inverts a frozen generator of the conditional DCGAN that ``s.cgan_settings`` names (its GPU
    setting when it has one).
    """
    family, p = _family(s), Precision(device, enabled=False)
    g = torch.Generator().manual_seed(0)

    def faces(n, size):
        return torch.rand(n, 3, size, size, generator=g).mul(2).sub(1).to(device)

    if family == "cyclegan":
        return [cyclegan.CycleGAN(s, device=device, precision=p)], lambda m, n: (faces(n, s.image_size),
                                                                              faces(n, s.image_size))
    if family == "agegan":
        k = len(s.group_edges)
        return [agegan.AgeGAN(s, device=device, precision=p)], lambda m, n: (faces(n, s.image_size),
                                                                          torch.arange(n, device=device) % k)
    if family == "dcgan":
        return [dcgan.DCGAN(s, device=device, precision=p)], lambda m, n: faces(n, s.image_size)
    if family == "cdcgan":
        return ([cdcgan.ConditionalDCGAN(s, groups=s.wide_groups, device=device, precision=p)],
                lambda m, n: (faces(n, s.image_size), torch.arange(n, device=device) % len(s.wide_groups)))
    c = config.GPU_SETTINGS.get(s.cgan_settings) or encoder.cgan_settings(s)
    G = cdcgan.frozen_generator(cdcgan.ConditionalDCGAN(c, groups=c.wide_groups, device=device, precision=p).G,
                                n_batches=1, batch_size=2, seed=s.seed)
    models = [encoder.InversionEncoder(G, mode, s, device=device, precision=p) for mode in ("seed", "real")]
    return models, lambda m, n: (faces(n, c.image_size), torch.arange(n, device=device) % len(c.wide_groups))


def measure_step(model, batch) -> dict:
    """FLOPs and float16 bytes of the activations saved for backward in one ``model.train_step(batch)``."""
    from torch.utils.flop_counter import FlopCounterMode

    params = {t.untyped_storage().data_ptr() for net in model.networks.values() for t in net.parameters()}
    seen: dict = {}
    alive: list = []  # every saved tensor is held until the end, so that no freed storage's address is reused

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params and ptr not in seen:
                seen[ptr] = t.numel() * (2 if t.is_floating_point() else t.element_size())
                alive.append(t)
        return t

    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train_step(batch)
    model.precision.update()
    alive.clear()
    return {"flops": int(counter.get_total_flops()), "saved_fp16_bytes": int(sum(seen.values()))}


def _state_bytes(model) -> int:
    """Bytes of what a checkpoint of ``model`` holds (weights, optimiser and scheduler state, extra state)."""
    state = {"networks": {k: v.state_dict() for k, v in model.networks.items()},
             "optimizers": {k: v.state_dict() for k, v in model.optimizers.items()},
             "schedulers": {k: v.state_dict() for k, v in getattr(model, "schedulers", {}).items()},
             "extra": model.extra_state() if hasattr(model, "extra_state") else {}}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.tell()


def steps_of(s, faces_scale: float = 1.0, toy: bool = False) -> dict:
    """Training steps of the setting on the sample (``faces_scale`` 1), more faces, or the toy faces (``toy``).

    Returns ``{"steps", "epochs", "per_epoch"}``. Step-counted settings train their steps whatever the faces; the
    encoder's two encoders train them each.
    """
    family = _family(s)
    if hasattr(s, "steps"):
        n = 2 * s.steps if family == "encoder" else s.steps
        return {"steps": n, "epochs": None, "per_epoch": None}
    faces = TOY_EPOCH_FACES[family] if toy else SAMPLE_EPOCH_FACES[family] * faces_scale
    per_epoch = max(1, int(faces) // s.batch_size)
    return {"steps": s.epochs * per_epoch, "epochs": s.epochs, "per_epoch": per_epoch}


#: How many runs of a setting its notebook trains (notebook 04 trains the seed's groups and the wide ones).
RUNS_PER_NOTEBOOK = {"cdcgan": 2}


def budget(name: str, s, device="cpu", shares=SHARES, toy: bool | None = None) -> dict:
    """The T4 budget of one setting (see the module docstring): a dict of the numbers the table prints.

    ``toy``: the setting trains on the toy faces (default: when ``name`` does not end in ``_REAL``); their
    steps are the same on the "sample" and "full" sides.
    """
    family = _family(s)
    toy = not name.endswith("_REAL") if toy is None else bool(toy)
    torch.manual_seed(0)
    models, make_batch = build_for_budget(s, device)
    flops = saved = params = state = 0
    for m in models:  # the encoder's two train in turn: a step's FLOPs are their mean, memory the larger
        lo = 2 if family == "agegan" else 1  # the age GAN's step needs two faces
        one, two = measure_step(m, make_batch(m, lo)), measure_step(m, make_batch(m, lo + 1))
        at_batch = {k: one[k] + (s.batch_size - lo) * (two[k] - one[k]) for k in one}
        flops += at_batch["flops"] / len(models)
        saved = max(saved, at_batch["saved_fp16_bytes"])
        trainable = sum(p.numel() for net in m.networks.values() for p in net.parameters() if p.requires_grad)
        params = max(params, trainable)
        state = max(state, _state_bytes(m))
    size = getattr(s, "load_size", None) or getattr(s, "image_size", None) or models[0].G.image_size
    data_bytes = (TOY_TRAIN_FACES if toy else int(SAMPLE_TRAIN_FACES * UTKFACE_FULL / UTKFACE_SAMPLE)) * 3 * size * size
    memory = state + 6 * params + saved + data_bytes + CUDA_OVERHEAD_BYTES  # + gradients (4 B) and fp16 weights (2 B)
    sample, full = steps_of(s, 1.0, toy), steps_of(s, UTKFACE_FULL / UTKFACE_SAMPLE, toy)
    runs = RUNS_PER_NOTEBOOK.get(family, 1)
    minutes = {share: runs * flops * full["steps"] / (share * T4_FP16_TFLOPS * 1e12) / 60 for share in shares}
    minutes_sample = {share: runs * flops * sample["steps"] / (share * T4_FP16_TFLOPS * 1e12) / 60 for share in shares}
    every = s.checkpoint_every
    saves = full["steps"] // every + (full["epochs"] or 0) + 1
    return {"name": name, "family": family, "params": params, "flops_per_step": flops, "memory_bytes": memory,
            "activations_bytes": saved, "data_bytes": data_bytes, "checkpoint_bytes": state,
            "checkpoints_written_full": runs * saves, "checkpoints_kept": Checkpointer("unused").keep,
            "steps_sample": sample["steps"], "steps_full": full["steps"], "epochs": full["epochs"],
            "batch_size": s.batch_size, "image_size": size, "runs": runs, "toy": toy,
            "t4_minutes_full": minutes, "t4_minutes_sample": minutes_sample,
            "fits": memory <= GPU_MEMORY_BYTES,
            "in_window": WINDOW_MINUTES[0] <= minutes[shares[0]] <= WINDOW_MINUTES[1]}


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def budget_table(rows: list[dict], shares=SHARES) -> str:
    """The budget rows as a Markdown table, then one line per setting (fits 12 GB? in the time window?)."""
    lo, hi = shares[0], shares[-1]
    head = ("| setting | params | GFLOP/step | peak memory, fp16 | checkpoint (written / kept, full) | steps, sample / full "
            f"| T4 min, full UTKFace, {100 * lo:.0f}% / {100 * hi:.0f}% | T4 min, sample, {100 * lo:.0f}% |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        runs = (f" (x{r['runs']} runs)" if r["runs"] > 1 else "") + (" (toy faces)" if r["toy"] else "")
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['flops_per_step'] / 1e9:,.0f} | "
                     f"{_gb(r['memory_bytes'])} | {_mb(r['checkpoint_bytes'])} ({r['checkpoints_written_full']} / "
                     f"{r['checkpoints_kept']}) | {r['steps_sample']:,} / {r['steps_full']:,}{runs} | "
                     f"{r['t4_minutes_full'][lo]:.1f} / {r['t4_minutes_full'][hi]:.1f} | {r['t4_minutes_sample'][lo]:.1f} |")
    lines.append("")
    w0, w1 = WINDOW_MINUTES
    for r in rows:
        t = r["t4_minutes_full"][lo]
        faces = "the toy faces" if r["toy"] else "the full UTKFace"
        lines.append(f"{r['name']}: fits {GPU_MEMORY_BYTES / 1e9:.0f} GB? {'yes' if r['fits'] else 'NO'} "
                     f"({_gb(r['memory_bytes'])}); {w0:.0f}-{w1:.0f} T4 min at {100 * lo:.0f}% on {faces}? "
                     f"{'yes' if r['in_window'] else 'NO'} ({t:.1f} min)")
    return "\n".join(lines)


def bench_budget(args) -> list[dict]:
    names = [n.strip() for n in args.settings.split(",")] if args.settings else list(config.GPU_SETTINGS)
    unknown = [n for n in names if n not in config.GPU_SETTINGS]
    if unknown:
        sys.exit(f"no GPU setting {', '.join(unknown)}; choose from {', '.join(config.GPU_SETTINGS)}")
    shares = tuple(float(x) for x in args.share.split(","))
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for n in names:
        t0 = time.perf_counter()
        rows.append(budget(n, config.GPU_SETTINGS[n], shares=shares))
        print(f"{n}: measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"T4 budget of every GPU setting: FLOPs and memory counted on this CPU (one step at batch 1 and 2, "
          f"2 and 3 for the age GAN, extended to the setting's batch); {T4_FP16_TFLOPS:.0f} TFLOP/s float16 peak; full UTKFace "
          f"{UTKFACE_FULL:,} faces, sample {UTKFACE_SAMPLE:,} ({SAMPLE_TRAIN_FACES:,} training faces); "
          f"checkpoints every checkpoint_every steps and at each epoch's end, the newest {rows[0]['checkpoints_kept']} "
          "kept.\n")
    print(budget_table(rows, shares))
    return rows


BENCHMARKS = {"data": bench_data, "cyclegan": bench_cyclegan, "budget": bench_budget}


def run(args) -> int:
    """The command line's work, once :func:`main` has parsed the arguments."""
    try:
        return BENCHMARKS[args.what](args)
    except CompileError as e:
        sys.exit(f"error: {e}")
