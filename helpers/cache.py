"""The preprocessed uint8 image cache, and the PyTorch datasets built on it.

Decoding a JPEG costs far more than a GAN needs to spend per image: a 200x200 UTKFace JPEG takes
about a millisecond to decode and resize, every image, every epoch. Instead, each image is
decoded **once**, resized to the training resolution, and stored in one uint8 array of shape
``(N, H, W, 3)`` on disk (a ``.npy`` file, memory-mapped when read back). An epoch then reads
bytes that are already pixels. At 128 px the whole of UTKFace's 23,708 faces is 1.1 GB of uint8,
small enough to hold in RAM, or in GPU memory, where the batches are cut, flipped and scaled to
floats in one go (:class:`BatchLoader`).

Two tricks make the single decode fast: Pillow's JPEG *draft mode*, which lets the decoder skip
detail the target size will not show (it scales by 1/2, 1/4 or 1/8 inside the decoder), and a
pool of processes that each write their share straight into the memory-mapped file.

Images that cannot be decoded (empty, truncated, not an image at all) are skipped and reported
with a count; they never stop a build. Grayscale, palette and RGBA images are turned into RGB
(transparency is laid over white).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from . import config

#: Bump when the way images are decoded changes, so old caches are rebuilt.
CACHE_VERSION = 1


# --------------------------------------------------------------------------- decoding


def load_image(path, size: int | None = None) -> np.ndarray:
    """Decode one image file to a ``(size, size, 3)`` uint8 RGB array.

    Non-square images are centre-cropped to a square first. ``size=None`` keeps the image's own
    resolution (after the crop). Raises ``OSError`` (or ``ValueError``) for a file that is not
    a readable image.
    """
    with Image.open(path) as im:
        if size is not None and im.format == "JPEG":
            im.draft("RGB", (size, size))  # let libjpeg decode at a reduced scale
        im = _to_rgb(im)
        w, h = im.size
        if w != h:
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def _decode_into(args) -> list[tuple[int, str]]:
    """Worker: decode paths[i] into rows of the memory-mapped cache; return the failures."""
    npy_path, paths, start, size = args
    out = np.load(npy_path, mmap_mode="r+")
    failures = []
    for offset, p in enumerate(paths):
        i = start + offset
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow warns on some odd but readable files
                out[i] = load_image(p, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            failures.append((i, f"{Path(p).name}: {type(e).__name__}: {e}"))
    out.flush()
    del out
    return failures


# --------------------------------------------------------------------------- the cache


@dataclass
class FaceCache:
    """Decoded faces: ``images[i]`` is the ``(size, size, 3)`` uint8 picture of ``table.iloc[i]``."""

    images: np.ndarray
    table: pd.DataFrame
    size: int
    path: Path | None = None
    unreadable: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, mask_or_index) -> "FaceCache":
        """The faces selected by a boolean mask or an index array (images are copied)."""
        idx = np.asarray(mask_or_index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return FaceCache(np.asarray(self.images[idx]), self.table.iloc[idx].reset_index(drop=True), self.size)

    def tensor(self, device=None) -> torch.Tensor:
        """All images as one ``(N, 3, H, W)`` uint8 tensor, on ``device`` if given."""
        t = torch.from_numpy(np.ascontiguousarray(self.images)).permute(0, 3, 1, 2)
        return t.to(device) if device is not None else t

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes)


def _cache_key(paths: list[str], size: int) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}|{size}|".encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]


def build_cache(
    df: pd.DataFrame,
    size: int | None = None,
    cache_dir: Path | str | None = None,
    workers: int | None = None,
    verbose: bool = True,
    in_memory: bool = True,
) -> FaceCache:
    """Decode every image in ``df["path"]`` once, at ``size`` px, and keep it as uint8.

    The result is saved in ``cache_dir`` (default ``DATA_DIR/cache``) under a name made from the
    paths, file sizes and modification times, so the same table is decoded only once; a later
    call loads the saved array in well under a second. Files that fail to decode are left out
    of the returned cache and listed in ``cache.unreadable`` (and in ``df.attrs["report"]`` when
    a loader attached one).

    ``in_memory=False`` keeps the images memory-mapped from disk instead of loading them.
    """
    size = int(size or config.DATA.image_size)
    if len(df) == 0:
        raise ValueError("there are no faces to cache: the table is empty (check the age ranges or the data folder)")
    cache_dir = Path(cache_dir) if cache_dir is not None else config.DATA_DIR / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for p in df["path"]]
    key = _cache_key(paths, size)
    npy, bad_file = cache_dir / f"faces_{size}px_{key}.npy", cache_dir / f"faces_{size}px_{key}.bad.txt"

    if npy.exists() and bad_file.exists():
        failures = _read_failures(bad_file)
    else:
        failures = _decode_all(paths, size, npy, bad_file, workers, verbose)

    images = np.load(npy, mmap_mode="r")
    bad_rows = sorted(i for i, _ in failures)
    keep = np.ones(len(paths), dtype=bool)
    keep[bad_rows] = False
    unreadable = [msg for _, msg in failures]
    if bad_rows:
        images = images[keep]  # a copy in memory, without the failed rows
    elif in_memory:
        images = np.array(images)
    report = df.attrs.get("report")
    if report is not None and hasattr(report, "unreadable"):
        known = set(report.unreadable)
        report.unreadable.extend(m for m in unreadable if m not in known)
    if verbose and unreadable:
        shown = "; ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
        print(f"skipped {len(unreadable)} unreadable image(s): {shown}")
    table = df[keep].reset_index(drop=True)
    table.attrs = {}
    return FaceCache(images, table, size, npy, unreadable)


def _read_failures(bad_file: Path) -> list[tuple[int, str]]:
    out = []
    for line in bad_file.read_text().splitlines():
        if line.strip():
            i, msg = line.split("\t", 1)
            out.append((int(i), msg))
    return out


def _decode_all(paths, size, npy: Path, bad_file: Path, workers, verbose) -> list[tuple[int, str]]:
    n = len(paths)
    tmp = npy.with_name(npy.stem + f".tmp{os.getpid()}.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    del arr
    workers = workers or os.cpu_count() or 1
    # Processes pay off only for larger jobs; small ones decode in this process.
    if workers <= 1 or n < 256:
        jobs = [(str(tmp), paths, 0, size)]
    else:
        chunk = max(64, math.ceil(n / (workers * 8)))
        jobs = [(str(tmp), paths[s : s + chunk], s, size) for s in range(0, n, chunk)]
    failures: list[tuple[int, str]] = []
    progress = _progress(len(jobs), verbose, f"decoding {n:,} images at {size}px")
    if len(jobs) == 1:
        failures += _decode_into(jobs[0])
        progress.update(1)
    else:
        with get_context(_start_method()).Pool(workers) as pool:
            for f in pool.imap_unordered(_decode_into, jobs):
                failures += f
                progress.update(1)
    progress.close()
    failures.sort()
    # Publish atomically: the failure list first, then the array under its final name.
    bad_tmp = bad_file.with_suffix(f".tmp{os.getpid()}")
    bad_tmp.write_text("".join(f"{i}\t{msg}\n" for i, msg in failures))
    os.replace(tmp, npy)
    os.replace(bad_tmp, bad_file)
    return failures


def _start_method() -> str:
    # fork is fastest where it is safe (Linux); macOS and Windows use spawn.
    return "fork" if os.name == "posix" and os.uname().sysname == "Linux" else "spawn"


def _progress(total, verbose, desc):
    if verbose:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="chunk", leave=False)

    class _Silent:
        def update(self, *_):
            pass

        def close(self):
            pass

    return _Silent()


# --------------------------------------------------------------------------- tensors


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 -> float images in [-1, 1], the range the generators' tanh gives."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 in 0..255 (the inverse of :func:`to_float`)."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def _augment_one(img: torch.Tensor, crop: int | None, flip: bool, g: torch.Generator) -> torch.Tensor:
    if crop is not None and crop < img.shape[-1]:
        top = int(torch.randint(0, img.shape[-2] - crop + 1, (1,), generator=g))
        left = int(torch.randint(0, img.shape[-1] - crop + 1, (1,), generator=g))
        img = img[..., top : top + crop, left : left + crop]
    if flip and bool(torch.rand((), generator=g) < 0.5):
        img = img.flip(-1)
    return img


class FaceDataset(torch.utils.data.Dataset):
    """Faces from a :class:`FaceCache` as float ``(3, H, W)`` tensors in [-1, 1].

    ``labels`` (one integer per face, e.g. an age group) makes items ``(image, label)``.
    ``crop`` takes a random ``crop x crop`` window (the cache is then built a little larger, as
    CycleGAN's resize-then-crop does), and ``flip`` mirrors half of the faces.
    """

    def __init__(self, cache: FaceCache, labels=None, crop: int | None = None, flip: bool = False, seed: int = 0):
        self.images = cache.tensor()
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        self.crop, self.flip = crop, flip
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = to_float(_augment_one(self.images[i], self.crop, self.flip, self.g))
        return img if self.labels is None else (img, self.labels[i])


class UnpairedDataset(torch.utils.data.Dataset):
    """Two domains with no pairing between them, for CycleGAN: item i is ``(a, b)``.

    ``a`` walks through domain A in order (A is usually shuffled by the loader) while ``b`` is a
    random face of domain B, so the model never sees the same A-B pair twice in a row. The length
    is that of the larger domain.
    """

    def __init__(self, a: FaceCache, b: FaceCache, crop: int | None = None, flip: bool = True, seed: int = 0):
        self.a, self.b = a.tensor(), b.tensor()
        self.crop, self.flip = crop, flip
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i):
        a = self.a[i % len(self.a)]
        b = self.b[int(torch.randint(0, len(self.b), (1,), generator=self.g))]
        return (
            to_float(_augment_one(a, self.crop, self.flip, self.g)),
            to_float(_augment_one(b, self.crop, self.flip, self.g)),
        )


class BatchLoader:
    """The fast path: whole batches cut from a uint8 tensor that lives on the training device.

    Instead of a DataLoader that builds every image separately on the CPU, the cache goes to
    the device once (on a GPU when it fits; a T4's 16 GB holds UTKFace at 128 px fifteen times
    over) and each batch is indexed, cropped, flipped and turned into floats there. Iterating
    yields one epoch of float batches in [-1, 1]; with ``labels`` it yields ``(images, labels)``.
    A random crop (``crop``) is cut at one offset per batch, which is cheaper than one per image
    and, over many batches, just as varied.

    ``memory_format=torch.channels_last`` returns batches in the layout that convolutions on
    recent GPUs prefer.

    ``balance=True`` (with ``labels``) draws each epoch's faces with replacement, every label
    equally likely, so that a batch holds about as many faces of a rare group as of a common one.
    """

    def __init__(
        self,
        images,
        batch_size: int,
        labels=None,
        device="cpu",
        crop: int | None = None,
        flip: bool = False,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        memory_format=torch.contiguous_format,
        balance: bool = False,
    ):
        if isinstance(images, FaceCache):
            images = images.tensor()
        self.device = torch.device(device)
        self.images = images.to(self.device).contiguous()  # one copy, laid out for fast gathers
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.device)
        n = len(self.images)
        if n == 0:
            raise ValueError("BatchLoader got no images")
        self.batch_size = min(batch_size, n)
        self.crop, self.flip, self.shuffle, self.drop_last = crop, flip, shuffle, drop_last
        self.memory_format = memory_format
        self.g = torch.Generator(device="cpu").manual_seed(seed)
        self.weights = None
        if balance:
            if self.labels is None:
                raise ValueError("balance=True needs labels")
            lab = self.labels.cpu()
            counts = torch.bincount(lab).float()
            self.weights = (1.0 / counts)[lab]  # each label's faces share one equal part

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def state_dict(self) -> dict:
        """The shuffling state, so that a resumed training draws the same batches."""
        return {"generator": self.g.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.g.set_state(state["generator"])

    def _batch(self, idx: torch.Tensor):
        x = self.images[idx.to(self.device)]
        if self.crop is not None and self.crop < x.shape[-1]:
            top, left = (int(v) for v in torch.randint(0, x.shape[-1] - self.crop + 1, (2,), generator=self.g))
            x = x[..., top : top + self.crop, left : left + self.crop]
        if self.flip:  # mirror a random half, while the pixels are still cheap uint8
            mirror = (torch.rand(len(x), generator=self.g) < 0.5).to(self.device)
            x[mirror] = x[mirror].flip(-1)
        x = to_float(x.contiguous(memory_format=self.memory_format))
        return x if self.labels is None else (x, self.labels[idx.to(self.device)])

    def __iter__(self):
        n = len(self.images)
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=self.g)
        else:
            order = torch.randperm(n, generator=self.g) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            yield self._batch(order[b * self.batch_size : (b + 1) * self.batch_size])
