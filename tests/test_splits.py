import numpy as np
import pandas as pd
import pytest

from helpers.splits import (
    PRESETS,
    AgeRange,
    AgeRangeError,
    assign_groups,
    balanced_groups,
    group_ranges,
    split_domains,
    split_preset,
    train_test_split,
)


def table(ages, identities=None):
    df = pd.DataFrame({"path": [f"/x/{i}_{a}.jpg" for i, a in enumerate(ages)], "age": ages})
    if identities is not None:
        df["identity"] = identities
    return df


def test_parse_forms():
    assert AgeRange.parse("15-30") == AgeRange(15, 30)
    assert AgeRange.parse("50+") == AgeRange(50, None)
    assert AgeRange.parse((20, 30)) == AgeRange(20, 30)
    assert str(AgeRange(50)) == "50+" and str(AgeRange(15, 30)) == "15-30"
    with pytest.raises(AgeRangeError, match="cannot read"):
        AgeRange.parse("young")


def test_ranges_are_inclusive():
    mask = AgeRange(15, 30).contains([14, 15, 30, 31])
    assert mask.tolist() == [False, True, True, False]
    assert AgeRange(50).contains([49, 50, 116]).tolist() == [False, True, True]


def test_inverted_range_is_refused_with_a_hint():
    with pytest.raises(AgeRangeError, match="30-15 is inverted.*15-30"):
        AgeRange(30, 15)
    with pytest.raises(AgeRangeError, match="negative"):
        AgeRange(-1, 5)


def test_split_domains_and_presets():
    df = table([5, 15, 20, 30, 31, 45, 50, 70, 90])
    young, old = split_domains(df, "15-30", "50+")
    assert young["age"].tolist() == [15, 20, 30]
    assert old["age"].tolist() == [50, 70, 90]
    y2, o2 = split_preset(df, "utkface-40-50")
    assert o2["age"].tolist() == [45, 50]
    assert set(PRESETS) >= {"utkface", "utkface-40-50", "facial-age", "imdb-wiki"}
    assert (PRESETS["facial-age"].young, PRESETS["facial-age"].old) == (AgeRange(20, 30), AgeRange(70, 80))


def test_overlapping_empty_and_swapped_domains():
    df = table([20, 25, 60])
    with pytest.raises(AgeRangeError, match="overlap"):
        split_domains(df, "15-30", "25+")
    with pytest.raises(AgeRangeError, match="old range 70-80 holds no faces.*20-60"):
        split_domains(df, "15-30", "70-80")
    with pytest.raises(AgeRangeError, match="swap"):
        split_domains(df, "50+", "15-30")
    with pytest.raises(KeyError, match="choose one of"):
        split_preset(df, "nope")


def test_groups_from_edges_and_balanced():
    groups = group_ranges([0, 20, 40, 60])
    assert [str(g) for g in groups] == ["0-19", "20-39", "40-59", "60+"]
    with pytest.raises(AgeRangeError, match="increase"):
        group_ranges([0, 40, 20])
    rng = np.random.default_rng(0)
    df = table(rng.integers(1, 90, size=2000).tolist())
    g = balanced_groups(df, 5)
    labelled = assign_groups(df, g)
    counts = np.bincount(labelled["group"])
    assert len(counts) == 5 and counts.min() > 0.6 * counts.max()


def test_assign_groups_drops_outsiders_and_refuses_empty_groups():
    df = table([22, 28, 41, 60, 10])
    out = assign_groups(df, ["20-30", "40-50"])
    assert out["group"].tolist() == [0, 0, 1]
    with pytest.raises(AgeRangeError, match="70-80 hold no faces"):
        assign_groups(df, ["20-30", "70-80"])


def test_train_test_split_is_seeded_and_80_20():
    df = table(list(range(100)))
    tr, te = train_test_split(df, seed=3)
    assert len(te) == 20 and len(tr) == 80
    assert not set(tr["path"]) & set(te["path"])
    tr2, te2 = train_test_split(df.sample(frac=1, random_state=1), seed=3)
    assert set(te2["path"]) == set(te["path"])  # row order does not matter
    _, te3 = train_test_split(df, seed=4)
    assert set(te3["path"]) != set(te["path"])


def test_split_keeps_identities_together():
    ids = np.repeat(np.arange(50), 4)
    df = table(list(range(200)), identities=ids)
    tr, te = train_test_split(df, seed=0)
    assert not set(tr["identity"]) & set(te["identity"])
    assert te["identity"].nunique() == 10


def test_split_refuses_bad_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_test_split(table([1, 2, 3]), test_fraction=1.5)
    with pytest.raises(ValueError, match="cannot split"):
        train_test_split(table([1]))
