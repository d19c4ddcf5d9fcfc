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


def _args(model, *extra):
    from helpers.train import build_parser

    return build_parser().parse_args([model, *extra])


def test_train_set_overrides_a_models_settings():
    import pytest

    from helpers import catalog, config
    from helpers.train import main, parse_value, run_settings

    assert parse_value("32") == 32 and parse_value("1e-4") == 1e-4 and parse_value("nearest") == "nearest"
    assert parse_value("(0, 20, 40)") == (0, 20, 40) and parse_value("False") is False
    before = config.AGEGAN_CPU
    s, changes = run_settings(catalog.get("agegan"), _args("agegan", "--set", "ngf=24", "--set", "upsample=transposed",
                                                           "--set", "group-edges=(0, 30, 60)"), "cpu", "toy")
    assert changes == {"ngf": 24, "upsample": "transposed", "group_edges": (0, 30, 60)}
    assert s.ngf == 24 and s.group_edges == (0, 30, 60)
    assert config.AGEGAN_CPU is before and config.AGEGAN_CPU.ngf != 24  # settings flow one way: config untouched
    with pytest.raises(ValueError, match="no setting colour.*its settings are: .*ngf"):
        run_settings(catalog.get("agegan"), _args("agegan", "--set", "colour=red"), "cpu", "toy")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        run_settings(catalog.get("agegan"), _args("agegan", "--set", "ngf"), "cpu", "toy")
    assert main(["agegan", "--set", "colour=red"]) == 2  # a clear message, no training, no traceback


def test_epochs_reach_the_settings_so_the_schedule_ends_with_the_run():
    # Bug: --epochs N reached fit() but not the settings, so the LR schedule built for 7 epochs hit zero early.
    from helpers import catalog
    from helpers.train import run_settings

    for model in ("agegan", "cyclegan"):
        s, _ = run_settings(catalog.get(model), _args(model, "--epochs", "12"), "cpu", "toy")
        assert s.epochs == 12 and (s.n_epochs_constant, s.n_epochs_decay) == (6, 6)
    s, _ = run_settings(catalog.get("dcgan"), _args("dcgan", "--epochs", "3", "--batch-size", "4"), "cpu", "toy")
    assert (s.epochs, s.batch_size) == (3, 4)
    s, _ = run_settings(catalog.get("cdcgan"), _args("cdcgan", "--steps", "9"), "cpu", "toy")
    assert s.steps == 9


def test_image_size_set_applies_on_the_toy_faces_too():
    # Bug: --set image_size=... did nothing on the toy data (a separate toy_image_size won).
    from helpers import catalog
    from helpers.train import run_settings

    s, _ = run_settings(catalog.get("agegan"), _args("agegan", "--set", "image_size=48"), "cpu", "toy")
    assert s.image_size == 48 and not hasattr(s, "toy_image_size")


def test_agegan_cli_has_no_missing_arguments(tmp_path):
    # Bug: _run_agegan read args.image_size, which the parser never defined. Now every model runs through one
    # generic path; a tiny smoke run of the age-modulated GAN must go end to end from the command line.
    import os

    env = {**os.environ, "SMOKE": "1", "FACEAGING_SOURCE": "toy"}
    out = subprocess.run([sys.executable, "-m", "helpers.train", "agegan", "--data", "toy", "--steps", "2",
                          "--run-dir", str(tmp_path / "run"), "--set", "image_size=16"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "age_grid.png").is_file() and "16px" in out.stdout


def test_smoke_flag_reruns_in_a_fresh_process(tmp_path):
    # Bug: --smoke reloaded helpers.config, leaving other modules with stale settings. Now it starts a fresh
    # process with SMOKE=1, which prints the smoke mode's summary line.
    import os

    env = {k: v for k, v in os.environ.items() if k != "SMOKE"}
    env["FACEAGING_SOURCE"] = "toy"
    out = subprocess.run([sys.executable, "-m", "helpers.train", "dcgan", "--smoke", "--data", "toy", "--steps", "1",
                          "--run-dir", str(tmp_path / "run")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mode: SMOKE" in out.stdout


def test_checkpoint_mismatch_exits_3_not_argparse_2(tmp_path):
    from helpers.train import main

    run = tmp_path / "run"
    assert main(["dcgan", "--data", "toy", "--steps", "1", "--run-dir", str(run)]) == 0
    assert main(["dcgan", "--data", "toy", "--steps", "2", "--run-dir", str(run), "--set", "ngf=4"]) == 3


def test_save_grid_copy_exact_or_as_a_palette(tmp_path):
    import numpy as np
    import pytest
    from PIL import Image

    from helpers.train import main, save_grid_copy

    rng = np.random.default_rng(0)
    src = tmp_path / "grid.png"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(src)
    exact = save_grid_copy(src, tmp_path / "a" / "exact.png")
    assert exact.read_bytes() == src.read_bytes()
    small = save_grid_copy(src, tmp_path / "b" / "small.png", colors=16)
    with Image.open(small) as im:
        assert im.mode == "P" and im.size == (60, 40) and len(im.getcolors()) <= 16
    with pytest.raises(ValueError, match="2 to 256"):
        save_grid_copy(src, tmp_path / "c.png", colors=300)
    assert main(["dcgan", "--save-grid", str(tmp_path / "x.png"), "--grid-colors", "1"]) == 2  # before any training
