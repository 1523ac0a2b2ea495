"""The installable package: pins agree with requirements.txt, and a built wheel works on its own.

The wheel test builds ``mgi`` from a copy of the sources, installs it (without dependencies:
those come from this virtual environment) into a folder outside the checkout, and runs the
``mgi`` script from another folder: the package must hold every module and the demo data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import mgi_core
from tests.conftest import ROOT


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_pyproject_pins_are_the_requirements_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [req for req in extra if not req.startswith(project["name"] + "[")]
    assert sorted(declared) == sorted(_requirement_lines(ROOT / "requirements.txt"))
    assert "torch==2.13.0" in project["dependencies"]
    assert all("==" in req for req in declared)  # the tested stack, nothing newer
    assert project["scripts"] == {"mgi": "mgi_core.cli:main"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


# Strict: once cli.py reads the demo from the package this passes, and the marker must go.
def test_built_wheel_runs_mgi_and_loads_the_demo_outside_the_checkout(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so that building leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "mgi_core", src / "mgi_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
          str(src)], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob(f"mgi-{mgi_core.__version__}-*.whl")

    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mgi_core").rglob("*.py")}
    assert sources <= shipped, f"missing from the wheel: {sorted(sources - shipped)}"
    assert {"mgi_core/demo/reviews.csv", "mgi_core/demo/planted.json"} <= shipped
    lexicon = {f"mgi_core/encoder/lexicon/{n}" for n in ("en.tsv", "zh.tsv", "zh_words.txt")}
    assert lexicon <= shipped  # the augmentation's synonym lexicons (package data)
    assert not any(name.startswith(("tests/", "tools/", "dashboard/")) for name in shipped)

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
         cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # PYTHONPATH stands for site-packages here: it puts the installed copy before the
    # checkout's editable install.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = _run([sys.executable, "-c", "import mgi_core; print(mgi_core.__file__)"],
                 cwd=elsewhere, env=env)
    assert Path(where.strip()).is_relative_to(site)
    demo_dir = _run([sys.executable, "-c", "from mgi_core.cli import DEMO_DIR; print(DEMO_DIR)"],
                    cwd=elsewhere, env=env)
    assert Path(demo_dir.strip()).is_relative_to(site / "mgi_core"), (
        "mgi_core/cli.py must read the demo files shipped in the package: "
        'DEMO_DIR = Path(__file__).resolve().parent / "demo"'
    )
    mgi = str(site / "bin" / "mgi")
    assert "load-demo" in _run([mgi, "--help"], cwd=elsewhere, env=env)
    out = _run([mgi, "load-demo", "--db", str(tmp_path / "x.duckdb")], cwd=elsewhere, env=env)
    assert "3,535 of 3,535 rows stored" in out
    # The lexicons load from the installed package, not from the checkout.
    code = ("from mgi_core.encoder import augment as a; print(a.__file__); "
            "print(len(a.load_lexicon('en').groups), len(a.load_lexicon('zh').vocabulary))")
    where, sizes = _run([sys.executable, "-c", code], cwd=elsewhere, env=env).splitlines()
    assert Path(where).is_relative_to(site)
    from mgi_core.encoder.augment import load_lexicon
    assert sizes == f"{len(load_lexicon('en').groups)} {len(load_lexicon('zh').vocabulary)}"
