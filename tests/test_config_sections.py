"""Every command validates a config the same way: a section that no config of the project
has (a misspelt 'nett:') is one clear error, whichever command reads the file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dpv.config import PROJECT_SECTIONS, GameConfig, NetConfig, load_sections
from dpv.errors import ConfigError
from eexit_vision.config import SECTIONS as VISION_SECTIONS
from selfplay.config import CONFIG_DIR, SECTIONS as RUN_SECTIONS, load_run_config

ROOT = Path(__file__).resolve().parent.parent


def test_project_sections_are_the_packages_sections():
    assert PROJECT_SECTIONS == set(RUN_SECTIONS) | set(VISION_SECTIONS)


def misspelt(tmp_path) -> Path:
    data = yaml.safe_load((CONFIG_DIR / "tictactoe.yaml").read_text())
    data["nett"] = data.pop("net")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_misspelt_section_is_refused_by_the_run_and_by_partial_readers(tmp_path):
    path = misspelt(tmp_path)
    with pytest.raises(ConfigError, match="unknown config section 'nett'"):
        load_run_config(path)
    with pytest.raises(ConfigError, match="unknown config section 'nett'"):
        load_sections(path, {"game": GameConfig, "net": NetConfig}, strict=False)
    # the other sections of a full run config are still left to their owner
    got = load_sections(CONFIG_DIR / "go9.yaml", {"game": GameConfig, "net": NetConfig}, strict=False)
    assert got["net"].exits == (2, 4, 6)


def test_netinfo_refuses_a_misspelt_section_in_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "dpv.netinfo", "--config", str(misspelt(tmp_path))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "unknown config section 'nett'" in lines[0], res.stderr
