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
