"""Networks shipped with the repository, in `models/` (one card each in models/README.md),
named by short names in player specs: `net:connect4_dpv` is `models/connect4_dpv.pt`.

A spec's checkpoint is read as a path when it names a file or looks like one (a folder
separator or a `.pt` suffix); any other word is a shipped network's name, and a name that
is not shipped is one clear line listing those that are. `DPV_MODELS` points elsewhere
(a folder of your own networks, or a copy of models/ outside the clone).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from dpv.errors import DPVError, cli_main

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


def fingerprint(path: str | Path) -> dict:
    """What a shipped network answers on the game's initial position at every exit (value,
    policy over the actions, 6 decimals) with the loader of today: written beside the file
    when it ships (NAME.json), and compared by tests/test_shipped_models.py, so a later
    change to the checkpoint format or the network code that would change (or break) a
    shipped network fails a test instead of a user's game."""
    import hashlib

    import numpy as np
    import torch

    from dpv.checkpoint import load_checkpoint, load_policy_value
    from dpv.config import to_dict
    from dpv.games import make_game

    net, game_cfg = load_policy_value(path)
    state = make_game(game_cfg).new_state()
    x = torch.from_numpy(np.asarray(state.observation(), dtype=np.float32)[None])
    exits = []
    with torch.no_grad():
        for k in range(net.num_exits):
            out = net.forward_to(x, k)
            exits.append({"value": round(float(out.value[0]), 6),
                          "policy_logits": [round(float(v), 6) for v in out.policy_logits[0]]})
    return {"file": Path(path).name, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "format_version": int(load_checkpoint(path)["format_version"]),
            "game": to_dict(game_cfg), "net": to_dict(net.config), "initial_position": exits}


def ship(source: str | Path, name: str) -> Path:
    """Copy a trained checkpoint into the models folder as NAME.pt (refused if it does not
    load) and write its fingerprint NAME.json; the card in models/README.md is written by hand."""
    from dpv.checkpoint import atomic_write_bytes, load_policy_value

    if not _NAME.fullmatch(name) or name.endswith(".pt"):
        raise DPVError(f"shipped name {name!r}: use letters, digits, '_', '-' (e.g. go9)")
    load_policy_value(source)  # one clear line for a missing or broken file, before anything is written
    dest = models_dir() / f"{name}.pt"
    atomic_write_bytes(dest, Path(source).read_bytes())
    atomic_write_bytes(dest.with_suffix(".json"), (json.dumps(fingerprint(dest), indent=1) + "\n").encode())
    return dest


@cli_main
def main(argv: list[str] | None = None) -> None:
    """python -m dpv.shipped_models ship RUN/best.pt go9 | fingerprint models/NAME.pt"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m dpv.shipped_models", description="networks shipped in models/")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ship", help="copy a checkpoint into models/ as NAME.pt with its fingerprint")
    s.add_argument("source")
    s.add_argument("name")
    f = sub.add_parser("fingerprint", help="(re)write models/NAME.json for models/NAME.pt")
    f.add_argument("paths", nargs="+")
    args = p.parse_args(argv)
    if args.command == "ship":
        dest = ship(args.source, args.name)
        print(f"wrote {dest} and {dest.with_suffix('.json')}; add its card to {models_dir() / 'README.md'}")
        return
    from dpv.checkpoint import atomic_write_bytes

    for arg in args.paths:
        path = Path(arg)
        atomic_write_bytes(path.with_suffix(".json"), (json.dumps(fingerprint(path), indent=1) + "\n").encode())
        print(f"wrote {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
