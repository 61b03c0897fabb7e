"""Networks shipped with the repository, in `models/` (one card each in models/README.md),
named by short names in player specs: `net:connect4_dpv` is `models/connect4_dpv.pt`.

A spec's checkpoint is read as a path when it names a file or looks like one (a folder
separator or a `.pt` suffix); any other word is a shipped network's name, and a name that
is not shipped is one clear line listing those that are. `DPV_MODELS` points elsewhere
(a folder of your own networks, or a copy of models/ outside the clone).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from dpv.errors import DPVError

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def models_dir() -> Path:
    env = os.environ.get("DPV_MODELS")
    return Path(env) if env else MODELS_DIR


def shipped_names() -> list[str]:
    """The short names of the networks in the models folder, sorted."""
    d = models_dir()
    return sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []


def looks_like_path(text: str) -> bool:
    return ("/" in text or os.sep in text or text.endswith(".pt") or Path(text).is_file()
            or not _NAME.fullmatch(text))


def resolve_network(text: str) -> str:
    """The checkpoint path a spec's `net:TEXT` means: TEXT itself when it is a path, else the
    shipped network of that name."""
    if looks_like_path(text):
        return text
    path = models_dir() / f"{text}.pt"
    if path.is_file():
        return str(path)
    names = shipped_names()
    known = ", ".join(names) if names else "none"
    raise DPVError(f"no shipped network named {text!r} in {models_dir()} (shipped: {known}); "
                   "give a checkpoint path (e.g. net:runs/x/best.pt) or a shipped name")
