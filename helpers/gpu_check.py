"""``python -m helpers.gpu_check`` (``make gpu-check``): the course on a GPU, one prepared run of about 9 minutes.

It is sized for one short lease of a big GPU (an H200 here): everything that needs the GPU runs in
one process, in this order, and prints one table last.

1. **Speed.** CycleGAN training throughput at the course's GPU setting (``config.CYCLEGAN``: 128 px,
   Zhu et al.'s 9-block generator, identity loss on), in image pairs per second, measured in the same
   run the course's way (uint8 faces on the GPU, batches of 8 and more, bf16 autocast, channels-last,
   with and without ``torch.compile``) and the plain way (float32, batch 1, every JPEG decoded per
   sample: junyanz's recipe), with :func:`helpers.benchmark.bench_cyclegan`. Beside it: the FLOPs of
   one training step per pair (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
   products, forward and backward), the GPU's bf16 matrix-multiply rate measured with one big matmul,
   and the share of that rate the course's way reaches. Goals printed beside the numbers: at least
   10x the plain way, at least 40% of the matmul rate.
2. **Training on real faces**, for a fixed time each (3 min CycleGAN, 2 min the age-modulated GAN),
   with the course's own :func:`helpers.cyclegan.setup_cyclegan` / :func:`helpers.agegan.setup_agegan`
   and their Trainer. The learning-rate schedule is shortened (:func:`helpers.runs.with_length`) to the
   epochs that the measured speed fits in the time, and a wall-clock stop (here, never in a test) ends
   training when the time is up. Written: each model's result grid (PNG), its generators as float16
   safetensors (no file over 8 MiB: a bigger generator is split into shards), and the age accuracy
   (:mod:`helpers.evaluate`'s age classifier) on the sample's test split, with the same-person share
   of ``helpers.identity`` (dlib) where that is installed.
3. **Colab estimate.** Every notebook's GPU setting is set up on the same faces, its FLOPs per step
   counted and its eager steps per second measured (the notebooks do not compile). The T4 time
   assumes that a T4 reaches the same share of its 65 TFLOP/s float16 peak as the model reaches here
   of the measured bf16 matmul rate, on the full UTKFace (23,708 faces; the epochs scale with the
   faces). Printed, and written to ``colab_estimate.json``.

Where things go: everything to ``$OUT`` (default ``outputs/gpu-check``), at most 8 files, none over
8 MiB (a device run returns at most 8 files). The real faces are read from a git-ignored folder,
``--faces`` (default ``$GPU_CHECK_FACES`` or ``real/UTKFace``); they are never written out.

``SMOKE=1`` runs the same script end to end on a CPU in well under a minute, with the course's smoke
sizes and the toy faces (or 300 of the real faces when the folder is there), so CI keeps it working.
Optional parts that are missing (a CUDA GPU for ``torch.compile``, dlib) get a line in the table that
says so; nothing here needs the network.

    python -m helpers.gpu_check [--faces DIR] [--out DIR] [--budget S] [--cyclegan-s S] [--agegan-s S]
                                [--batches 8,32] [--compile-batches 8] [--threads N] [--device D]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import config

#: What one device run brings back: at most 8 files; and the course keeps each weight file under 8 MiB.
MAX_FILES = 8
MAX_FILE_BYTES = 8 * 2**20
#: Goals printed beside the speed numbers (issue 14).
GOAL_SPEEDUP = 10.0
GOAL_SHARE = 0.40


@dataclass(frozen=True)
class CheckSettings:
    """The check's own sizes: full (a GPU lease) and smoke (a CPU, for CI)."""

    budget_s: float  # the whole run's work, machine start not included
    cyclegan_s: float  # CycleGAN training time
    agegan_s: float  # age-modulated GAN training time
    speed_steps: int  # timed steps of the course's way, per setting
    plain_steps: int  # timed steps of the plain way
    warmup: int | None  # untimed steps first (None: the benchmark's own, 2 or 10 with compile)
    batches: tuple  # batch sizes tried eagerly
    compile_batches: tuple  # batch sizes tried with torch.compile (CUDA only)
    matmul_n: int  # side of the square matmul that measures the matrix rate
    matmul_reps: int
    model_steps: int  # timed steps per notebook setting (the Colab estimate)
    reserve_s: float  # kept back from the budget for evaluation and writing


CHECK = config.pick(
    CheckSettings(budget_s=520, cyclegan_s=180, agegan_s=120, speed_steps=30, plain_steps=30, warmup=None,
                  batches=(8, 32), compile_batches=(8,), matmul_n=8192, matmul_reps=50, model_steps=15,
                  reserve_s=45),
    CheckSettings(budget_s=120, cyclegan_s=4, agegan_s=3, speed_steps=3, plain_steps=3, warmup=1,
                  batches=(8,), compile_batches=(), matmul_n=256, matmul_reps=5, model_steps=2,
                  reserve_s=10),
)

#: The notebooks that train, with the catalog row that holds each one's settings.
NOTEBOOK_MODELS = ("dcgan", "cyclegan", "cdcgan", "cdcgan-wide", "encoder", "agegan", "eval")


class UsageError(Exception):
    """Bad input (a missing folder, no GPU): printed as one line, exit status 2."""


def _int_list(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 8,32") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.gpu_check", description=__doc__,
                                epilog="exit codes: 0 every check ran and the outputs fit; 1 a check failed or the "
                                       "outputs are over the limits (the table says which); 2 usage error (no CUDA "
                                       "GPU without SMOKE=1, no faces)",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", default=None, help="folder of real UTKFace JPEGs (default: $GPU_CHECK_FACES or real/UTKFace)")
    p.add_argument("--out", default=None, help="where to write (default: $OUT or outputs/gpu-check)")
    p.add_argument("--budget", type=float, default=None, help=f"seconds of work in all (default {CHECK.budget_s:.0f})")
    p.add_argument("--cyclegan-s", type=float, default=None, help=f"CycleGAN training seconds (default {CHECK.cyclegan_s:.0f})")
    p.add_argument("--agegan-s", type=float, default=None, help=f"age-modulated GAN seconds (default {CHECK.agegan_s:.0f})")
    p.add_argument("--batches", type=_int_list, default=None,
                   help=f"batch sizes of the course's way, eager (default {','.join(map(str, CHECK.batches))})")
    p.add_argument("--compile-batches", type=_int_list, default=None,
                   help="batch sizes with torch.compile, CUDA only (default "
                        f"{','.join(map(str, CHECK.compile_batches)) or 'none'}; '' for none)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 in smoke mode on a CPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: the best available; cpu needs SMOKE=1)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # before torch: --help and bad arguments answer at once
    from . import gpu_check as app  # the heavy part (torch, the models): this module itself when imported

    return app.run(args)


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------- the heavy part
# ruff: noqa: E402 -- imported after the command line above, on purpose

import dataclasses
import json
import math
import platform
import tempfile
import time
import traceback
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")  # headless: the device has no display

import matplotlib.pyplot as plt
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from . import agegan, benchmark, catalog, cdcgan, cyclegan, encoder, evaluate
from . import metrics as M
from .cache import build_cache
from .runs import face_loader, with_length
from .sources import load_faces
from .splits import train_test_split
from .training import Precision, pick_device

#: A Colab T4's float16 tensor-core peak, and the faces of the full UTKFace (helpers.benchmark's).
T4_FP16_TFLOPS = benchmark.T4_FP16_TFLOPS
UTKFACE_FULL = benchmark.UTKFACE_FULL


# --------------------------------------------------------------------------- measuring


sync = benchmark.sync  # wait for the GPU's queued work before reading the clock


def matmul_rate(device, n: int, reps: int) -> dict:
    """FLOP/s of an ``n`` x ``n`` matrix product repeated ``reps`` times: bf16 on CUDA, float32 elsewhere."""
    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        c = a @ b
    rates = []
    for _ in range(5):  # five timed groups; the median is the rate
        sync(device)
        t0 = time.perf_counter()
        for _ in range(max(1, reps // 5)):
            c = a @ b
        sync(device)
        rates.append(2.0 * n**3 * max(1, reps // 5) / (time.perf_counter() - t0))
    del c
    return {"flops_per_s": float(np.median(rates)), "dtype": str(dtype).replace("torch.", ""), "n": n, "reps": reps}


def count_flops(fn) -> int:
    """FLOPs of the convolutions and matrix products that ``fn()`` runs (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def forever(loader):
    while True:
        yield from loader


def steps_per_second(model, batches, warmup: int, steps: int, device) -> float:
    """Training steps per second of ``model.train_step`` over the iterator ``batches`` (its loader included)."""
    for _ in range(warmup):
        model.train_step(next(batches))
        model.precision.update()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(next(batches))
        model.precision.update()
    sync(device)
    return steps / (time.perf_counter() - t0)


def cyclegan_flops_per_pair(device, batch: int = 8) -> int:
    """FLOPs of one CycleGAN training step at the device's setting, per image pair (batch ``batch``)."""
    s = cyclegan.default_settings(device)
    model = cyclegan.CycleGAN(s, device=device, precision=Precision(device))
    fmt = model.precision.memory_format
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(batch, 3, s.image_size, s.image_size, generator=g).mul(2).sub(1)
            .to(device).contiguous(memory_format=fmt) for _ in range(2))
    return count_flops(lambda: model.train_step((a, b))) // batch


# --------------------------------------------------------------------------- choosing a length


def fit_epochs(seconds: float, steps_per_s: float, batches_per_epoch: int, most: int, margin: float = 0.85) -> int:
    """The epochs (1 .. ``most``) that ``seconds`` of training at ``steps_per_s`` fit, keeping ``1 - margin`` spare."""
    if not (steps_per_s > 0 and batches_per_epoch > 0):
        return 1
    return int(max(1, min(most, math.floor(seconds * steps_per_s * margin / batches_per_epoch))))


def train_for(run, seconds: float, epochs: int, steps_per_s: float | None = None, chunk_s: float = 30.0) -> dict:
    """Train ``run`` until ``epochs`` epochs or until ``seconds`` have passed, whichever comes first.

    The Trainer trains in chunks of steps (each about ``chunk_s`` at the speed measured so far, the
    first a short one), so the clock is looked at between chunks; each chunk ends with a checkpoint.
    """
    trainer = run.trainer
    t0 = time.perf_counter()
    rate = steps_per_s if steps_per_s and steps_per_s > 0 else None
    stopped_by, first = "epochs", True
    while trainer.epoch < epochs:
        left = seconds - (time.perf_counter() - t0)
        if left <= 0:
            stopped_by = "clock"
            break
        # The first chunk is short: it re-measures the speed (and absorbs a compile) before the long ones.
        n = max(1, int(rate * min(left, chunk_s / 3 if first else chunk_s))) if rate else 10
        first = False
        before, t1 = trainer.step, time.perf_counter()
        trainer.fit(epochs=epochs, steps=trainer.step + n)
        done = trainer.step - before
        if done and time.perf_counter() > t1:
            rate = done / (time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    return {"steps": int(trainer.step), "epochs_done": int(trainer.epoch), "epochs_planned": int(epochs),
            "seconds": round(elapsed, 1), "stopped_by": stopped_by,
            "steps_per_s": trainer.step / elapsed if elapsed > 0 else math.nan}


# --------------------------------------------------------------------------- float16 safetensors


def save_fp16(state: dict, stem, metadata: dict, max_bytes: int = MAX_FILE_BYTES) -> list[Path]:
    """Write a state dict as float16 safetensors: ``<stem>.safetensors``, or shards of at most ``max_bytes`` each.

    Shards are named ``<stem>-00001-of-00003.safetensors`` (the Hugging Face convention); every
    file carries ``metadata`` (strings), its shard number and the shard count, so
    :func:`load_fp16` needs no index file. Integer buffers keep their type.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shards = _pack(_fp16(state), max_bytes, len(json.dumps(metadata)))
    paths = []
    for i, shard in enumerate(shards, 1):
        name = f"{stem.name}.safetensors" if len(shards) == 1 else f"{stem.name}-{i:05d}-of-{len(shards):05d}.safetensors"
        path = stem.with_name(name)
        meta = {**{k: str(v) for k, v in metadata.items()}, "shard": str(i), "shards": str(len(shards))}
        tmp = path.with_name(path.name + ".tmp")
        save_file(shard, str(tmp), metadata=meta)
        tmp.replace(path)
        paths.append(path)
    return paths


def load_fp16(paths) -> tuple[dict, dict]:
    """``(state, metadata)`` from the file(s) :func:`save_fp16` wrote (one file or every shard)."""
    paths = sorted(Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths))
    if not paths:
        raise FileNotFoundError("no safetensors files given")
    state, meta = {}, {}
    for p in paths:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                state[k] = f.get_tensor(k)
    want = int(meta.get("shards", len(paths)))
    if want != len(paths):
        raise ValueError(f"{paths[0].name} is one of {want} shards, but {len(paths)} were given: pass them all")
    return state, meta


def load_generator(paths, device="cpu") -> torch.nn.Module:
    """A generator rebuilt from :func:`save_fp16`'s files (their metadata names the model), in float32 and eval mode."""
    state, meta = load_fp16(paths)
    c = json.loads(meta["config"])
    weights = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if meta.get("model") == "cyclegan":
        return cyclegan.generator_from(c, weights, device)
    if meta.get("model") == "agegan":
        return agegan.generator_from(c, weights, device)
    raise ValueError(f"these files hold a {meta.get('model')!r} network; known: 'cyclegan', 'agegan'")


def export_generators(networks: dict, stem_of, model: str, model_config: dict, info: dict,
                      files_left: int) -> tuple[dict, int]:
    """Write each network of ``networks`` (an ordered dict, most wanted first) while the file budget lasts.

    Returns ``({name: [paths] or the reason it was left out}, files_left)``.
    """
    out = {}
    for name, net in networks.items():
        state = net.state_dict()
        meta = {"format": "face-aging-course generator, float16", "model": model, "network": name,
                "config": json.dumps(model_config), **{k: str(v) for k, v in info.items()}}
        need = _shard_count(state, meta)
        if need > files_left:
            out[name] = (f"not written: its {need} float16 shard(s) do not fit in the {MAX_FILES} files a device "
                         f"run brings back ({files_left} left)")
            continue
        out[name] = save_fp16(state, stem_of(name), meta)
        files_left -= len(out[name])
    return out, files_left


def _fp16(state: dict) -> dict:
    """Floating-point tensors as contiguous float16 on the CPU; integer buffers as they are."""
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in state.items()}


def _pack(tensors: dict, max_bytes: int, meta_bytes: int) -> list[dict]:
    """Tensors in order, cut into groups whose file (data, plus a generous header estimate) stays under ``max_bytes``."""
    shards, current, size = [], {}, meta_bytes + 256
    for k, v in tensors.items():
        n = v.numel() * v.element_size() + 128 + len(k)  # the header holds each tensor's name, type, shape, offsets
        if n + meta_bytes + 256 > max_bytes:
            raise ValueError(f"tensor {k} alone takes {n:,} bytes, more than a file may hold ({max_bytes:,})")
        if current and size + n > max_bytes:
            shards.append(current)
            current, size = {}, meta_bytes + 256
        current[k] = v
        size += n
    shards.append(current)
    return shards


def _shard_count(state: dict, metadata: dict, max_bytes: int = MAX_FILE_BYTES) -> int:
    return len(_pack(_fp16(state), max_bytes, len(json.dumps(metadata))))


# --------------------------------------------------------------------------- the Colab estimate


def t4_minutes(flops_per_step: float, steps_per_s: float, total_steps: float, ref_flops_per_s: float) -> dict:
    """The T4 estimate of one training: its utilisation here carried over to the T4's float16 peak.

    ``utilisation`` = FLOPs per second reached here / the matmul rate measured here; the T4 is
    assumed to reach the same share of :data:`T4_FP16_TFLOPS`.
    """
    achieved = flops_per_step * steps_per_s
    util = achieved / ref_flops_per_s if ref_flops_per_s > 0 else math.nan
    t4_rate = util * T4_FP16_TFLOPS * 1e12
    return {"utilisation": util, "minutes_here": total_steps / steps_per_s / 60 if steps_per_s > 0 else math.nan,
            "t4_minutes": total_steps * flops_per_step / t4_rate / 60 if t4_rate > 0 else math.nan}


# --------------------------------------------------------------------------- the report


def _clean(x):
    """Plain JSON values: NaN and infinity -> None, NumPy numbers -> Python, paths -> strings."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _minutes(v: float, approx: str = "") -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{approx}{v:.0f} min" if v >= 10 else f"{approx}{v:.2g} min" if v >= 0.01 else "< 0.01 min"


def _si(v: float, unit: str) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= factor:
            return f"{v / factor:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"


class Report:
    """The rows of the final table and every number, written to ``gpu_check.json`` after each phase."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: list[tuple[str, str, str, str]] = []
        self.data: dict = {}
        self.failed: list[str] = []

    def row(self, step: str, what: str, value: str, note: str = "") -> None:
        self.rows.append((step, what, value, note))

    def save(self) -> Path:
        path = self.out / "gpu_check.json"
        path.write_text(json.dumps(_clean({**self.data, "table": self.table(), "failed": self.failed}), indent=2))
        return path

    def table(self) -> str:
        head = ("step", "measurement", "value", "goal / note")
        rows = sorted(self.rows, key=lambda r: r[0][:1])  # stable: the phases' own order within a step
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
        line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
        return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def phase(report: Report, name: str):
    """A context manager that records a phase's failure in the table and carries on with the next phase."""

    class _Phase:
        def __enter__(self):
            print(f"\n=== {name} ===", flush=True)
            self.t0 = time.perf_counter()
            return self

        def __exit__(self, kind, err, tb):
            dt = time.perf_counter() - self.t0
            report.data.setdefault("phase_seconds", {})[name] = round(dt, 1)
            failed = isinstance(err, Exception)  # KeyboardInterrupt and the like still stop the run
            if failed:
                traceback.print_exception(kind, err, tb)
                first = (str(err).splitlines() or [""])[0][:90]
                report.failed.append(f"{name}: {type(err).__name__}: {err}")
                report.row(name, "this step", "FAILED", f"{type(err).__name__}: {first}")
            report.save()
            print(f"({name}: {dt:.0f} s)", flush=True)
            return failed  # a failed step is recorded and the next one runs

    return _Phase()


# --------------------------------------------------------------------------- the phases


@dataclass
class Context:
    device: torch.device
    source: str  # "utkface" or "toy"
    faces_dir: Path | None  # the real faces' folder (None: toy faces)
    jpeg_dir: Path  # a folder of the JPEGs the benchmark decodes the plain way
    n_faces: int
    max_images: int | None
    out: Path
    tmp: Path
    check: CheckSettings
    deadline: float
    report: Report
    runs: dict = dataclasses.field(default_factory=dict)  # name -> trained run
    models: dict = dataclasses.field(default_factory=dict)  # notebook measurements
    speed: dict = dataclasses.field(default_factory=dict)
    files_left: int = MAX_FILES - 4  # for weights: gpu_check.json, colab_estimate.json and two grids come first


def speed_phase(ctx: Context) -> None:
    """Step 1: pairs/s the course's way and the plain way, FLOPs per pair, the matmul rate, the share."""
    k, dev, r = ctx.check, ctx.device, ctx.report
    cuda = dev.type == "cuda"
    mm = matmul_rate(dev, k.matmul_n, k.matmul_reps)
    print(f"{mm['dtype']} matmul {k.matmul_n}^3 x {k.matmul_reps}: {_si(mm['flops_per_s'], 'FLOP/s')}")
    flops = cyclegan_flops_per_pair(dev, batch=8)
    print(f"CycleGAN training step: {_si(flops, 'FLOP')} per image pair (FlopCounterMode, batch 8)")
    s = cyclegan.default_settings(dev)
    results = []
    tries = [(b, False) for b in k.batches] + [(b, True) for b in (k.compile_batches if cuda else ())]
    for batch, compiled in tries:
        args = argparse.Namespace(device=str(dev), batch=batch, size=None, generator=None, ngf=None, ndf=None,
                                  n_blocks=None, jpegs=str(ctx.jpeg_dir), steps=k.speed_steps,
                                  plain_steps=k.plain_steps, warmup=k.warmup, compile=compiled)
        t0 = time.perf_counter()
        try:
            res = benchmark.bench_cyclegan(args)
        except Exception as err:  # noqa: BLE001 -- one setting failing (a compiler missing, memory) must not cost the rest
            traceback.print_exc()
            r.failed.append(f"speed, batch {batch}{', compile' if compiled else ''}: {type(err).__name__}: {err}")
            r.row("1 speed", f"course's way, batch {batch}{', torch.compile' if compiled else ''}", "FAILED",
                  f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:80]}")
            continue
        finally:
            if cuda:
                torch.cuda.empty_cache()
        results.append({"batch": batch, "compile": compiled, "seconds": round(time.perf_counter() - t0, 1), **res})
    if not results:
        raise RuntimeError("no setting of the speed benchmark ran")
    plain = float(np.median([x["plain_pairs_per_s"] for x in results]))
    best = max(results, key=lambda x: x["fast_pairs_per_s"])
    speedup = best["fast_pairs_per_s"] / plain
    share = best["fast_pairs_per_s"] * flops / mm["flops_per_s"]
    prec = repr(Precision(dev)).split(": ", 1)[1].rstrip(")")
    ctx.speed = {"matmul": mm, "flops_per_pair": flops, "tries": results, "plain_pairs_per_s": plain,
                 "best": best, "speedup": speedup, "share_of_matmul": share,
                 "settings": {"image_size": s.image_size, "generator": s.generator, "ngf": s.ngf, "n_blocks": s.n_blocks,
                              "lambda_identity": s.lambda_identity, "precision": prec}}
    r.data["speed"] = ctx.speed
    arch = f"{s.image_size} px, {s.generator} G ngf {s.ngf}, {s.n_blocks} blocks, identity {s.lambda_identity}"
    r.row("1 speed", "CycleGAN setting", arch, "config.CYCLEGAN" if cuda else "smoke sizes on a CPU")
    r.row("1 speed", "plain way: float32, batch 1, JPEG decoded per sample", f"{plain:.2f} pairs/s",
          f"median of {len(results)} run(s), one beside each setting")
    for x in results:
        r.row("1 speed", f"course's way: {prec}, batch {x['batch']}{', torch.compile' if x['compile'] else ''}",
              f"{x['fast_pairs_per_s']:.2f} pairs/s", f"{x['fast_pairs_per_s'] / plain:.1f}x the plain way")
    if not cuda:
        r.row("1 speed", "course's way with torch.compile", "skipped", "needs a CUDA GPU (too slow to compile on a CPU)")
    r.row("1 speed", "FLOPs per image pair (one training step)", _si(flops, "FLOP"), "FlopCounterMode: conv + matmul, fwd + bwd")
    r.row("1 speed", f"{mm['dtype']} matmul rate ({mm['n']}^3)", _si(mm["flops_per_s"], "FLOP/s"), "measured in this run")
    r.row("1 speed", "best course's way vs the plain way", f"{speedup:.1f}x",
          f"goal >= {GOAL_SPEEDUP:.0f}x: {'MET' if speedup >= GOAL_SPEEDUP else 'NOT MET'}")
    r.row("1 speed", "share of the matmul rate reached", f"{100 * share:.1f}%",
          f"goal >= {100 * GOAL_SHARE:.0f}%: {'MET' if share >= GOAL_SHARE else 'NOT MET'}"
          + ("" if cuda else " (CPU, float32: not the goal's measure)"))


def _notebook_run(ctx: Context, name: str):
    spec = catalog.get(name)
    s = spec.settings(ctx.device, ctx.source)
    run = spec.setup(s, data=ctx.source, data_path=ctx.faces_dir, device=ctx.device, run_dir=ctx.tmp / f"nb-{name}",
                     max_images=ctx.max_images, resume=False, progress=False, verbose=False)
    return spec, s, run


def _measure(ctx: Context, model, loader, k: CheckSettings) -> tuple[int, float]:
    batches = forever(loader)
    first = next(batches)
    flops = count_flops(lambda: model.train_step(first))
    model.precision.update()
    rate = steps_per_second(model, batches, warmup=2, steps=k.model_steps, device=ctx.device)
    return flops, rate


def models_phase(ctx: Context) -> None:
    """Step 3's measurements: every notebook's setting here, its FLOPs per step and eager steps per second."""
    k, dev = ctx.check, ctx.device
    scale = UTKFACE_FULL / ctx.n_faces if ctx.source == "utkface" else 1.0
    cdc_runs = {}
    for name in NOTEBOOK_MODELS:
        try:
            if name == "eval":
                m = _measure_classifier(ctx)
            elif name == "encoder":
                m = _measure_encoder(ctx, cdc_runs)
            else:
                spec, s, run = _notebook_run(ctx, name)
                if name.startswith("cdcgan"):
                    cdc_runs[name] = run
                flops, rate = _measure(ctx, run.model, run.loader, k)
                per_epoch = len(run.loader)
                if hasattr(s, "steps"):
                    steps, length = s.steps, f"{s.steps} steps"
                else:
                    steps, length = s.epochs * per_epoch * scale, f"{s.epochs} epoch(s)"
                m = {"notebook": spec.notebook, "title": spec.title, "image_size": getattr(s, "image_size", None),
                     "batch_size": s.batch_size, "length": length, "batches_per_epoch_here": per_epoch,
                     "epochs": getattr(s, "epochs", None), "steps": steps, "flops_per_step": flops, "steps_per_s": rate}
            ctx.models[name] = m
            print(f"{name}: {_si(m['flops_per_step'], 'FLOP')}/step, {m['steps_per_s']:.2f} steps/s, {m['length']}")
        except Exception as err:  # noqa: BLE001 -- one notebook failing must not cost the others' numbers
            traceback.print_exc()
            ctx.report.failed.append(f"model {name}: {type(err).__name__}: {err}")
            ctx.models[name] = {"error": f"{type(err).__name__}: {err}"}
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    ctx.report.data["notebooks"] = ctx.models


def _measure_encoder(ctx: Context, cdc_runs: dict) -> dict:
    """Notebook 05: both encoders (the seed's and the improved one) against the frozen conditional DCGAN."""
    s = catalog.get("encoder").settings(ctx.device, ctx.source)
    cgan = cdc_runs.get("cdcgan-wide" if s.cgan == "wide" else "cdcgan")
    if cgan is None:
        raise RuntimeError("the conditional DCGAN it inverts could not be set up")
    if cgan.settings != encoder.cgan_settings(s):
        raise RuntimeError(f"the encoder's settings invert {s.cgan_settings}, which is not the conditional DCGAN "
                           "set up for this device and faces")
    G = cdcgan.frozen_generator(cgan.gan.G, s.calibration_batches, seed=s.seed)
    flops = rate_inv = 0.0
    for mode in ("seed", "real"):  # the two encoders train one after the other: their times add up
        model = encoder.InversionEncoder(G, mode, s, device=ctx.device, precision=cgan.gan.precision)
        loader = face_loader(cgan.cache, s.batch_size, ctx.device, cgan.gan.precision, seed=s.seed, labels=cgan.labels)
        f, rate = _measure(ctx, model, loader, ctx.check)
        flops += f / 2
        rate_inv += 1 / rate / 2
    return {"notebook": catalog.get("encoder").notebook, "title": catalog.get("encoder").title, "image_size": G.image_size,
            "batch_size": s.batch_size, "length": f"2 encoders x {s.steps} steps (the cDCGAN: notebook 04)",
            "steps": 2 * s.steps, "flops_per_step": flops, "steps_per_s": 1 / rate_inv}


def _measure_classifier(ctx: Context) -> dict:
    """Notebook 07: training the course's age classifier (the translations and scores are not counted)."""
    e = config.EVAL
    faces = load_faces(ctx.source, path=ctx.faces_dir, verbose=False, max_images=ctx.max_images)
    train_df, _ = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    cache = build_cache(train_df, e.image_size, verbose=False)
    images, targets = cache.tensor(), {"age": cache.table["age"].to_numpy()}

    def train(steps):
        net = M.AgeClassifier(e.image_size, e.width)
        M.train_classifier(net, images, targets, steps, e.batch_size, e.lr, e.age_sigma, e.seed, ctx.device)

    flops = count_flops(lambda: train(1))
    n = max(2, 3 * ctx.check.model_steps)
    train(2)  # warm up
    sync(ctx.device)
    t0 = time.perf_counter()
    train(n)
    sync(ctx.device)
    return {"notebook": "07_evaluation.ipynb", "title": "the age classifier that judges every model",
            "image_size": e.image_size, "batch_size": e.batch_size, "length": f"{e.steps} steps",
            "steps": e.steps, "flops_per_step": flops, "steps_per_s": n / (time.perf_counter() - t0)}


def colab_phase(ctx: Context) -> None:
    """Step 3: the estimated T4 minutes of every notebook's training, printed and written to colab_estimate.json."""
    r = ctx.report
    mm = ctx.speed.get("matmul") or matmul_rate(ctx.device, ctx.check.matmul_n, ctx.check.matmul_reps)
    ref = mm["flops_per_s"]
    scale = UTKFACE_FULL / ctx.n_faces if ctx.source == "utkface" else 1.0
    rows, total = [], 0.0
    for name, m in ctx.models.items():
        if "error" in m:
            rows.append({"model": name, "error": m["error"]})
            r.row("3 Colab", name, "not estimated", m["error"][:90])
            continue
        est = t4_minutes(m["flops_per_step"], m["steps_per_s"], m["steps"], ref)
        rows.append({"model": name, **m, **est})
        total += est["t4_minutes"]
        r.row("3 Colab", f"{m['notebook'][:2]} {name}: {m['image_size']} px, batch {m['batch_size']}, {m['length']}",
              f"T4 {_minutes(est['t4_minutes'], '~')}", f"here {_minutes(est['minutes_here'])}, "
              f"{100 * est['utilisation']:.1f}% of the matmul rate")
    assumption = (f"a T4 reaches the same share of its {T4_FP16_TFLOPS:.0f} TFLOP/s float16 peak as each training "
                  f"reaches here of the measured {mm['dtype']} matmul rate ({_si(ref, 'FLOP/s')}); eager (the notebooks "
                  f"do not compile); FLOPs are the convolutions and matrix products (FlopCounterMode); epoch-counted "
                  f"trainings on the full UTKFace ({UTKFACE_FULL:,} faces, {scale:.2f}x the {ctx.n_faces:,} here)")
    estimate = {"assumption": assumption, "t4_fp16_peak_tflops": T4_FP16_TFLOPS, "reference": mm,
                "device": _device_name(ctx.device), "source": ctx.source, "faces_here": ctx.n_faces,
                "epoch_scale": scale, "notebooks": rows, "total_t4_minutes": total}
    (ctx.out / "colab_estimate.json").write_text(json.dumps(_clean(estimate), indent=2))
    r.data["colab"] = estimate
    r.row("3 Colab", "all notebooks' training on a T4", _minutes(total, "~"), "assumption in colab_estimate.json")
    print(assumption)


def _time_left(ctx: Context) -> float:
    return ctx.deadline - time.perf_counter()


def _budget(ctx: Context, wanted: float, after: float) -> float:
    """``wanted`` seconds, or less when the run's deadline (less ``after`` for what follows) comes first."""
    return max(0.0, min(wanted, _time_left(ctx) - after - ctx.check.reserve_s))


def train_cyclegan_phase(ctx: Context) -> None:
    """Step 2, CycleGAN: the GPU setting on real faces for a fixed time; grid, float16 generators."""
    r, dev, k = ctx.report, ctx.device, ctx.check
    seconds = _budget(ctx, k.cyclegan_s, after=k.agegan_s)
    s0 = cyclegan.default_settings(dev, ctx.source)
    m = ctx.models.get("cyclegan", {})
    tries = {(x["batch"], x["compile"]): x for x in ctx.speed.get("tries", [])}
    eager, compiled = tries.get((s0.batch_size, False)), tries.get((s0.batch_size, True))
    # Compile for training only where the speed step showed it pays clearly: it costs a compile again, about
    # as long as the compiled benchmark took beyond the eager one.
    overhead = max(0.0, compiled["seconds"] - eager["seconds"]) if eager and compiled else 0.0
    use_compile = bool(dev.type == "cuda" and eager and compiled and seconds > 3 * overhead
                       and compiled["fast_pairs_per_s"] > 1.25 * eager["fast_pairs_per_s"])
    chosen = compiled if use_compile else eager
    rate = chosen["fast_pairs_per_s"] / s0.batch_size if chosen else m.get("steps_per_s", 0)
    overhead = overhead if use_compile else 0.0
    epochs = fit_epochs(seconds - overhead, rate, m.get("batches_per_epoch_here", 0), s0.epochs)
    s = replace(with_length(s0, epochs=epochs), checkpoint_every=10**9)
    print(f"{seconds:.0f} s of training: {epochs} epoch(s) planned at ~{rate:.1f} steps/s"
          + (f", torch.compile (~{overhead:.0f} s to compile)" if use_compile else ""))
    run = cyclegan.setup_cyclegan(s, data=ctx.source, data_path=ctx.faces_dir, device=dev,
                                  run_dir=ctx.tmp / "cyclegan", max_images=ctx.max_images, resume=False,
                                  progress=False, verbose=False, compile=use_compile)
    print(run.describe())
    done = train_for(run, seconds, epochs, rate)
    ctx.runs["cyclegan"] = run
    _save_figure(run.figures()["results"], ctx.out / "cyclegan_grid.png")
    info = {"steps": done["steps"], "data": ctx.source, "young": run.young, "old": run.old}
    nets = {"G_AB": run.model.networks["G_AB"], "G_BA": run.model.networks["G_BA"]}
    reserved = 1  # the age-modulated GAN's generator: one small file
    files, left = export_generators(nets, lambda n: ctx.out / f"cyclegan_{n}", "cyclegan", run.model.config,
                                    info, ctx.files_left - reserved)
    ctx.files_left = left + reserved
    r.data["cyclegan"] = {**done, "compile": use_compile, "pairs_per_s": done["steps_per_s"] * s.batch_size,
                          "young": str(run.young), "old": str(run.old), "final_losses": run.trainer.history.last(),
                          "files": files}
    r.row("2 CycleGAN", f"trained {done['seconds']:.0f} s on {ctx.source} ({run.young} <-> {run.old})",
          f"{done['steps']} steps, {done['epochs_done']}/{epochs} epochs",
          f"{done['steps_per_s'] * s.batch_size:.1f} pairs/s{', compiled' if use_compile else ''}; stopped by {done['stopped_by']}")
    _file_rows(r, "2 CycleGAN", files)


def train_agegan_phase(ctx: Context) -> None:
    """Step 2, the age-modulated GAN: the GPU setting on real faces for a fixed time; grid, float16 generator."""
    r, dev, k = ctx.report, ctx.device, ctx.check
    seconds = _budget(ctx, k.agegan_s, after=0)
    s0 = agegan.default_settings(dev, ctx.source)
    m = ctx.models.get("agegan", {})
    rate = m.get("steps_per_s", 0)
    epochs = fit_epochs(seconds, rate, m.get("batches_per_epoch_here", 0), s0.epochs)
    s = replace(with_length(s0, epochs=epochs), checkpoint_every=10**9)
    print(f"{seconds:.0f} s of training: {epochs} epoch(s) planned at ~{rate:.1f} steps/s")
    run = agegan.setup_agegan(s, data=ctx.source, data_path=ctx.faces_dir, device=dev, run_dir=ctx.tmp / "agegan",
                              max_images=ctx.max_images, resume=False, progress=False, verbose=False)
    print(run.describe())
    done = train_for(run, seconds, epochs, rate)
    ctx.runs["agegan"] = run
    _save_figure(run.figures()["age_grid"], ctx.out / "agegan_grid.png")
    info = {"steps": done["steps"], "data": ctx.source, "group_edges": list(s.group_edges)}
    files, ctx.files_left = export_generators({"G": run.gan.G}, lambda n: ctx.out / f"agegan_{n}", "agegan",
                                              run.gan.config, info, ctx.files_left)
    r.data["agegan"] = {**done, "groups": list(run.group_names), "final_losses": run.trainer.history.last(),
                        "files": files}
    r.row("2 AgeGAN", f"trained {done['seconds']:.0f} s on {ctx.source} ({len(run.groups)} age groups)",
          f"{done['steps']} steps, {done['epochs_done']}/{epochs} epochs",
          f"{done['steps_per_s'] * s.batch_size:.1f} faces/s; stopped by {done['stopped_by']}")
    _file_rows(r, "2 AgeGAN", files)


def _file_rows(r: Report, step: str, files: dict) -> None:
    for name, paths in files.items():
        if isinstance(paths, str):
            r.row(step, f"{name} float16 safetensors", "not written", paths)
        else:
            biggest = max(p.stat().st_size for p in paths)
            r.row(step, f"{name} float16 safetensors", f"{len(paths)} file(s), {_si(sum(p.stat().st_size for p in paths), 'B')}",
                  f"largest {biggest / 2**20:.2f} MiB (limit {MAX_FILE_BYTES / 2**20:.0f})")


def _save_figure(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_phase(ctx: Context) -> None:
    """Step 2's numbers: age accuracy on the test split (and the same-person share, with dlib)."""
    r = ctx.report
    if not ctx.runs:
        r.row("2 evaluation", "age accuracy", "skipped", "no model was trained")
        return
    judges = evaluate.Judges(ctx.source, ctx.faces_dir, config.EVAL, fid="stand-in", device=ctx.device,
                             verbose=False, max_images=ctx.max_images)
    sets = []
    if "cyclegan" in ctx.runs:
        run = ctx.runs["cyclegan"]
        sets += evaluate.translate_cyclegan(run.run_dir, judges, model=run.model,
                                            info={"young": str(run.young), "old": str(run.old)})
    if "agegan" in ctx.runs:
        run = ctx.runs["agegan"]
        G = agegan.generator_from(run.gan.config, run.gan.G.state_dict(), ctx.device)
        sets += evaluate.translate_agegan(run.run_dir, judges, G=G)
    for t in sets:
        t.source_name = judges.source
    rows = evaluate.score_all(sets, {judges.source: judges})  # with dlib: same person, resolution floor, strangers
    r.data["evaluation"] = {"rows": rows, "age_classifier": getattr(judges.age, "report", {}),
                            "same_person": judges.identity_note}
    ceiling = None
    for row in rows:
        if row.get("status") == "ceiling":
            ceiling = row
            continue
        same = row.get("same_person")
        if row.get("status") == "baseline":
            if same is None:  # a baseline of another measure (realism): no same-person share to show
                continue
            dist = row.get("identity_distance")
            r.row("2 evaluation", f"{row['model']} ({row['translation']})", f"same person {same:.1f}%",
                  (f"mean distance {dist:.2f}; " if dist is not None else "") + f"{row['faces']} faces")
            continue
        note = [f"{row['faces']} test faces"]
        if ceiling and ceiling.get("age_accuracy") is not None:
            note.insert(0, f"ceiling {ceiling['age_accuracy']:.1f}% (the judge on real test faces)")
        acc = row.get("age_accuracy")
        r.row("2 evaluation", f"{row['model']}: {row['translation']}",
              f"age accuracy {acc:.1f}%" if acc is not None else "age accuracy not measured", "; ".join(note))
        if same is not None and same == same:  # not NaN
            r.row("2 evaluation", f"{row['model']}: same person (dlib distance < 0.6)", f"{same:.1f}%",
                  f"mean distance {row['identity_distance']:.2f}")
    if judges.recognizer is None:
        r.row("2 evaluation", "same-person share", "skipped", judges.identity_note)


# --------------------------------------------------------------------------- the command line


def _device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


def resolve_faces(faces: str | None, smoke: bool, max_images: int | None) -> tuple[str, Path | None, object]:
    """``(source, folder, table)``: the real faces when the folder has JPEGs; in smoke mode the toy faces otherwise."""
    folder = Path(faces or os.environ.get("GPU_CHECK_FACES") or "real/UTKFace").expanduser()
    if folder.is_dir() and any(folder.glob("*.jpg")):
        table = load_faces("utkface", path=folder, verbose=True, max_images=max_images)
        return "utkface", folder, table
    if not smoke:
        raise UsageError(f"no UTKFace JPEGs in {folder}: copy the real-face sample there (it is git-ignored; on the "
                         f"device, name it in `carry`), or point --faces / GPU_CHECK_FACES at such a folder. "
                         f"SMOKE=1 runs on the toy faces instead.")
    print(f"no real faces in {folder}: smoke mode uses the toy faces")
    return "toy", None, load_faces("toy", verbose=False, max_images=max_images)


def check_outputs(out: Path) -> list[str]:
    """Problems with what ``out`` holds against a device run's limits (at most 8 files, 8 MiB each, 2 folders deep)."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = []
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files in {out}, more than the {MAX_FILES} a device run brings back")
    problems += [f"{p.name} is {p.stat().st_size / 2**20:.1f} MiB, over {MAX_FILE_BYTES / 2**20:.0f} MiB"
                 for p in files if p.stat().st_size > MAX_FILE_BYTES]
    problems += [f"{p} is more than 2 folders down" for p in files if len(p.relative_to(out).parts) > 3]
    return problems


def run(args) -> int:
    """The check itself, for parsed arguments (see :func:`main`)."""
    t_start = time.perf_counter()
    k = replace(CHECK, **{f: v for f, v in (("budget_s", args.budget), ("cyclegan_s", args.cyclegan_s),
                                            ("agegan_s", args.agegan_s), ("batches", args.batches),
                                            ("compile_batches", args.compile_batches)) if v is not None})
    if args.threads or (config.SMOKE and not torch.cuda.is_available()):
        # The smoke networks are tiny: on a CPU one thread is as fast as more, and far faster on shared cores.
        torch.set_num_threads(args.threads or 1)
    out = Path(args.out or os.environ.get("OUT") or "outputs/gpu-check").expanduser()
    try:
        device = pick_device(args.device)
        if device.type != "cuda" and not config.SMOKE:
            raise UsageError(f"no CUDA GPU here ({device}): this check is sized for one. "
                             "Run `SMOKE=1 make gpu-check` for the quick CPU version.")
        source, faces_dir, table = resolve_faces(args.faces, config.SMOKE, config.DATA.max_images)
    except (UsageError, ValueError) as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out)
    jpeg_dir = faces_dir or Path(str(table["path"].iloc[0])).parent
    report.data["environment"] = {
        "device": _device_name(device), "torch": torch.__version__, "python": platform.python_version(),
        "cuda": torch.version.cuda, "cpu_cores": os.cpu_count(), "smoke": config.SMOKE, "source": source,
        "faces": len(table), "check": dataclasses.asdict(k)}
    print(f"gpu-check on {_device_name(device)}, torch {torch.__version__}; {config.summary()}")
    print(f"faces: {len(table):,} {source} ({faces_dir or jpeg_dir}); writing to {out}; budget {k.budget_s:.0f} s")
    report.row("0 setup", "device", _device_name(device), f"torch {torch.__version__}, {'SMOKE' if config.SMOKE else 'full'}")

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(device, source, faces_dir, jpeg_dir, len(table), config.DATA.max_images, out, Path(tmp), k,
                      t_start + k.budget_s, report)
        with phase(report, "1 speed"):
            speed_phase(ctx)
        with phase(report, "3 notebook settings"):
            models_phase(ctx)
        with phase(report, "2 CycleGAN training"):
            train_cyclegan_phase(ctx)
        with phase(report, "2 AgeGAN training"):
            train_agegan_phase(ctx)
        with phase(report, "2 evaluation"):
            evaluate_phase(ctx)
        with phase(report, "3 Colab estimate"):
            colab_phase(ctx)

    total = time.perf_counter() - t_start
    report.data["seconds"] = round(total, 1)
    problems = check_outputs(out)
    for p in problems:
        report.row("4 total", "output limits", "PROBLEM", p)
    report.row("4 total", "run time (work only)", f"{total:.0f} s", f"budget {k.budget_s:.0f} s")
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    report.row("4 total", f"files in {out}", str(len(files) + (0 if "gpu_check.json" in files else 1)),
               f"at most {MAX_FILES}")
    report.save()
    print("\n" + report.table(), flush=True)
    return 1 if report.failed or problems else 0
