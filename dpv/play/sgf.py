"""SGF FF[4] records of Go games: write a game record, read one back, replay it into the
game adapter (to resume analysis or check a record).

Only what game records need: a root node with game properties and one main line of B/W
moves (variations are skipped, the first line is followed). OpenSpiel's Go has no setup-stone
API, so of the setup properties only Black stones in the root (AB, a handicap) are kept and
replayed as a handicap position (`dpv.play.gtp_handicap`: Black stones with White passing
between them); AW, AE, and setup stones after the root are refused with a one-line reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dpv.config import GameConfig
from dpv.errors import DPVError

SGF_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class SGFError(DPVError):
    pass


def escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("]", "\\]")


def action_to_sgf(action: int, size: int) -> str:
    """SGF point: column letter, then row letter counted from the top; pass is empty."""
    if action == size * size:
        return ""
    row, col = divmod(action, size)
    return SGF_LETTERS[col] + SGF_LETTERS[size - 1 - row]


def sgf_to_action(point: str, size: int) -> int:
    if point == "" or (point == "tt" and size <= 19):
        return size * size
    if len(point) != 2 or any(c not in SGF_LETTERS[:size] for c in point):
        raise SGFError(f"SGF point {point!r} is off a {size}x{size} board")
    col = SGF_LETTERS.index(point[0])
    row = size - 1 - SGF_LETTERS.index(point[1])
    return row * size + col


@dataclass
class SGFGame:
    size: int
    komi: float
    moves: list[tuple[int, int]] = field(default_factory=list)  # (colour 0=B/1=W, action)
    properties: dict[str, str] = field(default_factory=dict)  # root properties (first value)
    comments: dict[int, str] = field(default_factory=dict)  # move number (1-based) -> C[]
    setup_black: list[int] = field(default_factory=list)  # AB of the root: handicap stones

    @property
    def result(self) -> str | None:
        return self.properties.get("RE")


def write_sgf(
    moves: list[int],
    size: int,
    komi: float,
    black: str = "Black",
    white: str = "White",
    result: str | None = None,
    rules: str = "Chinese",
    comment: str = "",
    move_comments: dict[int, str] | None = None,
    date: str | None = None,
    extra: dict[str, str] | None = None,
    setup_black: list[int] | None = None,
    first_colour: int = 0,
) -> str:
    """One game as SGF text; moves alternate from `first_colour` (0 Black, 1 White: after
    handicap stones, given as `setup_black`, White moves first); move_comments keys are
    1-based."""
    props = [("FF", "4"), ("GM", "1"), ("CA", "UTF-8"), ("AP", "DPV:0.1"), ("SZ", str(size)),
             ("KM", f"{komi:g}"), ("RU", rules), ("PB", black), ("PW", white)]
    if result is not None:
        props.append(("RE", result))
    if date:
        props.append(("DT", date))
    for k, v in (extra or {}).items():
        props.append((k, v))
    if comment:
        props.append(("C", comment))
    root = "".join(f"{k}[{escape(v)}]" for k, v in props)
    if setup_black:
        root += f"HA[{len(setup_black)}]AB" + "".join(f"[{action_to_sgf(a, size)}]" for a in setup_black)
    if first_colour:
        root += "PL[W]"
    out = ["(;" + root]
    notes = move_comments or {}
    for i, a in enumerate(moves):
        node = f";{'BW'[(i + first_colour) % 2]}[{action_to_sgf(a, size)}]"
        if i + 1 in notes:
            node += f"C[{escape(notes[i + 1])}]"
        out.append(node)
    return "\n".join(out) + ")\n"


def _tokens(text: str):
    """Yield ('(' | ')' | ';') or ('prop', ident, [values]) from SGF text."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "();":
            yield (c,)
            i += 1
        elif c.isspace():
            i += 1
        elif c.isalpha():
            j = i
            while j < n and text[j].isalpha():
                j += 1
            ident = "".join(ch for ch in text[i:j] if ch.isupper())  # FF[3] allowed lowercase
            values = []
            while True:
                while j < n and text[j].isspace():
                    j += 1
                if j >= n or text[j] != "[":
                    break
                j += 1
                buf = []
                while j < n and text[j] != "]":
                    if text[j] == "\\" and j + 1 < n:
                        j += 1
                        if text[j] == "\n":  # soft line break
                            j += 1
                            continue
                    buf.append(text[j])
                    j += 1
                if j >= n:
                    raise SGFError(f"unterminated value of property {ident}")
                values.append("".join(buf))
                j += 1
            if not values:
                raise SGFError(f"property {ident or text[i:j]!r} has no value")
            yield ("prop", ident, values)
            i = j
        else:
            raise SGFError(f"unexpected character {c!r} at offset {i}")


def parse_sgf(text: str) -> SGFGame:
    """Parse the main line of the first game in `text`."""
    text = text.lstrip("\ufeff")
    start = text.find("(")
    if start < 0 or text.find(";", start) < 0:
        raise SGFError("not an SGF file (no game tree)")
    nodes: list[dict[str, list[str]]] = []
    depth, closed_first_line = 0, False
    for tok in _tokens(text[start:]):
        if tok[0] == "(":
            depth += 1
            if closed_first_line:
                continue
        elif tok[0] == ")":
            depth -= 1
            # the first variation to close ends the main line
            closed_first_line = True
            if depth == 0:
                break
        elif closed_first_line:
            continue
        elif tok[0] == ";":
            nodes.append({})
        else:
            _, ident, values = tok
            if not nodes:
                raise SGFError("property before the first node")
            nodes[-1].setdefault(ident, []).extend(values)
    if not nodes:
        raise SGFError("SGF game tree has no nodes")
    root = nodes[0]
    if root.get("GM", ["1"])[0].strip() != "1":
        raise SGFError(f"SGF game GM[{root['GM'][0]}] is not Go (GM[1])")
    size_text = root.get("SZ", ["19"])[0].strip()
    if not size_text.isdigit():
        raise SGFError(f"SGF board size SZ[{size_text}] is not a square board size")
    size = int(size_text)
    try:
        komi = float(root.get("KM", ["0"])[0] or 0)
    except ValueError:
        raise SGFError(f"SGF komi KM[{root['KM'][0]}] is not a number") from None
    game = SGFGame(size=size, komi=komi, properties={k: v[0] for k, v in root.items()})
    for i, node in enumerate(nodes):
        for setup in ("AB", "AW", "AE"):
            if setup not in node:
                continue
            if setup == "AB" and i == 0 and "B" not in node and "W" not in node:
                game.setup_black = [sgf_to_action(p.strip(), size) for p in _points(node["AB"], size)]
                continue
            what = {"AB": "AB (black stones) after the start", "AW": "AW (white stones)",
                    "AE": "AE (cleared points)"}[setup]
            raise SGFError(f"SGF setup {what} cannot be replayed: OpenSpiel's Go has no "
                           "setup-stone API (only Black handicap stones, AB in the root, are mapped)")
        if i == 0 and "B" not in node and "W" not in node:
            continue
        for colour, key in enumerate("BW"):
            if key in node:
                game.moves.append((colour, sgf_to_action(node[key][0].strip(), size)))
                if "C" in node:
                    game.comments[len(game.moves)] = node["C"][0]
    return game


def _points(values: list[str], size: int) -> list[str]:
    """SGF point values, compressed rectangles ('aa:cc') expanded."""
    out = []
    for v in values:
        if ":" not in v:
            out.append(v)
            continue
        a, b = v.split(":", 1)
        if len(a) != 2 or len(b) != 2:
            raise SGFError(f"SGF point list {v!r} is not a rectangle of two points")
        cols = sorted((SGF_LETTERS.index(a[0]), SGF_LETTERS.index(b[0])))
        rows = sorted((SGF_LETTERS.index(a[1]), SGF_LETTERS.index(b[1])))
        out += [SGF_LETTERS[c] + SGF_LETTERS[r] for r in range(rows[0], rows[1] + 1)
                for c in range(cols[0], cols[1] + 1)]
    return out


def read_sgf(path: str | Path) -> SGFGame:
    p = Path(path)
    if not p.is_file():
        raise SGFError(f"SGF file not found: {p}")
    try:
        return parse_sgf(p.read_text(encoding="utf-8", errors="replace"))
    except SGFError as e:
        raise SGFError(f"{p}: {e}") from None


def setup_moves(stones: list[int], size: int) -> list[int]:
    """Handicap stones as moves: Black plays each, White passes in between (OpenSpiel's Go
    has no setup stones); White is to move after them."""
    if len(set(stones)) != len(stones):
        raise SGFError("SGF setup stones name a point twice")
    moves: list[int] = []
    for a in stones:
        if moves:
            moves.append(size * size)
        moves.append(a)
    return moves


def replay(sgf: SGFGame, game_cfg: GameConfig | None = None):
    """Replay a record into the game adapter; returns the final state. The board size and
    komi come from the record unless `game_cfg` is given (then they must agree on size).
    Handicap stones (AB) are played first as `setup_moves`."""
    from dpv.games import make_game

    if game_cfg is None:
        game_cfg = GameConfig(name="go", board_size=sgf.size, komi=sgf.komi,
                              max_game_length=max(4 * sgf.size * sgf.size, len(sgf.moves)))
    elif game_cfg.board_size != sgf.size:
        raise SGFError(f"board size mismatch: record is {sgf.size}x{sgf.size}, "
                       f"game is {game_cfg.board_size}x{game_cfg.board_size}")
    state = make_game(game_cfg).new_state()
    pass_action = sgf.size * sgf.size
    for action in setup_moves(sgf.setup_black, sgf.size):
        state.apply(action)
    for n, (colour, action) in enumerate(sgf.moves, 1):
        if colour != state.current_player():
            # same colour twice (handicap-style records): the other side passed in between
            if state.history()[-1:] == [pass_action]:
                raise SGFError(f"move {n}: same colour twice right after a pass cannot be replayed")
            state.apply(pass_action)
        if not state.is_legal(action):
            raise SGFError(f"move {n} ({'BW'[colour]}[{action_to_sgf(action, sgf.size)}]) is illegal")
        state.apply(action)
    return state
