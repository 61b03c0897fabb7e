"""GTP vertices <-> action indices. GTP columns skip the letter I; row 1 is the bottom row.

Action index = row * size + col with row 0 = rank 1 (OpenSpiel's Go layout); size*size = pass.
"""
from __future__ import annotations

GTP_COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"


def action_to_vertex(action: int, size: int) -> str:
    if action == size * size:
        return "pass"
    if not 0 <= action < size * size:
        raise ValueError(f"action {action} is off a {size}x{size} board")
    row, col = divmod(action, size)
    return f"{GTP_COLUMNS[col]}{row + 1}"


def vertex_to_action(vertex: str, size: int) -> int:
    """Parse a GTP vertex ('D4', 'pass'); ValueError names the vertex if it is off the board."""
    v = vertex.strip().upper()
    if v == "PASS":
        return size * size
    if len(v) < 2 or v[0] not in GTP_COLUMNS[:size] or not v[1:].isdigit():
        raise ValueError(f"invalid vertex {vertex!r} for a {size}x{size} board")
    col = GTP_COLUMNS.index(v[0])
    row = int(v[1:]) - 1
    if not 0 <= row < size:
        raise ValueError(f"invalid vertex {vertex!r} for a {size}x{size} board")
    return row * size + col
