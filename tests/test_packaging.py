"""An installed package (a wheel, not this checkout) runs its built-in demos: their configs ship as package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_demo_configs_and_the_installed_demos_load_them(tmp_path):
    source = tmp_path / "src"  # setuptools builds inside the source tree: build a copy, never the checkout
    for name in ("toast", "runkit", "visual_classification", "language_generation", "experiments"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*pip_wheel, str(source)], check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("toast_refocus-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "visual_classification/demo/vtab_demo.yaml" in names
    assert "language_generation/demo/demo_smollm2.yaml" in names
    assert not any(name.startswith("experiments/") for name in names)  # research code stays in the checkout
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "import visual_classification.demo.__main__ as v, language_generation.demo.__main__ as l\n"
        "from visual_classification.config import load_config as lv\n"
        "from language_generation.config import load_config as ll\n"
        f"assert str(v.CONFIG).startswith({str(site)!r}), v.CONFIG\n"
        "print(lv(str(v.CONFIG), []).MODEL.BACKBONE, ll(str(l.CONFIG), ['OUTPUT_DIR', 'x']).MODEL.TRANSFER_TYPE)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=elsewhere, env={"PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "vit_small_patch14_dinov2"
