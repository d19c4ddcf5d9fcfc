"""Tests for helpers.sources: every loader on tiny datasets built in tmp_path, no network."""

from __future__ import annotations

import io
import json
import sys
import shutil
import tarfile
import zipfile
from datetime import date
from pathlib import Path

import kagglehub
import numpy as np
import pandas as pd
import pytest
import requests
from kagglehub.cache import Cache
from kagglehub.handle import parse_dataset_handle
from PIL import Image

from helpers import sources
from helpers.sources import (
    COLUMNS,
    DATA_ERRORS,
    SOURCES,
    DatasetNotFound,
    DownloadFailed,
    LoadReport,
    MalformedName,
    MissingCredentials,
    UnsafeArchive,
    UTKName,
    find_kaggle_credentials,
    find_kagglehub_copy,
    get_facial_age,
    get_imdb_wiki,
    get_utkface,
    load_facial_age,
    choose_source,
    load_faces,
    load_imdb_wiki,
    load_utkface,
    parse_utkface_name,
    safe_extract,
)

REAL_MALFORMED = [
    "14_0_0_2017011022340900.jpg.chip.jpg",  # 16-digit timestamp
    "61_1_20170109142408075.jpg.chip.jpg",  # no race
    "61_3_20170109150557335.jpg.chip.jpg",  # no race
]


def image_bytes(fmt: str = "JPEG", value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (value, value // 2, 255 - value)).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt))
    return path


def check_table(df: pd.DataFrame, source: str) -> None:
    assert tuple(df.columns) == COLUMNS
    assert str(df["age"].dtype) == "int64"
    assert str(df["gender"].dtype) == "Int64" and str(df["race"].dtype) == "Int64"
    assert (df["source"] == source).all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])
    assert isinstance(df.attrs["report"], LoadReport)


def check_balance(r: LoadReport) -> None:
    assert r.found == r.kept + r.duplicates + len(r.malformed) + len(r.unreadable) + r.filtered


REAL_DATASET_DOWNLOAD = kagglehub.dataset_download


@pytest.fixture(autouse=True)
def offline_kagglehub(tmp_path, monkeypatch) -> list[str]:
    """No test reaches Kaggle: kagglehub's cache is an empty folder in tmp_path, and
    kagglehub.dataset_download fails as it does with no connection. Returns the handles asked for."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub-cache"))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    asked: list[str] = []

    def no_network(handle, *args, **kw):
        asked.append(handle)
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded (Failed to resolve)")

    monkeypatch.setattr(kagglehub, "dataset_download", no_network)
    return asked


def kagglehub_online(monkeypatch, files: dict[str, bytes], version: int = 1) -> list[str]:
    """Let kagglehub.dataset_download "download" ``files`` and return the handles asked for.

    Only the network is faked: the files go where kagglehub's own Cache puts version ``version``,
    marked complete the way kagglehub marks it, and the folder returned is what the real
    kagglehub.dataset_download answers (offline, from its cache) for that version.
    """
    asked: list[str] = []

    def download(handle, *args, **kw):
        asked.append(handle)
        h = parse_dataset_handle(f"{handle}/versions/{version}")
        folder = Path(Cache().get_path(h))
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        Cache().mark_as_complete(h)
        return REAL_DATASET_DOWNLOAD(f"{handle}/versions/{version}")

    monkeypatch.setattr(kagglehub, "dataset_download", download)
    return asked


# ------------------------------------------------------------------------------------------------
# parse_utkface_name
# ------------------------------------------------------------------------------------------------


def test_parse_good_names():
    assert parse_utkface_name("26_1_3_20170119181450627.jpg.chip.jpg") == UTKName(26, 1, 3, "20170119181450627")
    assert parse_utkface_name("1_0_0_20161219140623097.jpg.chip.jpg").age == 1
    assert parse_utkface_name("116_1_4_20170120134921760.jpg") == UTKName(116, 1, 4, "20170120134921760")
    assert parse_utkface_name("/some/folder/UTKFace/0_0_2_20170120134921760.jpg.chip.jpg").age == 0


@pytest.mark.parametrize(
    "name, reason",
    [
        (REAL_MALFORMED[0], "16 digits"),
        (REAL_MALFORMED[1], "3 fields"),
        (REAL_MALFORMED[2], "3 fields"),
        ("26_1_3_4_20170119181450627.jpg.chip.jpg", "5 fields"),
        ("2x_1_3_20170119181450627.jpg.chip.jpg", "age '2x' is not a whole number"),
        ("26_m_3_20170119181450627.jpg.chip.jpg", "gender 'm'"),
        ("26_1__20170119181450627.jpg.chip.jpg", "race ''"),
        ("-1_1_3_20170119181450627.jpg.chip.jpg", "not a whole number"),
        ("26_2_3_20170119181450627.jpg.chip.jpg", "gender 2"),
        ("26_1_5_20170119181450627.jpg.chip.jpg", "race 5"),
        ("121_1_3_20170119181450627.jpg.chip.jpg", "age 121"),
        ("26_1_3_201701191814506270.jpg.chip.jpg", "18 digits"),
        ("26_1_3_20170119181450627.png", "does not end"),
        ("26_1_3_20170119181450627.jpg.chip.png", "does not end"),
        ("26_1_3_20170119181450627", "does not end"),
    ],
)
def test_parse_malformed_names(name, reason):
    with pytest.raises(MalformedName, match=reason):
        parse_utkface_name(name)
    assert issubclass(MalformedName, ValueError)


# ------------------------------------------------------------------------------------------------
# UTKFace from a zip laid out like the Kaggle one
# ------------------------------------------------------------------------------------------------

MAIN = ["20_0_0_20170101000000001.jpg.chip.jpg", "35_1_1_20170101000000002.jpg.chip.jpg",
        "60_0_2_20170101000000003.jpg.chip.jpg", "8_1_3_20170101000000004.jpg.chip.jpg"]
CROP_ONLY = "45_1_4_20170101000000005.jpg.chip.jpg"  # only in crop_part1/
EMPTY = "30_0_0_20170101000000006.jpg.chip.jpg"  # 0 bytes
TEXT = "31_1_0_20170101000000007.jpg.chip.jpg"  # a text file named .jpg
BROKEN_FIRST = "50_1_2_20170101000000008.jpg.chip.jpg"  # empty in UTKFace/, fine in crop_part1/


def utkface_files() -> dict[str, bytes]:
    """The files of jangedoo/utkface-new in miniature: UTKFace/, crop_part1/ (a subset), both copied
    again under utkface_aligned_cropped/, with broken files and a malformed name mixed in."""
    jpg, png = image_bytes(), image_bytes("PNG")
    files: dict[str, bytes] = {}
    top = {**{n: jpg for n in MAIN}, REAL_MALFORMED[1]: jpg, EMPTY: b"", TEXT: b"not an image\n", BROKEN_FIRST: b""}
    crop = {MAIN[0]: jpg, MAIN[1]: jpg, CROP_ONLY: jpg, BROKEN_FIRST: jpg}
    for prefix in ("", "utkface_aligned_cropped/"):
        files.update({f"{prefix}UTKFace/{n}": b for n, b in top.items()})
        files.update({f"{prefix}crop_part1/{n}": b for n, b in crop.items()})
    files["notes.txt"] = b"not an image, not counted"
    files["__MACOSX/UTKFace/._20_0_0_20170101000000001.jpg.chip.jpg"] = png
    return files


#: Image files in utkface_files() (found), and the rows they give (kept): each face once.
UTK_FOUND = 2 * (len(MAIN) + 4) + 2 * 4  # 8 in UTKFace/ + 4 in crop_part1/, twice
UTK_KEPT = sorted(MAIN + [CROP_ONLY, BROKEN_FIRST])


@pytest.fixture
def kaggle_zip(tmp_path) -> Path:
    """A zip shaped like jangedoo/utkface-new, with broken files mixed in."""
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in utkface_files().items():
            zf.writestr(name, data)
    return archive


def test_load_utkface_kaggle_zip(kaggle_zip, tmp_path, capsys):
    df = load_utkface(kaggle_zip, extract_to=tmp_path / "out")
    assert capsys.readouterr().out == ""  # silent unless verbose
    check_table(df, "utkface")
    names = [Path(p).name for p in df["path"]]
    assert names == UTK_KEPT  # each once, sorted by name
    r = df.attrs["report"]
    assert r.found == UTK_FOUND
    assert r.kept == 6
    assert r.malformed == [REAL_MALFORMED[1]]
    assert sorted(r.unreadable) == sorted([EMPTY, TEXT])
    assert r.duplicates == r.found - len(set(names) | {REAL_MALFORMED[1], EMPTY, TEXT})
    check_balance(r)

    # The top-level UTKFace/ copy wins; a broken one gives way to the next readable copy.
    by_name = {Path(p).name: Path(p) for p in df["path"]}
    assert by_name[MAIN[0]].parent == (tmp_path / "out" / "UTKFace").resolve()
    assert by_name[CROP_ONLY].parent == (tmp_path / "out" / "crop_part1").resolve()
    assert by_name[BROKEN_FIRST].parent == (tmp_path / "out" / "crop_part1").resolve()

    row = df[df["path"].str.endswith(MAIN[1])].iloc[0]
    assert (row.age, row.gender, row.race) == (35, 1, 1)
    assert "duplicate" in r.summary() and "1 malformed" in r.summary() and "2 unreadable" in r.summary()


def test_load_utkface_folder_variants_and_max_images(kaggle_zip, tmp_path, capsys):
    out = safe_extract(kaggle_zip, tmp_path / "out")
    whole = load_utkface(out)
    only_top = load_utkface(out / "UTKFace", verbose=True)
    assert "utkface:" in capsys.readouterr().out
    assert only_top.attrs["report"].duplicates == 0
    assert set(Path(p).name for p in only_top["path"]) == set(MAIN)  # BROKEN_FIRST is empty there
    a = load_utkface(out, max_images=3, seed=1)
    b = load_utkface(out, max_images=3, seed=1)
    assert list(a["path"]) == list(b["path"]) and len(a) == 3
    assert list(a["path"]) == sorted(a["path"], key=lambda p: Path(p).name)
    assert set(a["path"]) <= set(whole["path"])
    assert a.attrs["report"].filter_counts == {"max_images": len(whole) - 3}
    check_balance(a.attrs["report"])
    with pytest.raises(DatasetNotFound):
        load_utkface(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------
# safe_extract
# ------------------------------------------------------------------------------------------------


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps the name exactly as given
    return path


@pytest.mark.parametrize("bad", ["../evil.jpg", "UTKFace/../../evil.jpg", "/tmp/evil_absolute.jpg", "C:/evil.jpg"])
def test_safe_extract_refuses_escaping_zip(tmp_path, bad):
    archive = make_zip(tmp_path / "bad.zip", {"UTKFace/ok.jpg": image_bytes(), bad: b"x"})
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(UnsafeArchive, match="evil"):
        safe_extract(archive, dest)
    assert not (tmp_path / "dest").exists()  # nothing extracted at all
    assert not (tmp_path / "dest" / "evil.jpg").exists() and not (tmp_path / "evil.jpg").exists()
    assert not Path("/tmp/evil_absolute.jpg").exists()
    with pytest.raises(UnsafeArchive):
        load_utkface(archive, extract_to=dest)


def add_tar_entry(tf: tarfile.TarFile, name: str, *, data: bytes = b"", kind=tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    tf.addfile(info, io.BytesIO(data) if data else None)


@pytest.mark.parametrize(
    "kind, name, link",
    [
        (tarfile.SYMTYPE, "wiki_crop/escape", "../../outside"),
        (tarfile.SYMTYPE, "wiki_crop/abs", "/etc"),
        (tarfile.LNKTYPE, "wiki_crop/hard", "../outside.txt"),
        (tarfile.CHRTYPE, "wiki_crop/dev", ""),
        (tarfile.REGTYPE, "../evil.jpg", ""),
    ],
)
def test_safe_extract_refuses_escaping_tar(tmp_path, kind, name, link):
    archive = tmp_path / "wiki_crop.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add_tar_entry(tf, "wiki_crop/00/1.jpg", data=image_bytes())
        add_tar_entry(tf, name, kind=kind, link=link)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive):
        safe_extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "outside").exists()


def test_safe_extract_tar_ok_idempotent_and_redone(tmp_path):
    archive = tmp_path / "good.tar"
    with tarfile.open(archive, "w") as tf:
        add_tar_entry(tf, "a/1.jpg", data=image_bytes())
        add_tar_entry(tf, "a/link.jpg", kind=tarfile.SYMTYPE, link="1.jpg")  # inside: allowed
    dest = tmp_path / "dest"
    assert safe_extract(archive, dest) == dest
    assert (dest / "a" / "link.jpg").is_symlink() and (dest / "a" / "1.jpg").is_file()
    (dest / "a" / "1.jpg").unlink()
    safe_extract(archive, dest)  # marker present: instant, nothing redone
    assert not (dest / "a" / "1.jpg").exists()
    next(dest.glob(".*.extracted")).unlink()  # as if interrupted before the marker was written
    safe_extract(archive, dest)
    assert (dest / "a" / "1.jpg").is_file()


# ------------------------------------------------------------------------------------------------
# facial-age
# ------------------------------------------------------------------------------------------------


def test_load_facial_age(tmp_path):
    root = tmp_path / "download" / "face_age"  # an extra top folder, as some copies have
    for age, n in ((1, 2), (25, 3), (90, 1)):
        for i in range(n):
            write_image(root / f"{age:03d}" / f"{i + 1}.png", "PNG")
    write_image(root / "misc" / "7.png", "PNG")  # not an age
    (root / "025" / "9.png").write_bytes(b"")  # empty
    (root / "readme.txt").write_text("ignored")
    df = load_facial_age(tmp_path)
    check_table(df, "facial-age")
    assert df["age"].tolist() == [1, 1, 25, 25, 25, 90]
    assert df["gender"].isna().all() and df["race"].isna().all()
    r = df.attrs["report"]
    assert (r.found, r.kept, r.malformed, r.unreadable) == (8, 6, ["misc/7.png"], ["025/9.png"])
    check_balance(r)

    archive = tmp_path / "facial-age.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in root.rglob("*.png"):
            zf.write(f, f"face_age/{f.relative_to(root)}")
    from_zip = load_facial_age(archive, extract_to=tmp_path / "x")
    assert from_zip["age"].tolist() == df["age"].tolist()


def test_get_facial_age_from_zip_in_data_dir(tmp_path, monkeypatch):
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    src = tmp_path / "src"
    write_image(src / "face_age" / "042" / "1.png", "PNG")
    (tmp_path / "data" / "facial-age").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "data" / "facial-age" / "archive.zip", "w") as zf:
        zf.write(src / "face_age" / "042" / "1.png", "face_age/042/1.png")
    df = get_facial_age(data_dir=tmp_path / "data", verbose=False)
    assert df["age"].tolist() == [42]
    df = load_faces("facial_age", data_dir=tmp_path / "data", verbose=False)  # second time: no re-extraction
    assert len(df) == 1


# ------------------------------------------------------------------------------------------------
# IMDB-WIKI
# ------------------------------------------------------------------------------------------------


def datenum(d: date) -> float:
    """Python date -> Matlab datenum, with a fraction of a day as in the real file."""
    return d.toordinal() + 366 + 0.25


def write_wiki(root: Path) -> Path:
    from scipy.io import savemat

    nan, inf = float("nan"), float("inf")
    rows = [  # full_path, dob, photo_taken, gender, face_score, second_face_score
        ("17/a_1981-05-05_2009.jpg", date(1981, 5, 5), 2009, 1.0, 4.3, nan),  # 28, male
        ("17/b_1981-09-05_2009.jpg", date(1981, 9, 5), 2009, 0.0, 2.0, nan),  # 27 (born after July), female
        ("23/c_1990-01-01_2015.jpg", date(1990, 1, 1), 2015, nan, 3.1, nan),  # 25, unknown gender
        ("23/d_1950-01-01_2000.jpg", date(1950, 1, 1), 2000, 1.0, -inf, nan),  # no face
        ("23/e_1950-01-01_2000.jpg", date(1950, 1, 1), 2000, 1.0, 0.5, nan),  # weak face
        ("42/f_1960-01-01_2000.jpg", date(1960, 1, 1), 2000, 0.0, 3.0, 1.7),  # second face
        ("42/g_1800-01-01_2000.jpg", date(1800, 1, 1), 2000, 0.0, 3.0, nan),  # age 200
        ("42/h_1970-01-01_2000.jpg", date(1970, 1, 1), 2000, 0.0, 3.0, nan),  # file missing
        ("42/i_1970-01-01_2000.jpg", date(1970, 1, 1), 2000, 0.0, 3.0, nan),  # empty file
    ]
    for rel, *_ in rows:
        if not rel.startswith(("42/h", "42/i")):
            write_image(root / rel)
    (root / "42").mkdir(exist_ok=True)
    (root / "42/i_1970-01-01_2000.jpg").write_bytes(b"")
    column = lambda k: np.array([[r[k] for r in rows]], dtype=float)  # noqa: E731 (1 x N, as in MATLAB)
    wiki = {
        "dob": np.array([[datenum(r[1]) for r in rows]]),
        "photo_taken": np.array([[r[2] for r in rows]], dtype=np.uint16),
        "full_path": np.array([r[0] for r in rows], dtype=object).reshape(1, -1),
        "gender": column(3),
        "face_score": column(4),
        "second_face_score": column(5),
        "name": np.array(["x"] * len(rows), dtype=object).reshape(1, -1),
        "face_location": np.array([np.array([1.0, 1.0, 7.0, 7.0])] * len(rows), dtype=object).reshape(1, -1),
    }
    savemat(root / "wiki.mat", {"wiki": wiki})
    return root


def test_load_imdb_wiki(tmp_path):
    write_wiki(tmp_path / "wiki_crop")
    df = load_imdb_wiki(tmp_path)
    check_table(df, "imdb-wiki")
    assert [Path(p).name[0] for p in df["path"]] == ["a", "b", "c"]
    assert df["age"].tolist() == [28, 27, 25]
    assert df["gender"].tolist()[:2] == [0, 1] and df["gender"].isna().tolist() == [False, False, True]
    assert df["race"].isna().all()
    r = df.attrs["report"]
    assert r.found == 9 and r.kept == 3
    assert r.filter_counts == {"face score": 2, "second face": 1, "age range": 1, "missing file": 1}
    assert r.filtered == 5 and r.unreadable == ["42/i_1970-01-01_2000.jpg"]
    check_balance(r)
    loose = load_imdb_wiki(tmp_path / "wiki_crop" / "wiki.mat", min_face_score=None, drop_second_face=False)
    assert loose.attrs["report"].filter_counts == {"age range": 1, "missing file": 1}


def test_imdb_wiki_from_tar_and_missing(tmp_path, capsys):
    write_wiki(tmp_path / "src" / "wiki_crop")
    data = tmp_path / "data"
    (data / "imdb-wiki").mkdir(parents=True)
    with tarfile.open(data / "imdb-wiki" / "wiki_crop.tar", "w") as tf:
        tf.add(tmp_path / "src" / "wiki_crop", "wiki_crop")
    df = load_faces("imdb-wiki", data_dir=data)
    assert len(df) == 3 and "imdb-wiki: 9 files, 3 kept" in capsys.readouterr().out
    with pytest.raises(DatasetNotFound, match="wiki_crop.tar") as err:
        get_imdb_wiki(data_dir=tmp_path / "empty")
    assert "ETH Zurich" in str(err.value) and "imdb-wiki" in str(err.value)


# ------------------------------------------------------------------------------------------------
# Kaggle credentials
# ------------------------------------------------------------------------------------------------


def clear_kaggle_env(monkeypatch, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / "kaggle-config"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_no_network_and_no_token(tmp_path, monkeypatch, capsys, offline_kagglehub):
    """kagglehub fails (no connection), no token for the Kaggle API: one error that says what to do."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    kaggle_loaded = "kaggle" in sys.modules
    assert find_kaggle_credentials() is None
    with pytest.raises(DownloadFailed) as err:
        get_utkface(data_dir=tmp_path / "data")
    assert offline_kagglehub == ["jangedoo/utkface-new"]
    assert isinstance(err.value, MissingCredentials) and isinstance(err.value, DATA_ERRORS)
    message = str(err.value)
    for needed in ("kagglehub: no connection to Kaggle (ConnectionError: could not reach api.kaggle.com)",
                   "Kaggle API: no Kaggle credentials",
                   "Connect to the internet", "without an account or token",
                   "https://www.kaggle.com/datasets/jangedoo/utkface-new", "archive.zip",
                   "load_faces('utkface', path=", "FACEAGING_SOURCE_PATH=", "FACEAGING_SOURCE=utkface",
                   str(tmp_path / "data" / "utkface" / "archive.zip"),
                   "kaggle.json", "chmod 600", "KAGGLE_USERNAME", "KAGGLE_KEY", "Colab", "toy"):
        assert needed in message, needed
    printed = capsys.readouterr()
    assert all(line.startswith("utkface: ") for line in printed.out.splitlines())  # no kaggle auth text
    assert "no connection to Kaggle" in printed.out and printed.err == ""
    assert ("kaggle" in sys.modules) == kaggle_loaded  # not imported without credentials
    assert not (tmp_path / "data").exists()  # nothing half-made on disk
    with pytest.raises(DownloadFailed, match="frabbisw/facial-age"):
        load_faces("facial-age", data_dir=tmp_path / "data", verbose=False)
    assert offline_kagglehub[-1] == "frabbisw/facial-age"


def test_credentials_found(tmp_path, monkeypatch):
    home = clear_kaggle_env(monkeypatch, tmp_path / "home")
    config_dir = home / "kaggle-config"
    config_dir.mkdir()
    (config_dir / "kaggle.json").write_text("{not json")
    assert find_kaggle_credentials() is None
    (config_dir / "kaggle.json").write_text(json.dumps({"username": "student", "key": "0123abcd"}))
    assert find_kaggle_credentials() == str(config_dir / "kaggle.json")
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    assert find_kaggle_credentials() is None  # ~/.kaggle is empty
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "access_token").write_text("KGAT_abc")
    assert find_kaggle_credentials().endswith("access_token")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_abc")
    assert "KAGGLE_API_TOKEN" in find_kaggle_credentials()
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "0123abcd")
    assert "KAGGLE_USERNAME" in find_kaggle_credentials()


def fake_kaggle_api(monkeypatch, zip_bytes: bytes | None, calls: list) -> None:
    """Replace the Kaggle API: it "downloads" ``zip_bytes``, or fails like an offline one when None."""

    class FakeApi:
        def dataset_download_files(self, slug, path, quiet, unzip):
            calls.append(("api", slug))
            assert unzip is False
            if zip_bytes is None:
                raise requests.exceptions.ConnectionError("Failed to resolve 'www.kaggle.com'")
            (Path(path) / "utkface-new.zip").write_bytes(zip_bytes)

    monkeypatch.setattr(sources, "_kaggle_api", lambda slug, dest: FakeApi())


def test_kaggle_api_after_kagglehub_fails(tmp_path, monkeypatch, kaggle_zip, offline_kagglehub, capsys):
    """kagglehub first; when it fails and a token exists, the Kaggle API downloads; the next call reuses it."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "0123abcd")
    calls: list = []
    fake_kaggle_api(monkeypatch, kaggle_zip.read_bytes(), calls)
    df = get_utkface(data_dir=tmp_path / "data")
    assert offline_kagglehub == ["jangedoo/utkface-new"] and calls == [("api", "jangedoo/utkface-new")]
    assert [Path(p).name for p in df["path"]] == UTK_KEPT
    out = capsys.readouterr().out
    assert out.index("kagglehub could not") < out.index("trying the Kaggle API with the credentials in environment")
    df = get_utkface(data_dir=tmp_path / "data", verbose=False, max_images=2)  # the zip is on disk now
    assert len(offline_kagglehub) == 1 and len(calls) == 1 and len(df) == 2


def test_kagglehub_and_kaggle_api_both_fail(tmp_path, monkeypatch, offline_kagglehub):
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_abc")
    calls: list = []
    fake_kaggle_api(monkeypatch, None, calls)
    with pytest.raises(DownloadFailed) as err:
        get_utkface(data_dir=tmp_path / "data", verbose=False)
    assert len(offline_kagglehub) == 1 and len(calls) == 1
    message = str(err.value)
    assert "kagglehub: no connection to Kaggle" in message
    assert "Kaggle API (credentials in environment variable KAGGLE_API_TOKEN): no connection to Kaggle" in message
    assert "Connect to the internet" in message and "FACEAGING_SOURCE_PATH" in message


# ------------------------------------------------------------------------------------------------
# kagglehub
# ------------------------------------------------------------------------------------------------


def test_get_utkface_with_kagglehub(tmp_path, monkeypatch, capsys):
    """No token: kagglehub downloads; its folder holds every face 2-4 times, and each is loaded once."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    asked = kagglehub_online(monkeypatch, utkface_files())
    df = get_utkface(data_dir=tmp_path / "data")
    assert asked == ["jangedoo/utkface-new"]
    check_table(df, "utkface")
    assert [Path(p).name for p in df["path"]] == UTK_KEPT
    folder = tmp_path / "kagglehub-cache" / "datasets" / "jangedoo" / "utkface-new" / "versions" / "1"
    by_name = {Path(p).name: Path(p).parent for p in df["path"]}
    assert by_name[MAIN[0]] == (folder / "UTKFace").resolve()  # the top-level copy, not an aligned duplicate
    assert by_name[CROP_ONLY] == (folder / "crop_part1").resolve()
    assert all("utkface_aligned_cropped" not in p for p in df["path"])
    r = df.attrs["report"]
    assert (r.found, r.kept, r.malformed) == (UTK_FOUND, 6, [REAL_MALFORMED[1]])
    assert r.duplicates == UTK_FOUND - 6 - 1 - 2  # every copy but one of each name
    check_balance(r)
    assert "downloading jangedoo/utkface-new with kagglehub" in capsys.readouterr().out
    assert not (tmp_path / "data").exists()  # kagglehub's folder is read in place, not copied

    # Offline from now on: the next call finds kagglehub's copy on disk and never calls it.
    assert find_kagglehub_copy("jangedoo/utkface-new") == folder
    monkeypatch.setattr(kagglehub, "dataset_download", lambda *a, **k: pytest.fail("went online"))
    again = get_utkface(data_dir=tmp_path / "data", verbose=True, max_images=3)
    assert len(again) == 3 and set(again["path"]) <= set(df["path"])
    assert f"kagglehub's copy in {folder}" in capsys.readouterr().out
    assert choose_source(data_dir=tmp_path / "data") == ("utkface", f"kagglehub's copy in {folder}")


def test_find_kagglehub_copy_takes_the_newest_complete_version(tmp_path):
    assert find_kagglehub_copy("jangedoo/utkface-new") is None  # no cache folder at all
    root = tmp_path / "kagglehub-cache" / "datasets" / "jangedoo" / "utkface-new"
    for v in (1, 2, 10):
        write_image(root / "versions" / str(v) / "UTKFace" / MAIN[0])
    (root / "versions" / "notes").mkdir()
    assert find_kagglehub_copy("jangedoo/utkface-new") is None  # nothing marked complete
    (root / "1.complete").touch()
    (root / "2.complete").touch()
    assert find_kagglehub_copy("jangedoo/utkface-new") == root / "versions" / "2"  # 10: unfinished
    Cache().mark_as_complete(parse_dataset_handle("jangedoo/utkface-new/versions/10"))  # kagglehub's marker
    assert find_kagglehub_copy("jangedoo/utkface-new") == root / "versions" / "10"
    assert find_kagglehub_copy("frabbisw/facial-age") is None


def test_kagglehub_not_installed(tmp_path, monkeypatch):
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # import kagglehub -> ImportError
    with pytest.raises(DownloadFailed, match=r"kagglehub is not installed \(pip install kagglehub\)"):
        get_utkface(data_dir=tmp_path / "data", verbose=False)


def test_kagglehub_error_without_connection_words(tmp_path, monkeypatch):
    """Any kagglehub failure is caught, named, and followed by the way out."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")

    def refused(handle, *a, **k):
        raise RuntimeError("403 Forbidden\nsecond line not shown")

    monkeypatch.setattr(kagglehub, "dataset_download", refused)
    with pytest.raises(DownloadFailed) as err:
        get_utkface(data_dir=tmp_path / "data", verbose=False)
    assert "kagglehub: RuntimeError: 403 Forbidden\n" in str(err.value)
    assert sources._why(TimeoutError("x" * 500)) == f"no connection to Kaggle (TimeoutError: {'x' * 183}...)"
    assert "second line" not in str(err.value) and "Connect to the internet" in str(err.value)


def test_disk_comes_before_the_network(tmp_path, monkeypatch, kaggle_zip, offline_kagglehub):
    """A zip passed by path, or put in data/utkface, is used without trying kagglehub."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    df = get_utkface(path=kaggle_zip, data_dir=tmp_path / "data", verbose=False)
    assert [Path(p).name for p in df["path"]] == UTK_KEPT and offline_kagglehub == []
    other = tmp_path / "other" / "utkface"
    other.mkdir(parents=True)
    shutil.copy(kaggle_zip, other / "archive.zip")
    df = load_faces("utkface", data_dir=tmp_path / "other", verbose=False)
    assert len(df) == 6 and offline_kagglehub == []


def test_unsafe_manual_zip_is_refused(tmp_path, monkeypatch, offline_kagglehub):
    """A hand-downloaded zip with an entry that climbs out of its folder: refused, nothing written."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    bad = make_zip(tmp_path / "archive.zip", {"UTKFace/" + MAIN[0]: image_bytes(), "../../evil.jpg": b"x"})
    with pytest.raises(UnsafeArchive, match="evil") as err:
        load_faces("utkface", path=bad, data_dir=tmp_path / "data", verbose=False)
    assert isinstance(err.value, DATA_ERRORS)
    placed = tmp_path / "placed" / "utkface"
    placed.mkdir(parents=True)
    shutil.copy(bad, placed / "archive.zip")
    with pytest.raises(UnsafeArchive):
        get_utkface(data_dir=tmp_path / "placed", verbose=False)
    assert offline_kagglehub == []
    assert not (tmp_path / "data").exists() and not list(tmp_path.rglob("evil.jpg"))
    assert list(placed.iterdir()) == [placed / "archive.zip"]


# ------------------------------------------------------------------------------------------------
# load_faces
# ------------------------------------------------------------------------------------------------


def test_load_faces_dispatch(kaggle_zip, tmp_path):
    assert SOURCES == ("toy", "utkface", "facial-age", "imdb-wiki")
    with pytest.raises(ValueError, match="toy, utkface, facial-age, imdb-wiki"):
        load_faces("celeba")
    df = load_faces("UTKFace", path=kaggle_zip, extract_to=tmp_path / "out", verbose=False)
    assert len(df) == 6
    df = load_faces("utkface", path=kaggle_zip, data_dir=tmp_path / "data", verbose=False)
    assert len(df) == 6 and (tmp_path / "data" / "utkface" / "UTKFace").is_dir()


def test_load_faces_toy_goes_to_toyfaces(tmp_path, monkeypatch, capsys):
    """"toy" calls helpers.toyfaces.load_toy_faces(path, **kw); a stand-in module keeps this test independent."""
    import types

    seen = {}

    def load_toy_faces(out_dir=None, generate=True, **kw):
        seen.update(out_dir=out_dir, **kw)
        return pd.DataFrame({"path": [f"/toy/{i}.png" for i in range(10)], "age": range(10), "gender": 0,
                             "race": 0, "source": "toy", "identity": 0, "variant": 0})

    monkeypatch.setitem(sys.modules, "helpers.toyfaces", types.SimpleNamespace(load_toy_faces=load_toy_faces))
    df = load_faces("toy", path=tmp_path, max_images=4, n=10)
    assert seen == {"out_dir": tmp_path, "n": 10}
    assert len(df) == 4 and list(df["age"]) == sorted(df["age"]) and "identity" in df
    assert "toy: 4 faces" in capsys.readouterr().out


def test_auto_source_prefers_utkface_when_at_hand(kaggle_zip, tmp_path, monkeypatch, capsys, offline_kagglehub):
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    data = tmp_path / "data"
    key, why = choose_source(data_dir=data)
    assert key == "toy" and "no UTKFace on disk" in why and "no download is tried" in why
    root = tmp_path / "kagglehub-cache" / "datasets" / "jangedoo" / "utkface-new"
    write_image(root / "versions" / "1" / "UTKFace" / MAIN[0])  # an interrupted kagglehub download
    assert choose_source(data_dir=data)[0] == "toy"
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    assert choose_source(data_dir=data)[0] == "utkface"
    monkeypatch.delenv("KAGGLE_USERNAME")
    (data / "utkface").mkdir(parents=True)
    shutil.copy(kaggle_zip, data / "utkface" / "archive.zip")
    key, why = choose_source(data_dir=data)
    assert key == "utkface" and "found in" in why
    df = load_faces("auto", data_dir=data)
    assert len(df) == 6 and (df["source"] == "utkface").all()
    assert "face source: utkface" in capsys.readouterr().out
    assert offline_kagglehub == []  # auto never went online


def toy_stand_in(monkeypatch) -> None:
    """A stand-in helpers.toyfaces, so that these tests do not draw faces."""
    import types

    def load_toy_faces(out_dir=None, **kw):
        return pd.DataFrame({"path": ["/toy/0.png"], "age": [30], "gender": [0], "race": [0], "source": ["toy"]})

    monkeypatch.setitem(sys.modules, "helpers.toyfaces", types.SimpleNamespace(load_toy_faces=load_toy_faces))


def test_auto_offline_never_tries_the_network(tmp_path, monkeypatch, capsys, offline_kagglehub):
    """No UTKFace on disk, no token, not Colab (a laptop offline, CI): toy faces, and kagglehub is never called."""
    clear_kaggle_env(monkeypatch, tmp_path / "home")
    toy_stand_in(monkeypatch)
    df = load_faces("auto", data_dir=tmp_path / "data")
    assert (df["source"] == "toy").all() and offline_kagglehub == []
    assert "face source: toy (no UTKFace on disk" in capsys.readouterr().out


def test_auto_on_colab_uses_kagglehub(tmp_path, monkeypatch, capsys):
    """On Colab auto picks UTKFace with no token: kagglehub downloads it; when that fails, the toy faces."""
    import types

    clear_kaggle_env(monkeypatch, tmp_path / "home")
    toy_stand_in(monkeypatch)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))  # no userdata: no secrets
    assert find_kaggle_credentials() is None
    assert choose_source(data_dir=tmp_path / "data") == (
        "utkface", "on Colab, where kagglehub downloads it without a token")
    asked = kagglehub_online(monkeypatch, utkface_files())
    df = load_faces("auto", data_dir=tmp_path / "data", verbose=False)
    assert asked == ["jangedoo/utkface-new"] and [Path(p).name for p in df["path"]] == UTK_KEPT

    def no_network(handle, *a, **k):
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "fresh-cache"))  # a new runtime: nothing cached
    monkeypatch.setattr(kagglehub, "dataset_download", no_network)
    df = load_faces("auto", data_dir=tmp_path / "data")
    assert (df["source"] == "toy").all()
    out = capsys.readouterr().out
    assert "could not get UTKFace (DownloadFailed: Could not get the utkface dataset" in out
    assert "using the toy faces instead" in out


# ------------------------------------------------------------------------------------------------
# The real sample
# ------------------------------------------------------------------------------------------------


def test_real_utkface_sample(real_utkface_dir):
    df = load_utkface(real_utkface_dir)
    r = df.attrs["report"]
    assert (r.found, r.kept, r.duplicates, r.unreadable) == (7393, 7390, 0, [])
    assert sorted(r.malformed) == REAL_MALFORMED
    check_table(df.head(50), "utkface")
    assert df["age"].between(1, 116).all() and set(df["gender"]) == {0, 1} and set(df["race"]) == {0, 1, 2, 3, 4}
