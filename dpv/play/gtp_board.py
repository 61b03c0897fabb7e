"""`showboard` as GNU Go draws it: column letters above and below, row numbers on both sides,
`X` Black, `O` White, `.` empty, `+` hoshi, the prisoners each side has taken beside the
board, and (our addition, on the line above them) the side to move.

    = 
       A B C D E F G H J
     9 . . . . . . . . . 9
     ...
     3 . . + . . . + . . 3     BLACK (X) to move
     2 . . . . . . . . . 2     WHITE (O) has captured 0 stones
     1 . . . . . . . . . 1     BLACK (X) has captured 1 stones
       A B C D E F G H J

tests/test_gtp_board.py checks the drawing against GNU Go's own `showboard` on every size.
"""
from __future__ import annotations

import numpy as np

from dpv.games.coords import GTP_COLUMNS

COLOUR_NAMES = ("BLACK (X)", "WHITE (O)")


def is_hoshi(size: int, row: int, col: int) -> bool:
    """GNU Go's star points: 3-3 points on boards up to 11x11, 4-4 points above; the centre
    of odd boards; edge midpoints of odd boards above 11x11; 5x5 has its own five."""
    if size in (2, 4):
        return False
    if size == 3:
        return (row, col) == (1, 1)
    if size == 5:
        return (row, col) in {(1, 1), (1, 3), (2, 2), (3, 1), (3, 3)}
    line = 2 if size <= 11 else 3
    mid = size // 2
    r = min(row, size - 1 - row)
    c = min(col, size - 1 - col)
    if (r, c) == (line, line):
        return True
    if size % 2 == 1 and (r, c) == (mid, mid):
        return True
    return size % 2 == 1 and size > 11 and (r, c) in {(line, mid), (mid, line)}


def captures(game, state) -> tuple[int, int]:
    """(stones Black has captured, stones White has captured) over the game so far, replayed
    from the game's initial position (which holds any handicap stones)."""
    s = game.spiel_game.new_initial_state()
    taken = [0, 0]
    before = [int(x.sum()) for x in game.stones(s)]
    for action in state.history():
        mover = s.current_player()
        s.apply_action(action)
        after = [int(x.sum()) for x in game.stones(s)]
        taken[mover] += max(0, before[1 - mover] - after[1 - mover])
        before = after
    return taken[0], taken[1]


def draw_board(game, state) -> str:
    """The board of a Go `state` as GNU Go's showboard reply text (it starts with a newline,
    so the reply's first line is '= ' and the board follows)."""
    n = game.height
    black, white = (np.asarray(x, dtype=bool) for x in game.stones(state.spiel_state))
    taken_b, taken_w = captures(game, state)
    letters = "   " + " ".join(GTP_COLUMNS[:n])
    notes = {  # row index from the top -> text beside that row, as GNU Go places it
        min(8, n - 2): f"WHITE (O) has captured {taken_w} stones",
        min(9, n - 1): f"BLACK (X) has captured {taken_b} stones",
    }
    if not state.is_terminal():
        notes[min(8, n - 2) - 1] = f"{COLOUR_NAMES[state.current_player()]} to move"
    lines = ["", letters]
    for top in range(n):
        row = n - 1 - top  # action rows count from the bottom (rank 1)
        cells = []
        for col in range(n):
            if black[row, col]:
                cells.append("X")
            elif white[row, col]:
                cells.append("O")
            else:
                cells.append("+" if is_hoshi(n, row, col) else ".")
        line = f"{row + 1:>2} {' '.join(cells)} {row + 1}"
        if top in notes:
            line += "     " + notes[top]
        lines.append(line)
    lines.append(letters)
    return "\n".join(lines)
