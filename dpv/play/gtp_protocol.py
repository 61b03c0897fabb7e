"""GTP 2 framing: what a command line is, what a reply looks like, and how a controller reads
one (GTP 2 spec, sections 2.6-2.11).

A reply is `=[id] text` or `?[id] message`, ended by one empty line. It must never contain an
empty line itself: a controller that reads replies strictly (to the first empty line) would
be one reply out of step for the rest of the session. `frame` guarantees it for any text.
Streaming replies (`lz-analyze`) open with `reply_head` and close with `REPLY_END`.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import IO, Callable

REPLY_END = "\n"  # written after a reply's last line: that line's newline + this = one empty line


@dataclass(frozen=True)
class Command:
    ident: str  # '' when the controller sent no id
    name: str
    args: list[str]


def clean_line(line: str) -> str:
    """GTP 2 section 3.1: control characters other than HT and LF are dropped, HT becomes a
    space, and everything after '#' is a comment."""
    line = line.replace("\t", " ")
    line = "".join(ch for ch in line if ch >= " " or ch == "\n")
    return line.split("#", 1)[0].strip()


def parse_command(line: str) -> Command | None:
    """The command on one input line, None for a line with nothing on it. A line holding only
    an id gives a Command with an empty name (answered '? missing command')."""
    text = clean_line(line)
    if not text:
        return None
    parts = text.split()
    ident = parts.pop(0) if parts[0].isdigit() else ""
    if not parts:
        return Command(ident, "", [])
    return Command(ident, parts[0], parts[1:])


def one_line(text: str) -> str:
    """An error message as one line (a DPVError may carry newlines)."""
    return " ".join(str(text).split())


def body_lines(text: str) -> list[str]:
    """The lines of a reply's text, with empty (or blank) lines left out: they would end the
    reply early. A leading newline (GNU Go's showboard starts with one) is kept as an empty
    first line, which follows '= ' on the reply's first line and so is not an empty line."""
    text = str(text).replace("\r", "")
    lines = text.split("\n")
    first, rest = lines[0].rstrip(), [ln.rstrip() for ln in lines[1:]]
    return [first] + [ln for ln in rest if ln.strip()]


def frame(ident: str, ok: bool, text: str = "") -> str:
    """One whole reply: '=id text\\n\\n' / '?id message\\n\\n'; multi-line text keeps its lines."""
    status = "=" if ok else "?"
    if not ok:
        text = one_line(text)
    lines = body_lines(text)
    if lines == [""]:
        return f"{status}{ident}\n\n"
    return f"{status}{ident} " + "\n".join(lines) + "\n\n"


def reply_head(ident: str) -> str:
    """The first line of a streaming reply (Leela Zero's `lz-analyze` answers '=' at once)."""
    return f"={ident}\n"


@dataclass(frozen=True)
class Reply:
    ok: bool
    ident: str
    text: str  # the reply after '=id ' / '?id ', its lines joined by newlines


def read_reply(stream: IO[str]) -> Reply | None:
    """Read one reply strictly: it ends at the first empty line (None at end of stream).
    This is how gogui-twogtp and Sabaki read, so a reply with an empty line inside it shows
    up here as a reply split in two."""
    lines: list[str] = []
    for raw in stream:
        line = raw.rstrip("\n").rstrip("\r")
        if line == "":
            if not lines:  # GTP allows stray empty lines between replies
                continue
            break
        lines.append(line)
    else:
        if not lines:
            return None
    head = lines[0]
    if head[:1] not in ("=", "?"):
        raise ValueError(f"reply does not start with '=' or '?': {head!r}")
    i = 1
    while i < len(head) and head[i].isdigit():
        i += 1
    ident, first = head[1:i], head[i:]
    if first.startswith(" "):
        first = first[1:]
    return Reply(head[0] == "=", ident, "\n".join([first] + lines[1:]))


class LineSource:
    """The controller's lines, read on a thread, so a long-running command (analysis) can
    see that the next command has arrived without blocking on the pipe."""

    def __init__(self, stream: IO[str]):
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._lines.put(line)
        except (OSError, ValueError):  # the pipe went away
            pass
        self._lines.put(None)  # end of input

    def get(self) -> str | None:
        """The next line, waiting for it; None at end of input."""
        return self._lines.get()

    def waiting(self) -> bool:
        """True when a line (or the end of input) is there to be read: a streaming command
        stops for it."""
        return not self._lines.empty()


StopCheck = Callable[[], bool]
