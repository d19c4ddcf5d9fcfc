"""Real face datasets, each turned into the same small table.

The course trains on faces labelled with an age. Four sources give such faces; every loader
here returns one pandas DataFrame with the same columns, in this order:

========  =========  ==========================================================
column    dtype      meaning
========  =========  ==========================================================
path      str        absolute path of the image file
age       int        age in years
gender    Int64      0 male, 1 female, <NA> unknown
race      Int64      0 White, 1 Black, 2 Asian, 3 Indian, 4 Others, <NA> unknown
source    str        "utkface", "facial-age", "imdb-wiki" (or "toy")
========  =========  ==========================================================

and a :class:`LoadReport` at ``df.attrs["report"]`` that says how many files were seen, how many
became rows, and which were skipped and why. Broken files and names are never a crash: they are
skipped and listed in the report. Pass ``verbose=True`` to print ``report.summary()``.

The sources
-----------
**Toy faces** (``"toy"``) are drawn by :mod:`helpers.toyfaces` on the spot, offline, with no
account. Every notebook runs on them; the real datasets below are optional.

**UTKFace** (``"utkface"``; Kaggle dataset ``jangedoo/utkface-new``) has about 23,700 aligned and
cropped faces aged 1 to 116. The labels are in the file name,
``age_gender_race_yyyymmddHHMMSSFFF.jpg.chip.jpg``: gender 0 male / 1 female, race 0-4 as in the
table above, and the date and time the photo was collected. A handful of names are broken (two
lack the race field, one has a 16-digit timestamp); they are skipped and reported. The Kaggle zip,
and the folder kagglehub extracts it to, hold every image more than once (``UTKFace/``,
``crop_part1/`` (a subset of the same names) and copies of both under
``utkface_aligned_cropped/``), so images are deduplicated by file name, preferring the top-level
``UTKFace/`` copy, and the report counts the extra copies as duplicates. Licence: the UTKFace
authors allow non-commercial research use only; the images belong to their copyright holders.

**facial-age** (``"facial-age"``; Kaggle dataset ``frabbisw/facial-age``) is about 9,800 PNG faces
sorted into folders by age: ``face_age/<zero-padded age>/<n>.png``. The age is the folder name;
gender and race are unknown (<NA>). Check the dataset page for its licence; treat it as
non-commercial research data like the others.

**IMDB-WIKI, wiki part** (``"imdb-wiki"``; ``wiki_crop.tar`` from the IMDB-WIKI project page at ETH
Zurich, not on Kaggle) is about 62,000 Wikipedia photos in folders ``00`` to ``99`` plus
``wiki.mat``, a MATLAB struct with each photo's date of birth (a Matlab serial date number), the
year it was taken, gender (1 male, 0 female, NaN unknown; flipped here to our 0 male / 1 female)
and a face-detector score (-inf when no face was found, a second score when there are two faces).
The age is not exact: the year the photo was taken is known, not its date. We take the photo as
taken on 1 July of that year, the usual practice with this dataset: ``age = photo_taken -
birth_year``, one less for people born in July or later. Photos with a weak face score
(``min_face_score``), with a second face, with an age outside 0-100, or whose file is missing are
dropped, and the report counts each filter. Race is unknown. Licence: for non-commercial research
purposes only.

Getting the files
-----------------
``load_*(path)`` reads a folder or an archive you already have; archives are unpacked with
:func:`safe_extract`, which refuses any entry that would land outside the destination folder.
``get_*()`` takes, in this order: the ``path`` you give (a folder, or a zip downloaded by hand);
what is already on disk, under ``DATA_DIR/<source>`` (an extracted folder or a zip there) or,
for the Kaggle datasets, in kagglehub's cache (``~/.cache/kagglehub/datasets/<owner>/<name>/``,
or under ``$KAGGLEHUB_CACHE``); then a download with ``kagglehub.dataset_download(slug)``, which
needs no token for these public datasets and reads Colab's secrets itself; then, when kagglehub
fails (no connection, not installed) and Kaggle credentials exist (see
:func:`find_kaggle_credentials`), a download of the zip with the Kaggle API. When all of that
fails it raises :class:`DownloadFailed` (a :class:`MissingCredentials`), whose message lists
each try and what to do: connect, or download the zip by hand and pass its path (or set
``FACEAGING_SOURCE_PATH``), or make a token. :func:`load_faces` is the one entry point the
notebooks call; its ``"auto"`` source never goes online to decide (see :func:`choose_source`).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from helpers import config

#: The names :func:`load_faces` understands.
SOURCES: tuple[str, ...] = ("toy", "utkface", "facial-age", "imdb-wiki")
#: The columns of every table, in order.
COLUMNS: tuple[str, ...] = ("path", "age", "gender", "race", "source")

UTKFACE_SLUG = "jangedoo/utkface-new"
FACIAL_AGE_SLUG = "frabbisw/facial-age"
IMDB_WIKI_URL = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/"

#: File endings counted as images when a folder is scanned (compared in lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# ----------------------------------------------------------------------------------------------
# Errors and the load report
# ----------------------------------------------------------------------------------------------


class MalformedName(ValueError):
    """A UTKFace file name that does not follow ``age_gender_race_timestamp.jpg.chip.jpg``."""


class UnsafeArchive(ValueError):
    """An archive entry that would be written outside the destination folder."""


class MissingCredentials(RuntimeError):
    """No Kaggle credentials (or rejected ones), so the Kaggle API cannot download a dataset."""


class DownloadFailed(MissingCredentials):
    """Every way of fetching a Kaggle dataset failed (kagglehub, then the Kaggle API).

    The message lists what each try hit and what to do. A subclass of :class:`MissingCredentials`,
    so code that catches that (the notebooks, the train commands) catches this too.
    """


class DatasetNotFound(FileNotFoundError):
    """A dataset that is neither at the given path nor under ``DATA_DIR``."""


#: The errors a student can fix: each message says what is wrong and what to do. A notebook
#: catches these, prints the message and carries on with the toy faces.
#: (``DownloadFailed`` is a ``MissingCredentials``.)
DATA_ERRORS: tuple[type[Exception], ...] = (MissingCredentials, DatasetNotFound, UnsafeArchive)


@dataclass
class LoadReport:
    """What a loader saw and what it kept.

    ``found == kept + duplicates + len(malformed) + len(unreadable) + filtered`` right after
    loading. ``malformed`` and ``unreadable`` list file names (paths relative to the dataset
    folder where names repeat, as in facial-age). ``filter_counts`` breaks ``filtered`` down by
    filter (``"face score"``, ``"age range"``, ``"max_images"`` ...).
    """

    source: str
    found: int = 0  # image files seen
    kept: int = 0  # rows in the table
    duplicates: int = 0  # same image seen twice (UTKFace's duplicate folders)
    malformed: list[str] = field(default_factory=list)  # names that could not be parsed
    unreadable: list[str] = field(default_factory=list)  # empty files / not images
    filtered: int = 0  # rows dropped by a filter
    filter_counts: dict[str, int] = field(default_factory=dict)

    def add_filtered(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rows dropped by the filter called ``reason``."""
        if n:
            self.filtered += n
            self.filter_counts[reason] = self.filter_counts.get(reason, 0) + n

    def summary(self) -> str:
        """One line for a student, e.g. ``utkface: 7,393 files, 7,390 kept; 3 malformed ...``."""
        parts = [f"{self.source}: {self.found:,} files, {self.kept:,} kept"]
        if self.duplicates:
            parts.append(f"{self.duplicates:,} duplicate copies dropped")
        if self.filtered:
            detail = ", ".join(f"{k} {v:,}" for k, v in self.filter_counts.items())
            parts.append(f"{self.filtered:,} filtered ({detail})")
        parts.append(f"{len(self.malformed):,} malformed names skipped{_examples(self.malformed)}")
        parts.append(f"{len(self.unreadable):,} unreadable{_examples(self.unreadable)}")
        return "; ".join(parts)


def _examples(names: list[str], n: int = 3) -> str:
    if not names:
        return ""
    return " (" + ", ".join(names[:n]) + (", ..." if len(names) > n else "") + ")"


# ----------------------------------------------------------------------------------------------
# Small shared pieces
# ----------------------------------------------------------------------------------------------


def is_readable_image(path: str | os.PathLike) -> bool:
    """Cheap check that ``path`` is an image: not empty, and PIL can read its header.

    ``Image.open`` is lazy: it reads the first bytes to learn the format and size and decodes no
    pixels, so this takes well under a millisecond per file. A truncated file can still pass;
    the uint8 cache decodes every image fully and reports those.
    """
    try:
        if os.path.getsize(path) == 0:
            return False
        with Image.open(path):
            return True
    except Exception:  # not an image, unreadable, a decompression bomb ...: skip, never crash
        return False


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("._")


def _walk_images(root: Path) -> list[tuple[str, str]]:
    """Every image under ``root`` as (path relative to root, absolute path), in sorted order.

    Hidden folders, macOS's ``__MACOSX`` folders and its ``._name`` resource files are skipped.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(files):
            if _is_image_name(name):
                full = os.path.join(folder, name)
                found.append((os.path.relpath(full, root), full))
    return found


def _table(rows: list[tuple], report: LoadReport, max_images: int | None, seed: int) -> pd.DataFrame:
    """Build the standard table from (path, age, gender, race) rows and attach the report.

    ``max_images`` keeps a random subset (the same for the same ``seed``), in the original order.
    """
    if max_images is not None and len(rows) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_images, replace=False))
        report.add_filtered("max_images", len(rows) - max_images)
        rows = [rows[i] for i in keep]
    df = pd.DataFrame(
        {
            "path": pd.Series([r[0] for r in rows], dtype=str),
            "age": pd.Series([r[1] for r in rows], dtype="int64"),
            "gender": pd.array([r[2] for r in rows], dtype="Int64"),
            "race": pd.array([r[3] for r in rows], dtype="Int64"),
            "source": pd.Series([report.source] * len(rows), dtype=str),
        },
        columns=list(COLUMNS),
    )
    report.kept = len(df)
    df.attrs["report"] = report
    return df


def _finish(df: pd.DataFrame, verbose: bool) -> pd.DataFrame:
    if verbose:
        print(df.attrs["report"].summary())
    return df


def _is_archive(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFound(f"{path} does not exist")
    return path


# ----------------------------------------------------------------------------------------------
# Safe extraction
# ----------------------------------------------------------------------------------------------


def _check_inside(entry: str, target: Path, dest: Path) -> None:
    """Raise UnsafeArchive unless ``target`` resolves to ``dest`` or a path inside it."""
    if not target.resolve().is_relative_to(dest):
        raise UnsafeArchive(f"archive entry {entry!r} would be written outside {dest}; nothing extracted")


def _check_entry_name(name: str, dest: Path) -> None:
    """Refuse absolute names (POSIX or Windows) and names with ``..`` in them."""
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.is_absolute() or windows.drive:
        raise UnsafeArchive(f"archive entry {name!r} is an absolute path; nothing extracted")
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchive(f"archive entry {name!r} climbs out with '..'; nothing extracted")
    _check_inside(name, dest / name, dest)


def _check_tar_member(member: tarfile.TarInfo, dest: Path) -> None:
    _check_entry_name(member.name, dest)
    if member.issym() or member.islnk():
        link = member.linkname
        if PurePosixPath(link).is_absolute():
            raise UnsafeArchive(f"archive entry {member.name!r} links to absolute {link!r}; nothing extracted")
        # A symlink's target is relative to the link's folder; a hard link's to the archive root.
        target = (dest / member.name).parent / link if member.issym() else dest / link
        _check_inside(f"{member.name} -> {link}", target, dest)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"archive entry {member.name!r} is a device or special file; nothing extracted")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, verbose: bool = False) -> Path:
    """Unpack a .zip, .tar or .tar.gz into ``dest`` and return ``dest``.

    Every entry is checked before anything is written: an absolute path, a ``..``, a tar link
    that points outside ``dest``, or a tar device file raises :class:`UnsafeArchive` and nothing
    at all is extracted. A marker file in ``dest`` records a finished extraction, so a second call
    returns at once; an extraction that was interrupted (no marker) is simply done again.
    """
    archive = Path(archive).expanduser()
    dest = Path(dest).expanduser()
    marker = dest / f".{archive.name}.extracted"
    stamp = f"{archive.name} {archive.stat().st_size}"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    root = dest.resolve()
    if verbose:
        print(f"extracting {archive.name} into {dest} (once) ...")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            for entry in entries:  # check every entry before writing anything
                _check_entry_name(entry.filename, root)
            root.mkdir(parents=True, exist_ok=True)
            zf.extractall(root, members=entries)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _check_tar_member(member, root)
            root.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python 3.12+ and recent 3.10/3.11: a second guard
                tf.extractall(root, members=members, filter="data")
            else:
                tf.extractall(root, members=members)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    marker.write_text(stamp)
    return dest


def _unpack_if_archive(path: Path, extract_to: str | os.PathLike | None, name: str, verbose: bool) -> Path:
    """A folder is returned as is; an archive is extracted (to ``DATA_DIR/name`` by default)."""
    if _is_archive(path):
        return safe_extract(path, Path(extract_to) if extract_to else config.DATA_DIR / name, verbose=verbose)
    if not path.is_dir():
        raise DatasetNotFound(f"{path} is neither a folder nor a .zip / .tar archive")
    return path


def _load_given(loader, path, base: Path, data_dir, verbose: bool, max_images, **kw) -> pd.DataFrame:
    """Load a folder or archive the caller named; an archive goes under ``data_dir/<source>`` when given."""
    if data_dir is not None:
        kw.setdefault("extract_to", base)
    return loader(path, verbose=verbose, max_images=max_images, **kw)


# ----------------------------------------------------------------------------------------------
# UTKFace
# ----------------------------------------------------------------------------------------------


class UTKName(NamedTuple):
    """The labels in a UTKFace file name."""

    age: int
    gender: int  # 0 male, 1 female
    race: int  # 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others
    timestamp: str  # yyyymmddHHMMSSFFF, kept as text: it is an identifier, not a number


#: Accepted endings. The Kaggle copy uses ``.jpg.chip.jpg``; some copies of the aligned faces
#: drop the ``.chip.jpg`` part, so a plain ``.jpg`` is accepted too. Anything else is malformed.
UTKFACE_SUFFIXES = (".jpg.chip.jpg", ".jpg")


def parse_utkface_name(name: str) -> UTKName:
    """Read age, gender, race and timestamp from a UTKFace file name (a path is fine too).

    ``"26_1_3_20170119181450627.jpg.chip.jpg"`` gives ``UTKName(26, 1, 3, "20170119181450627")``.
    Raises :class:`MalformedName`, saying why, for a wrong ending, a missing or extra field, a
    field that is not a number, a timestamp that is not 17 digits, gender not 0/1, race not 0-4,
    or an age outside 0-120.
    """
    base = PurePosixPath(str(name).replace("\\", "/")).name
    suffix = next((s for s in UTKFACE_SUFFIXES if base.lower().endswith(s)), None)
    if suffix is None:
        raise MalformedName(f"{base!r}: the name does not end in .jpg.chip.jpg or .jpg")
    fields = base[: -len(suffix)].split("_")
    if len(fields) != 4:
        raise MalformedName(
            f"{base!r}: {len(fields)} fields instead of 4 (age_gender_race_timestamp); "
            + ("one is missing" if len(fields) < 4 else "there are extra ones")
        )
    for label, value in zip(("age", "gender", "race", "timestamp"), fields):
        if not (value.isascii() and value.isdigit()):
            raise MalformedName(f"{base!r}: {label} {value!r} is not a whole number")
    age, gender, race, timestamp = int(fields[0]), int(fields[1]), int(fields[2]), fields[3]
    if len(timestamp) != 17:
        raise MalformedName(f"{base!r}: timestamp {timestamp!r} has {len(timestamp)} digits, not 17")
    if gender not in (0, 1):
        raise MalformedName(f"{base!r}: gender {gender} is not 0 (male) or 1 (female)")
    if not 0 <= race <= 4:
        raise MalformedName(f"{base!r}: race {race} is not in 0-4")
    if not 0 <= age <= 120:
        raise MalformedName(f"{base!r}: age {age} is not in 0-120")
    return UTKName(age, gender, race, timestamp)


def _utkface_preference(rel: str) -> tuple:
    """Sort key for copies of one image: the top-level UTKFace/ copy first, the aligned copies last."""
    folders = [p.lower() for p in PurePosixPath(rel.replace(os.sep, "/")).parts[:-1]]
    return ("utkface_aligned_cropped" in folders, not (folders and folders[-1] == "utkface"), len(folders), rel)


def load_utkface(
    path: str | os.PathLike,
    verbose: bool = False,
    max_images: int | None = None,
    *,
    extract_to: str | os.PathLike | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Load UTKFace from a folder or from the Kaggle zip.

    ``path`` is the extracted zip's root, a ``UTKFace/`` folder itself, any flat folder of
    UTKFace JPEGs, or a ``.zip`` / ``.tar`` archive, which is first extracted safely to
    ``extract_to`` (default ``DATA_DIR/utkface``). Every image under the folder is read once: copies
    with the same file name count as duplicates, and the top-level ``UTKFace/`` copy wins (the next
    readable copy when it is broken). Rows are sorted by file name; ``max_images`` keeps a random
    subset chosen with ``seed``.
    """
    root = _unpack_if_archive(_existing(path), extract_to, "utkface", verbose).resolve()
    report = LoadReport("utkface")
    copies: dict[str, list[tuple[str, str]]] = {}
    for rel, full in _walk_images(root):
        copies.setdefault(os.path.basename(rel), []).append((rel, full))
        report.found += 1
    if not copies:
        raise DatasetNotFound(f"no images found under {root}")

    rows = []
    for name in sorted(copies):
        group = sorted(copies[name], key=lambda c: _utkface_preference(c[0]))
        report.duplicates += len(group) - 1
        try:
            label = parse_utkface_name(name)
        except MalformedName:
            report.malformed.append(name)
            continue
        full = next((f for _, f in group if is_readable_image(f)), None)
        if full is None:
            report.unreadable.append(name)
            continue
        rows.append((full, label.age, label.gender, label.race))
    return _finish(_table(rows, report, max_images, seed), verbose)


def get_utkface(
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    max_images: int | None = None,
    **kw,
) -> pd.DataFrame:
    """UTKFace from ``path``, else from disk, else downloaded: kagglehub first, then the Kaggle API.

    On disk means ``data_dir/utkface`` (default ``DATA_DIR/utkface``: a zip or its images) or
    kagglehub's cache. The download needs no token (kagglehub); the Kaggle API is the fallback
    when kagglehub fails and credentials exist. When nothing works it raises
    :class:`DownloadFailed`, whose message says what each try hit and what to do (connect, or
    download the zip by hand and pass its path). The full order is in :func:`_get_kaggle`.
    """
    return _get_kaggle(UTKFACE_SLUG, "utkface", load_utkface, path, data_dir, verbose, max_images, **kw)


# ----------------------------------------------------------------------------------------------
# facial-age
# ----------------------------------------------------------------------------------------------


def _has_age_folders(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() and p.name.isdigit() for p in folder.iterdir())


def _find_face_age_root(path: Path) -> Path:
    """The folder whose sub-folders are ages: ``path`` itself or a ``face_age`` one or two levels down."""
    candidates = [path]
    for pattern in ("face_age", "*/face_age", "*/*/face_age"):
        candidates += sorted(path.glob(pattern))
    for folder in candidates:
        if _has_age_folders(folder):
            return folder
    raise DatasetNotFound(f"no face_age/<age>/ folders found in {path}")


def load_facial_age(
    path: str | os.PathLike,
    verbose: bool = False,
    max_images: int | None = None,
    *,
    extract_to: str | os.PathLike | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Load the facial-age dataset (``face_age/<zero-padded age>/<n>.png``) from a folder or zip.

    The age is the folder name; gender and race are <NA>. Images in folders whose name is not an
    age (0-120) are listed as malformed. An archive is extracted to ``extract_to`` (default
    ``DATA_DIR/facial-age``). Rows are sorted by age, then file name.
    """
    base = _unpack_if_archive(_existing(path), extract_to, "facial-age", verbose).resolve()
    root = _find_face_age_root(base)
    report = LoadReport("facial-age")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _walk_images(folder)
        report.found += len(images)
        age = int(folder.name) if folder.name.isdigit() else -1
        for rel, full in images:
            shown = f"{folder.name}/{rel}"
            if not 0 <= age <= 120:
                report.malformed.append(shown)
            elif not is_readable_image(full):
                report.unreadable.append(shown)
            else:
                rows.append((full, age, pd.NA, pd.NA))
    rows.sort(key=lambda r: (r[1], os.path.basename(r[0])))
    return _finish(_table(rows, report, max_images, seed), verbose)


def get_facial_age(
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    max_images: int | None = None,
    **kw,
) -> pd.DataFrame:
    """facial-age from ``path``, else from disk, else from Kaggle: the same order as :func:`get_utkface`."""
    return _get_kaggle(FACIAL_AGE_SLUG, "facial-age", load_facial_age, path, data_dir, verbose, max_images, **kw)


# ----------------------------------------------------------------------------------------------
# IMDB-WIKI (wiki part)
# ----------------------------------------------------------------------------------------------


def matlab_datenum_to_date(datenum: float) -> date:
    """A Matlab serial date number (days since the year 0) as a Python date."""
    return date.fromordinal(int(datenum)) - timedelta(days=366)


def age_at_photo(dob_datenum: float, photo_taken: int) -> int:
    """Age in the photo, taking the photo as shot on 1 July of ``photo_taken``.

    Only the year of the photo is known, so: ``photo_taken - birth_year``, one less when the
    birthday falls in July or later (the person had not had it yet by mid-year).
    """
    born = matlab_datenum_to_date(dob_datenum)
    return int(photo_taken) - born.year - (1 if born.month >= 7 else 0)


def _find_mat(path: Path) -> Path:
    if path.is_file() and path.suffix == ".mat":
        return path
    for pattern in ("wiki.mat", "*/wiki.mat", "*/*/wiki.mat", "imdb.mat", "*/imdb.mat", "*/*/imdb.mat"):
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    raise DatasetNotFound(f"no wiki.mat found in {path} (expected wiki_crop/wiki.mat)")


def _mat_text(value) -> str:
    return str(value.item() if isinstance(value, np.ndarray) and value.size == 1 else value)


def load_imdb_wiki(
    path: str | os.PathLike,
    verbose: bool = False,
    max_images: int | None = None,
    *,
    min_face_score: float | None = 1.0,
    drop_second_face: bool = True,
    age_range: tuple[int, int] = (0, 100),
    extract_to: str | os.PathLike | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Load the wiki part of IMDB-WIKI from ``wiki_crop.tar``, its extracted folder, or ``wiki.mat``.

    Labels come from ``wiki.mat`` (read with ``scipy.io.loadmat``). Rows are dropped, in this
    order and counted per filter in the report, when the face score is below ``min_face_score``
    (-inf: no face found; None keeps all), when a second face was found, when the age is outside
    ``age_range`` (inclusive), or when the image file is missing. A date of birth that is not a
    valid date makes the row malformed. The larger IMDb part (``imdb.mat``) has the same fields
    and loads the same way. An archive is extracted to ``extract_to`` (default
    ``DATA_DIR/imdb-wiki``). Rows are sorted by path.
    """
    from scipy.io import loadmat  # scipy is slow to import; only this loader needs it

    path = _existing(path)
    if path.suffix != ".mat":  # a folder or wiki_crop.tar
        path = _unpack_if_archive(path, extract_to, "imdb-wiki", verbose)
    mat_path = _find_mat(path.resolve())
    mat = loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    key = "wiki" if "wiki" in mat else "imdb"
    meta = mat[key]
    fields = ("dob", "photo_taken", "full_path", "gender", "face_score", "second_face_score")
    column = {f: np.atleast_1d(getattr(meta, f)) for f in fields}  # 1 x N in MATLAB, N here

    report = LoadReport("imdb-wiki", found=len(column["full_path"]))
    lo, hi = age_range
    rows = []
    for i in range(report.found):
        rel = _mat_text(column["full_path"][i])
        score = float(column["face_score"][i])
        if min_face_score is not None and not score >= min_face_score:  # also catches NaN
            report.add_filtered("face score")
            continue
        if drop_second_face and not np.isnan(float(column["second_face_score"][i])):
            report.add_filtered("second face")
            continue
        try:
            age = age_at_photo(float(column["dob"][i]), int(column["photo_taken"][i]))
        except (ValueError, OverflowError):  # NaN or out-of-range date number
            report.malformed.append(rel)
            continue
        if not lo <= age <= hi:
            report.add_filtered("age range")
            continue
        full = mat_path.parent / rel
        if not full.is_file():
            report.add_filtered("missing file")
            continue
        if not is_readable_image(full):
            report.unreadable.append(rel)
            continue
        g = float(column["gender"][i])
        gender = pd.NA if np.isnan(g) else 1 - int(g)  # wiki.mat: 1 male, 0 female -> ours: 0 male, 1 female
        rows.append((str(full), age, gender, pd.NA))
    rows.sort(key=lambda r: r[0])
    return _finish(_table(rows, report, max_images, seed), verbose)


def _imdb_wiki_help(base: Path) -> str:
    return (
        f"IMDB-WIKI was not found in {base}. It is not on Kaggle: download it yourself.\n"
        f"  1. Open the IMDB-WIKI project page at ETH Zurich, {IMDB_WIKI_URL}\n"
        "     and download 'wiki_crop.tar' (the 'faces only' version of the Wikipedia part, about 800 MB).\n"
        f"  2. Put it at {base / 'wiki_crop.tar'} (it is extracted there on first use),\n"
        "     or call load_faces('imdb-wiki', path='path/to/wiki_crop.tar' or its extracted folder).\n"
        "The dataset is for non-commercial research only. The toy faces, load_faces('toy'), need no download."
    )


def get_imdb_wiki(
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    max_images: int | None = None,
    **kw,
) -> pd.DataFrame:
    """IMDB-WIKI (wiki part) from ``path``, else from ``data_dir/imdb-wiki``.

    It cannot be downloaded automatically; :class:`DatasetNotFound` says where to get it.
    """
    base = Path(data_dir or config.DATA_DIR).expanduser() / "imdb-wiki"
    if path is not None:
        return _load_given(load_imdb_wiki, path, base, data_dir, verbose, max_images, **kw)
    if base.is_dir():
        for archive in sorted(p for p in base.iterdir() if _is_archive(p)):
            safe_extract(archive, base, verbose=verbose)
        try:
            mat = _find_mat(base)
        except DatasetNotFound:
            pass
        else:
            return load_imdb_wiki(mat, verbose=verbose, max_images=max_images, **kw)
    raise DatasetNotFound(_imdb_wiki_help(base))


# ----------------------------------------------------------------------------------------------
# Kaggle: kagglehub, credentials, the Kaggle API, and the get-logic shared by UTKFace and facial-age
# ----------------------------------------------------------------------------------------------

#: The source name of each Kaggle dataset, for messages.
_KAGGLE_NAMES = {UTKFACE_SLUG: "utkface", FACIAL_AGE_SLUG: "facial-age"}


def kagglehub_cache_dir() -> Path:
    """kagglehub's cache folder: ``$KAGGLEHUB_CACHE``, else ``~/.cache/kagglehub`` (as kagglehub decides it)."""
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub").expanduser()


def find_kagglehub_copy(slug: str) -> Path | None:
    """The newest complete copy of Kaggle dataset ``slug`` in kagglehub's cache, or None. Disk only.

    kagglehub keeps dataset ``owner/name`` version N in ``<cache>/datasets/owner/name/versions/N/``
    and writes ``<cache>/datasets/owner/name/N.complete`` once it is fully extracted; a version
    without that marker (an interrupted download) is ignored. This reads the folder itself
    because ``kagglehub.dataset_download`` asks Kaggle for the latest version number first, so it
    fails offline even when the data is already on disk.
    """
    owner, name = slug.split("/")[:2]
    root = kagglehub_cache_dir() / "datasets" / owner / name
    versions = root / "versions"
    if not versions.is_dir():
        return None
    numbered = sorted((p for p in versions.iterdir() if p.is_dir() and p.name.isdigit()),
                      key=lambda p: int(p.name), reverse=True)
    for folder in numbered:
        if (root / f"{folder.name}.complete").is_file():
            return folder
    return None


def _kaggle_config_dir() -> Path:
    """Where the kaggle package looks for kaggle.json: KAGGLE_CONFIG_DIR, ~/.kaggle, or ~/.config/kaggle."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()
    home = Path("~/.kaggle").expanduser()
    if home.exists() or not sys.platform.startswith("linux"):
        return home
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path("~/.config").expanduser()) / "kaggle"


def _in_colab() -> bool:
    """True inside a Google Colab notebook (its kernel imports google.colab at start)."""
    return "google.colab" in sys.modules


def _colab_secrets() -> tuple[str, str] | None:
    """KAGGLE_USERNAME and KAGGLE_KEY from Colab's secrets, when running in Colab and both exist."""
    try:
        from google.colab import userdata  # only exists inside Colab
    except ImportError:
        return None
    try:
        username, key = userdata.get("KAGGLE_USERNAME"), userdata.get("KAGGLE_KEY")
    except Exception:  # secret missing, or the notebook was not given access
        return None
    return (username, key) if username and key else None


def _valid_kaggle_json(path: Path) -> bool:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and bool(values.get("username")) and bool(values.get("key"))


def find_kaggle_credentials() -> str | None:
    """Where Kaggle credentials are, in words, or None when there are none. Reads, never prints.

    Looked for in this order: the environment (``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, or
    ``KAGGLE_API_TOKEN``), ``kaggle.json`` in the Kaggle config folder (``KAGGLE_CONFIG_DIR``,
    else ``~/.kaggle``), ``~/.kaggle/access_token``, ``~/.kaggle/credentials.json`` (from
    ``kaggle auth login``), and, in Colab, the secrets ``KAGGLE_USERNAME`` and ``KAGGLE_KEY``.
    """
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "environment variables KAGGLE_USERNAME and KAGGLE_KEY"
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "environment variable KAGGLE_API_TOKEN"
    kaggle_json = _kaggle_config_dir() / "kaggle.json"
    if _valid_kaggle_json(kaggle_json):
        return str(kaggle_json)
    for name in ("access_token", "access_token.txt", "credentials.json"):
        token = Path("~/.kaggle").expanduser() / name
        if token.is_file() and token.stat().st_size > 0:
            return str(token)
    if _colab_secrets() is not None:
        return "Colab secrets KAGGLE_USERNAME and KAGGLE_KEY"
    return None


def _where_credentials_are_looked_for() -> str:
    return ("the environment variables KAGGLE_USERNAME + KAGGLE_KEY and KAGGLE_API_TOKEN, "
            f"{_kaggle_config_dir() / 'kaggle.json'}, ~/.kaggle/access_token, and Colab secrets")


def _what_to_do(slug: str, dest: Path) -> str:
    """The ways out when a Kaggle dataset cannot be fetched, for every download error message."""
    name = _KAGGLE_NAMES.get(slug, slug)
    return (
        "Any one of these fixes it:\n"
        "  1. Connect to the internet and run this again: kagglehub downloads public Kaggle datasets\n"
        "     without an account or token (pip install kagglehub if it is missing).\n"
        f"  2. Use a zip downloaded by hand: download it from https://www.kaggle.com/datasets/{slug}\n"
        "     (the Download button; sign in if Kaggle asks), then\n"
        f"     call load_faces({name!r}, path='path/to/archive.zip'), or, for the notebooks and commands,\n"
        f"     set FACEAGING_SOURCE={name} and FACEAGING_SOURCE_PATH=path/to/archive.zip,\n"
        f"     or put the zip at {dest / 'archive.zip'} and run this again.\n"
        "  3. Make a Kaggle API token (tried when kagglehub fails): on kaggle.com open Settings -> API ->\n"
        "     Create New Token. Save the kaggle.json it gives you as ~/.kaggle/kaggle.json and run:\n"
        "     chmod 600 ~/.kaggle/kaggle.json\n"
        "     Or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY (the two values in that file).\n"
        "     On Colab: add KAGGLE_USERNAME and KAGGLE_KEY as secrets (the key icon on the left) and let\n"
        "     this notebook access them.\n"
        "  4. Skip real data: the toy faces, load_faces('toy'), are built in and need no account,\n"
        "     credentials or download."
    )


def _missing_credentials_message(slug: str, dest: Path) -> str:
    name = _KAGGLE_NAMES.get(slug, slug)
    return (
        f"No Kaggle credentials found, so the Kaggle API cannot download the {name} dataset ({slug}).\n"
        f"Looked in: {_where_credentials_are_looked_for()}.\n" + _what_to_do(slug, dest)
    )


def _kaggle_api(slug: str, dest: Path):
    """An authenticated KaggleApi. Checks credentials before the kaggle package is imported.

    Importing ``kaggle`` authenticates at once and, with no credentials, prints a long help text;
    so we raise :class:`MissingCredentials` first, and silence the import when credentials exist.
    """
    where = find_kaggle_credentials()
    if where is None:
        raise MissingCredentials(_missing_credentials_message(slug, dest))
    if where.startswith("Colab"):
        username, key = _colab_secrets()
        os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = username, key
    said = io.StringIO()
    try:
        with redirect_stdout(said), redirect_stderr(said):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:  # kaggle calls exit(1) when it rejects the credentials
        raise MissingCredentials(
            f"Kaggle credentials were found ({where}) but Kaggle did not accept them:\n{said.getvalue()}\n"
            + _what_to_do(slug, dest)
        ) from None
    return api


def download_kaggle_dataset(slug: str, dest: str | os.PathLike, quiet: bool = False) -> Path:
    """Download Kaggle dataset ``slug`` ("owner/name") with the Kaggle API as ``dest/<name>.zip``.

    Needs Kaggle credentials (:class:`MissingCredentials` otherwise). Nothing is unzipped (see
    :func:`safe_extract`). A complete zip already there is reused. Returns the zip's path.
    """
    dest = Path(dest).expanduser()
    zip_path = dest / f"{slug.split('/')[-1]}.zip"
    if zipfile.is_zipfile(zip_path):  # false for a missing or half-downloaded file
        return zip_path
    api = _kaggle_api(slug, dest)
    dest.mkdir(parents=True, exist_ok=True)
    api.dataset_download_files(slug, path=str(dest), quiet=quiet, unzip=False)
    return zip_path


def kagglehub_download(slug: str) -> Path:
    """Download (or find in its cache) Kaggle dataset ``slug`` with kagglehub; return its folder.

    kagglehub needs no token for a public dataset, reads Colab's secrets itself, downloads the
    zip once into its cache (:func:`kagglehub_cache_dir`) and returns the extracted folder. It
    needs the network even for a cached copy (it asks for the latest version first); any failure
    is raised as it comes (an ``ImportError`` when kagglehub is not installed).
    """
    import kagglehub  # imported here: only a download needs it, and it is slow-ish to import

    folder = Path(kagglehub.dataset_download(slug))
    if not folder.is_dir():
        raise DatasetNotFound(f"kagglehub returned {folder}, which is not a folder")
    return folder


def _why(err: BaseException) -> str:
    """A failed download's cause in one line, e.g. ``no connection to Kaggle (ConnectionError: ...)``."""
    if isinstance(err, ImportError):
        return "kagglehub is not installed (pip install kagglehub)"
    kind = type(err).__name__
    lines = str(err).strip().splitlines()
    text = f"{kind}: {lines[0] if lines else 'no message'}"
    text = text if len(text) <= 200 else text[:197] + "..."
    if isinstance(err, (ConnectionError, TimeoutError)) or "Connection" in kind or "Timeout" in kind:
        host = re.search(r"host='([^']+)'", str(err))  # requests names the host it could not reach
        return f"no connection to Kaggle ({f'{kind}: could not reach {host.group(1)}' if host else text})"
    return text


def _get_kaggle(
    slug: str,
    name: str,
    loader: Callable[..., pd.DataFrame],
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    max_images: int | None = None,
    **kw,
) -> pd.DataFrame:
    """The get-logic for a Kaggle dataset. What is on disk comes first; the network only after.

    1. ``path`` given (a folder, or a zip you downloaded by hand): load it. An archive is
       extracted to ``data_dir/name`` when ``data_dir`` is given, else to the loader's default.
    2. ``data_dir/name`` (default ``DATA_DIR/name``) holds a zip (put there by hand or by an
       earlier Kaggle API download): extract it there once, then load. Or it already holds the
       extracted images: load them.
    3. kagglehub's cache already holds a complete copy (:func:`find_kagglehub_copy`): load it.
    4. Download with kagglehub (no token needed) and load the folder it returns.
    5. kagglehub failed (no connection, not installed ...) and Kaggle credentials exist: download
       the zip with the Kaggle API into ``data_dir/name``, extract, load.
    6. Otherwise raise :class:`DownloadFailed` (a :class:`MissingCredentials`), whose message says
       what each try hit and what to do.
    """
    base = Path(data_dir or config.DATA_DIR).expanduser() / name
    if path is not None:
        return _load_given(loader, path, base, data_dir, verbose, max_images, **kw)
    archives = sorted(p for p in base.glob("*.zip") if zipfile.is_zipfile(p)) if base.is_dir() else []
    if archives or (base.is_dir() and any(_walk_images(base))):
        for archive in archives:
            safe_extract(archive, base, verbose=verbose)
        return loader(base, verbose=verbose, max_images=max_images, **kw)
    cached = find_kagglehub_copy(slug)
    if cached is not None:
        if verbose:
            print(f"{name}: kagglehub's copy in {cached}")
        return loader(cached, verbose=verbose, max_images=max_images, **kw)

    tries = [f"on disk: nothing in {base} or in kagglehub's cache {kagglehub_cache_dir()}"]
    if verbose:
        print(f"{name}: downloading {slug} with kagglehub (no token needed) ...")
    try:
        folder = kagglehub_download(slug)
    except Exception as err:  # no network, not installed, Kaggle refused ...: tried next way, then told
        tries.append(f"kagglehub: {_why(err)}")
        if verbose:
            print(f"{name}: kagglehub could not download it: {_why(err)}")
    else:
        return loader(folder, verbose=verbose, max_images=max_images, **kw)

    where = find_kaggle_credentials()
    if where is None:
        tries.append(f"Kaggle API: no Kaggle credentials (looked in {_where_credentials_are_looked_for()})")
    else:
        if verbose:
            print(f"{name}: trying the Kaggle API with the credentials in {where} ...")
        try:
            archive = download_kaggle_dataset(slug, base, quiet=not verbose)
        except Exception as err:  # rejected credentials, no network ...
            tries.append(f"Kaggle API (credentials in {where}): {_why(err)}")
        else:
            safe_extract(archive, base, verbose=verbose)
            return loader(base, verbose=verbose, max_images=max_images, **kw)
    raise DownloadFailed(
        f"Could not get the {name} dataset ({slug}). Tried:\n"
        + "".join(f"  - {t}\n" for t in tries)
        + _what_to_do(slug, base)
    )


# ----------------------------------------------------------------------------------------------
# The one entry point
# ----------------------------------------------------------------------------------------------


def choose_source(path=None, data_dir=None) -> tuple[str, str]:
    """What ``load_faces("auto")`` uses, and why: UTKFace when it is at hand, else the toy faces.

    UTKFace counts as at hand when

    - ``path`` is given;
    - it is already on disk: ``data_dir/utkface`` (default ``DATA_DIR/utkface``) holds its zip or
      images, or kagglehub's cache holds a complete copy (:func:`find_kagglehub_copy`);
    - Kaggle credentials exist (:func:`find_kaggle_credentials`): whoever made a token wants the
      download;
    - or this is Google Colab, which is online and where kagglehub downloads without a token.

    This only looks at the disk and the environment, never the network. kagglehub needs no
    token, so "auto" could try it anywhere; it does not, so that a laptop with no connection
    and a CI machine get the toy faces at once instead of a failed download. Ask for
    ``load_faces("utkface")`` to download with kagglehub anywhere.
    """
    if path is not None:
        return "utkface", f"given {path}"
    base = Path(data_dir or config.DATA_DIR).expanduser() / "utkface"
    if base.is_dir() and (any(base.glob("*.zip")) or any(base.rglob("*.jpg"))):
        return "utkface", f"found in {base}"
    cached = find_kagglehub_copy(UTKFACE_SLUG)
    if cached is not None:
        return "utkface", f"kagglehub's copy in {cached}"
    where = find_kaggle_credentials()
    if where is not None:
        return "utkface", f"Kaggle credentials in {where}"
    if _in_colab():
        return "utkface", "on Colab, where kagglehub downloads it without a token"
    return "toy", ("no UTKFace on disk, no Kaggle credentials and not on Colab, so no download is tried; "
                   "the built-in toy faces need none of these (load_faces('utkface') downloads it)")


def load_faces(
    source: str = "toy",
    path: str | os.PathLike | None = None,
    verbose: bool = True,
    max_images: int | None = None,
    **kw,
) -> pd.DataFrame:
    """Load a face dataset as the standard table (see the module docstring).

    ``source`` is one of :data:`SOURCES`: ``"toy"`` (built in, offline), ``"utkface"``,
    ``"facial-age"`` or ``"imdb-wiki"``; or ``"auto"``: UTKFace when it is at hand (see
    :func:`choose_source`; it never goes online to find out), the toy faces otherwise, and the
    toy faces too when getting UTKFace then fails. ``path`` points at a folder or an archive you
    already have; without it the data is looked for on disk and, for the Kaggle datasets,
    downloaded (kagglehub, then the Kaggle API: see :func:`get_utkface`). ``max_images`` keeps a
    seeded random subset. Other keywords go to the loader (``data_dir=``, ``seed=``,
    ``min_face_score=`` ...; for "toy", to ``load_toy_faces``).
    """
    key = source.strip().lower().replace("_", "-")
    if key == "auto":
        key, why = choose_source(path, kw.get("data_dir"))
        if verbose:
            print(f"face source: {key} ({why})")
        if key == "utkface":
            try:
                return get_utkface(path=path, verbose=verbose, max_images=max_images, **kw)
            except (MissingCredentials, OSError) as err:  # DownloadFailed, e.g. credentials but no network
                if verbose:
                    print(f"could not get UTKFace ({type(err).__name__}: {str(err).splitlines()[0]}); "
                          "using the toy faces instead")
                key, path = "toy", None
                kw.pop("data_dir", None)
    if key == "toy":
        from helpers.toyfaces import load_toy_faces  # imported here: a separate module

        df = load_toy_faces(path, **kw)
        if max_images is not None and len(df) > max_images:
            keep = np.sort(np.random.default_rng(0).choice(len(df), size=max_images, replace=False))
            df = df.iloc[keep].reset_index(drop=True)
        if verbose:
            report = df.attrs.get("report")
            print(report.summary() if hasattr(report, "summary") else f"toy: {len(df):,} faces")
        return df
    getters = {"utkface": get_utkface, "facial-age": get_facial_age, "imdb-wiki": get_imdb_wiki}
    if key not in getters:
        raise ValueError(f"unknown face source {source!r}; choose one of: {', '.join(SOURCES)}")
    return getters[key](path=path, verbose=verbose, max_images=max_images, **kw)
