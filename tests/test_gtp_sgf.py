"""loadsgf / printsgf: arena records load back and print the same moves, GNU Go reads what
printsgf writes, handicap stones travel as AB, sgf2dg renders arena records, and bad files
are one '?' line with the position unchanged."""
import os
import shutil
import subprocess
import sys

import pytest

from dpv.config import GameConfig
from dpv.play.experiments import untrained_checkpoint
from dpv.play.gtp import GTPEngine
from dpv.play.sgf import parse_sgf, read_sgf
from dpv.players.spec import make_player

GNUGO = "/usr/games/gnugo"
GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=324)
needs_gnugo = pytest.mark.skipif(not os.path.exists(GNUGO), reason="GNU Go not installed")


@pytest.fixture(scope="module")
def arena_sgf(tmp_path_factory):
    """A record written by the arena itself (random against random, one game)."""
    out = tmp_path_factory.mktemp("arena")
    subprocess.run([sys.executable, "-m", "dpv.arena", "--a", "random", "--b", "random",
                    "--games", "1", "--board", "9", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out / "game_0001.sgf"


def engine(spec="random", cfg=GO9):
    return GTPEngine(lambda c: make_player(spec, c, seed=0), cfg)


def ask(e, line):
    answer = e.handle(line)
    assert answer.endswith("\n\n") and "\n\n" not in answer[:-2]
    return answer[:-2]


def gnugo(lines):
    out = subprocess.run([GNUGO, "--mode", "gtp", "--chinese-rules"], capture_output=True, text=True,
                         input="\n".join(lines + ["quit"]) + "\n", timeout=60).stdout
    return out.split("\n\n")


def our_stones(e):
    from dpv.games.coords import action_to_vertex
    black, white = e.game.stones(e.state.spiel_state)
    return [{action_to_vertex(int(i), 9) for i in x.reshape(-1).nonzero()[0]} for x in (black, white)]


def test_arena_record_loads_and_prints_back_the_same_moves(arena_sgf, tmp_path):
    record = read_sgf(arena_sgf)
    e = engine()
    colour = ask(e, f"loadsgf {arena_sgf}")
    assert e.state.history() == [a for _, a in record.moves]
    assert colour == "= " + ("black" if e.state.current_player() == 0 else "white")
    printed = ask(e, "printsgf")[2:]
    assert [a for _, a in parse_sgf(printed).moves] == e.state.history()
    assert ask(e, f"printsgf {tmp_path / 'again.sgf'}") == "="
    again = engine()
    ask(again, f"loadsgf {tmp_path / 'again.sgf'}")
    assert again.state.history() == e.state.history()


def test_loadsgf_move_number_is_the_position_before_that_move(arena_sgf):
    e = engine()
    assert ask(e, f"loadsgf {arena_sgf} 10") == "= white"  # nine moves played: White to move
    assert e.state.history() == [a for _, a in read_sgf(arena_sgf).moves[:9]]


@needs_gnugo
def test_gnugo_loads_printsgf_output(arena_sgf, tmp_path):
    e = engine()
    ask(e, f"loadsgf {arena_sgf} 40")
    path = tmp_path / "ours.sgf"
    ask(e, f"printsgf {path}")
    replies = gnugo([f"loadsgf {path}", "list_stones black", "list_stones white"])
    assert replies[0] == "= " + ("black" if e.state.current_player() == 0 else "white")
    assert [set(r[2:].split()) for r in replies[1:3]] == our_stones(e)


@needs_gnugo
def test_handicap_stones_are_written_as_ab_and_gnugo_reads_them(tmp_path):
    e = engine()
    assert ask(e, "fixed_handicap 3") == "= C3 G7 C7"
    assert ask(e, "play w E5") == "=" and ask(e, "undo") == "=" and ask(e, "undo") == "? cannot undo"
    ask(e, "play w E5")
    text = ask(e, "printsgf")[2:]
    assert "HA[3]AB[cg][gc][cc]" in text and ";W[ee]" in text and ";B[" not in text
    path = tmp_path / "h3.sgf"
    path.write_text(text)
    replies = gnugo([f"loadsgf {path}", "list_stones black", "list_stones white"])
    assert replies[0] == "= black"
    assert [set(r[2:].split()) for r in replies[1:3]] == our_stones(e) == [{"C3", "G7", "C7"}, {"E5"}]
    loaded = engine()
    assert ask(loaded, f"loadsgf {path}") == "= black"
    assert our_stones(loaded) == our_stones(e) and loaded.setup == e.setup == 5


def test_white_setup_stones_are_refused_with_one_line(tmp_path):
    path = tmp_path / "aw.sgf"
    path.write_text("(;GM[1]FF[4]SZ[9]AB[cc]AW[dd])")
    e = engine()
    ask(e, "play b E5")
    reply = ask(e, f"loadsgf {path}")
    assert reply.startswith("? cannot load") and "AW (white stones) cannot be replayed" in reply
    assert e.state.history() == [40]


def test_bad_sgf_files_are_refused_and_change_nothing(tmp_path, arena_sgf):
    corrupt = tmp_path / "corrupt.sgf"
    corrupt.write_text("(;GM[1]SZ[9];B[ee];W[ee")
    odd = tmp_path / "size8.sgf"
    odd.write_text("(;GM[1]SZ[8];B[dd])")
    e = engine()
    ask(e, "play b D4")
    for line, message in [
        (f"loadsgf {tmp_path / 'missing.sgf'}", "SGF file not found"),
        (f"loadsgf {corrupt}", "unterminated value"),
        (f"loadsgf {odd}", "8 is not a supported Go board size"),
        (f"loadsgf {arena_sgf} 0", "move numbers start at 1"),
        ("loadsgf", "syntax error"),
    ]:
        reply = ask(e, line)
        assert reply.startswith("?") and message in reply, (line, reply)
        assert e.state.history() == [30]
    assert ask(e, "name") == "= DPV"


def test_net_engine_refuses_an_sgf_of_another_board_size(tmp_path):
    ckpt = untrained_checkpoint("configs/go9.yaml", tmp_path / "go9.pt")
    small = tmp_path / "seven.sgf"
    small.write_text("(;GM[1]FF[4]SZ[7]KM[7.5];B[dd];W[cc])")
    e = engine(f"net:{ckpt},mode=fixed,sims=2")
    ask(e, "play b C3")
    reply = ask(e, f"loadsgf {small}")
    assert reply.startswith(f"? cannot load {small}: ") and "board size mismatch" in reply
    assert e.state.history() == [20] and e.cfg.board_size == 9
    assert ask(e, "genmove w").startswith("= ")  # still serving 9x9


@pytest.mark.skipif(shutil.which("sgf2dg") is None, reason="sgf2dg not installed (apt-get install sgf2dg)")
def test_sgf2dg_renders_an_arena_record(arena_sgf, tmp_path):
    shutil.copy(arena_sgf, tmp_path / "game.sgf")
    proc = subprocess.run(["sgf2dg", "-converter", "PDF", "game.sgf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-300:]
    assert (tmp_path / "game.pdf").read_bytes()[:5] == b"%PDF-"
