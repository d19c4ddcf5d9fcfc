import subprocess
import sys


def _ask(code, **env):
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "FACEAGING_DATA", "FACEAGING_SOURCE")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", f"from helpers import config; print({code})"],
                         env=full, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_smoke_switch_shrinks_sizes():
    full = int(_ask("config.DATA.image_size"))
    smoke = int(_ask("config.DATA.image_size", SMOKE="1"))
    assert smoke < full
    assert _ask("config.SMOKE", SMOKE="0") == "False"
    assert _ask("config.SMOKE", SMOKE="1") == "True"
    assert int(_ask("config.DATA.toy_images", SMOKE="1")) < int(_ask("config.DATA.toy_images"))


def test_data_dir_and_source_come_from_the_environment(tmp_path):
    assert _ask("config.DATA_DIR", FACEAGING_DATA=str(tmp_path)) == str(tmp_path)
    assert _ask("config.DATA.toy_dir.parent", FACEAGING_DATA=str(tmp_path)) == str(tmp_path)
    assert _ask("config.DATA_SOURCE") == "auto"
    assert _ask("config.DATA_SOURCE", FACEAGING_SOURCE="utkface") == "utkface"


def test_train_set_overrides_a_models_settings(monkeypatch):
    import pytest

    from helpers import config
    from helpers.train import apply_overrides, main, parse_value

    for name in ("AGEGAN", "CYCLEGAN", "CYCLEGAN_CPU"):
        monkeypatch.setattr(config, name, getattr(config, name))  # put them back afterwards
    assert parse_value("32") == 32 and parse_value("1e-4") == 1e-4 and parse_value("nearest") == "nearest"
    assert parse_value("(0, 20, 40)") == (0, 20, 40) and parse_value("False") is False
    changes = apply_overrides("agegan", ["ngf=24", "upsample=transposed", "group-edges=(0, 30, 60)"])
    assert changes == {"ngf": 24, "upsample": "transposed", "group_edges": (0, 30, 60)}
    assert config.AGEGAN.ngf == 24 and config.AGEGAN.group_edges == (0, 30, 60)
    apply_overrides("cyclegan", ["n_blocks=3"])
    assert config.CYCLEGAN.n_blocks == 3 and config.CYCLEGAN_CPU.n_blocks == 3  # both devices' settings
    with pytest.raises(ValueError, match="no setting colour.*its settings are: .*ngf"):
        apply_overrides("agegan", ["colour=red"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        apply_overrides("agegan", ["ngf"])
    assert main(["agegan", "--set", "colour=red"]) == 2  # a clear message, no training, no traceback
