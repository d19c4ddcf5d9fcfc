import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.cache import BatchLoader, FaceDataset, UnpairedDataset, build_cache, load_image, to_float, to_uint8


def _write_faces(folder, n, size=40):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        p = folder / f"{20 + i}_0_0_20170101000000{i:03d}.jpg.chip.jpg"
        Image.fromarray(arr).save(p, quality=95)
        paths.append(p)
    return paths


def _table(paths):
    return pd.DataFrame({"path": [str(p) for p in paths], "age": list(range(len(paths)))})


def test_grayscale_rgba_palette_and_non_square_become_square_rgb(tmp_path):
    Image.new("L", (30, 30), 128).save(tmp_path / "g.png")
    rgba = Image.new("RGBA", (30, 30), (255, 0, 0, 0))  # fully transparent red
    rgba.save(tmp_path / "a.png")
    Image.new("P", (30, 30), 3).save(tmp_path / "p.png")
    Image.new("RGB", (60, 30), (0, 0, 255)).save(tmp_path / "wide.jpg")
    g = load_image(tmp_path / "g.png", 16)
    assert g.shape == (16, 16, 3) and g.dtype == np.uint8 and (g == 128).all()
    a = load_image(tmp_path / "a.png", 16)
    assert (a == 255).all()  # transparency is laid over white, not black
    assert load_image(tmp_path / "p.png", 16).shape == (16, 16, 3)
    w = load_image(tmp_path / "wide.jpg", 16)
    assert w.shape == (16, 16, 3) and w[..., 2].mean() > 200


def test_cache_round_trip_and_reuse(tmp_path):
    paths = _write_faces(tmp_path, 6)
    df = _table(paths)
    c1 = build_cache(df, 24, cache_dir=tmp_path / "cache", verbose=False)
    assert c1.images.shape == (6, 24, 24, 3) and c1.images.dtype == np.uint8
    for i in (0, 5):
        assert np.array_equal(c1.images[i], load_image(paths[i], 24))
    mtime = c1.path.stat().st_mtime_ns
    c2 = build_cache(df, 24, cache_dir=tmp_path / "cache", verbose=False)
    assert c2.path == c1.path and c2.path.stat().st_mtime_ns == mtime  # loaded, not rebuilt
    assert np.array_equal(c1.images, c2.images)
    assert c2.table["path"].tolist() == df["path"].tolist()
    c3 = build_cache(df, 16, cache_dir=tmp_path / "cache", verbose=False)  # other size, other file
    assert c3.path != c1.path and c3.images.shape[1] == 16


def test_corrupt_truncated_and_fake_images_are_skipped_and_reported(tmp_path, capsys):
    paths = _write_faces(tmp_path, 4)
    empty = tmp_path / "30_0_0_20170101000000900.jpg.chip.jpg"
    empty.write_bytes(b"")
    fake = tmp_path / "31_0_0_20170101000000901.jpg.chip.jpg"
    fake.write_text("this is not an image")
    truncated = tmp_path / "32_0_0_20170101000000902.jpg.chip.jpg"
    truncated.write_bytes(paths[0].read_bytes()[:300])
    df = _table(paths[:2] + [empty, fake, truncated] + paths[2:])

    class Report:
        unreadable: list = []

    df.attrs["report"] = Report()
    cache = build_cache(df, 16, cache_dir=tmp_path / "cache")
    assert len(cache) == 4 and cache.images.shape[0] == 4
    assert set(cache.table["path"]) == {str(p) for p in paths}
    assert len(cache.unreadable) == 3
    assert any(empty.name in m for m in cache.unreadable)
    assert len(df.attrs["report"].unreadable) == 3
    assert "skipped 3 unreadable image(s)" in capsys.readouterr().out
    again = build_cache(df, 16, cache_dir=tmp_path / "cache", verbose=False)
    assert len(again) == 4 and len(again.unreadable) == 3


def test_parallel_build_matches_serial(tmp_path):
    paths = _write_faces(tmp_path, 300, size=20)
    df = _table(paths)
    par = build_cache(df, 12, cache_dir=tmp_path / "c1", workers=2, verbose=False)
    ser = build_cache(df, 12, cache_dir=tmp_path / "c2", workers=1, verbose=False)
    assert np.array_equal(par.images, ser.images)


def test_empty_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no faces to cache"):
        build_cache(_table([]), 16, cache_dir=tmp_path)


def test_float_conversion_round_trip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    f = to_float(x)
    assert f.min() == -1 and f.max() == 1
    assert torch.equal(to_uint8(f), x)


def test_datasets_shapes_labels_and_crops(tmp_path):
    cache = build_cache(_table(_write_faces(tmp_path, 5)), 20, cache_dir=tmp_path / "c", verbose=False)
    ds = FaceDataset(cache, labels=[0, 1, 0, 1, 1], crop=16, flip=True)
    img, label = ds[1]
    assert img.shape == (3, 16, 16) and img.dtype == torch.float32 and label == 1
    assert -1 <= img.min() and img.max() <= 1
    with pytest.raises(ValueError, match="labels"):
        FaceDataset(cache, labels=[0, 1])
    half = cache.subset(np.arange(5) < 2)
    pairs = UnpairedDataset(cache, half)
    assert len(pairs) == 5
    a, b = pairs[4]
    assert a.shape == b.shape == (3, 20, 20)


def test_batch_loader_epoch_labels_and_resume(tmp_path):
    cache = build_cache(_table(_write_faces(tmp_path, 10)), 16, cache_dir=tmp_path / "c", verbose=False)
    loader = BatchLoader(cache, batch_size=4, labels=np.arange(10), crop=12, flip=True, seed=1)
    assert len(loader) == 2
    batches = list(loader)
    x, y = batches[0]
    assert x.shape == (4, 3, 12, 12) and y.shape == (4,)
    # the labels follow their images through the shuffle
    full = BatchLoader(cache, batch_size=10, labels=np.arange(10), seed=2, shuffle=True)
    xb, yb = next(iter(full))
    ref = to_float(cache.tensor()[yb])
    assert torch.equal(xb, ref)
    # saving and restoring the state replays the same batches
    state = loader.state_dict()
    first = [b[0] for b in loader]
    loader.load_state_dict(state)
    second = [b[0] for b in loader]
    assert all(torch.equal(p, q) for p, q in zip(first, second))
    cl = BatchLoader(cache, batch_size=4, memory_format=torch.channels_last)
    assert next(iter(cl)).is_contiguous(memory_format=torch.channels_last)


def test_a_balanced_loader_draws_a_rare_label_as_often_as_a_common_one():
    images = torch.zeros(100, 3, 4, 4, dtype=torch.uint8)
    labels = np.array([0] * 90 + [1] * 10)
    loader = BatchLoader(images, batch_size=10, labels=labels, seed=0, balance=True)
    drawn = torch.cat([y for _ in range(20) for _, y in loader])
    share = float((drawn == 1).float().mean())
    assert 0.4 < share < 0.6  # 10% of the faces, about half of the draws
    plain = torch.cat([y for _ in range(5) for _, y in BatchLoader(images, 10, labels=labels, seed=0)])
    assert float((plain == 1).float().mean()) == pytest.approx(0.1)
    state = loader.state_dict()
    first = [y for _, y in loader]
    loader.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(first, [y for _, y in loader]))  # resumes the same draws
    with pytest.raises(ValueError, match="needs labels"):
        BatchLoader(images, 10, balance=True)
