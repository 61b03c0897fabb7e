"""The GTP engine: a scripted GUI-like session, the subprocess protocol, fuzzing, resignation."""
import io
import subprocess
import sys

import numpy as np
import pytest

from dpv.config import GameConfig
from dpv.play.experiments import untrained_checkpoint
from dpv.play.gtp import GTPEngine
from dpv.play.gtp_protocol import read_reply
from dpv.players.spec import make_player

GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=324)


def engine(spec="random", cfg=GO9, **kw):
    return GTPEngine(lambda c: make_player(spec, c, seed=0), cfg, **kw)


def ask(e, line):
    answer = e.handle(line)
    assert answer.endswith("\n\n")
    return answer[:-2]


def test_scripted_gui_session():
    e = engine()
    assert ask(e, "protocol_version") == "= 2"
    assert ask(e, "7 name") == "=7 DPV"
    commands = ask(e, "list_commands").split("\n")
    for c in ("protocol_version", "name", "version", "known_command", "list_commands", "boardsize",
              "clear_board", "komi", "play", "genmove", "undo", "showboard", "final_score", "quit",
              "time_settings", "time_left"):
        assert c in [commands[0][2:]] + commands[1:], c
    assert ask(e, "known_command genmove") == "= true"
    assert ask(e, "known_command lz-analyze") == "= false"
    assert ask(e, "boardsize 9") == "="
    assert ask(e, "clear_board") == "="
    assert ask(e, "komi 6.5") == "="
    assert ask(e, "time_settings 300 30 5") == "="
    assert ask(e, "time_left b 290 0") == "="
    assert ask(e, "play B D4") == "="
    assert ask(e, "play black E5") == "="  # same colour twice: White passed in between
    assert e.state.history() == [30, 81, 40]
    move = ask(e, "genmove w")
    assert move.startswith("= ") and e.state.history()[-1] != 40
    assert ask(e, "play w D4") == "? illegal move"  # occupied: rejected, position unchanged
    before = e.state.history()
    reply = ask(e, "genmove b")  # and play goes on after the rejected move
    assert reply.startswith("= ") and len(e.state.history()) == len(before) + 1
    assert ask(e, "undo") == "=" and e.state.history() == before
    board = ask(e, "showboard")
    assert board.startswith("= \n   A B C D E F G H J\n 9 ") and "\n\n" not in board
    assert ask(e, "final_score") == "= " + e._judgement().score.result
    assert ask(e, "play w Z9") == "? invalid vertex"
    assert ask(e, "play x D5") == "? invalid color"
    assert ask(e, "boardsize 10") == "? unacceptable size"
    assert ask(e, "quit") == "=" and e.finished


def test_two_passes_end_the_game_and_final_score_is_area_with_komi():
    e = engine(cfg=GameConfig(board_size=5, komi=0.5, max_game_length=100))
    for line in ("play b C3", "play w pass", "play b pass"):
        assert ask(e, line) == "="
    assert ask(e, "final_score") == "= B+24.5"
    assert ask(e, "genmove w") == "= pass"  # game over: nothing left to play
    assert ask(e, "final_status_list dead") == "="
    assert ask(e, "final_status_list alive") == "= C3"


def test_boardsize_switches_the_player_to_the_new_board():
    e = engine()
    assert ask(e, "boardsize 5") == "="
    assert ask(e, "play b C3") == "=" and e.state.history() == [12]
    assert ask(e, "genmove w").startswith("= ")


def test_net_engine_refuses_another_board_and_resigns_below_threshold(tmp_path):
    ckpt = untrained_checkpoint("configs/go9.yaml", tmp_path / "go9.pt")
    spec = f"net:{ckpt},mode=fixed,sims=2"
    e = engine(spec)
    assert ask(e, "boardsize 7").startswith("? unacceptable size (board size mismatch")
    assert ask(e, "genmove b").startswith("= ")  # still serving 9x9
    # an untrained value head never reaches 1.0, so a threshold of 1.0 always resigns
    quitter = engine(spec, resign_threshold=1.0)
    assert ask(quitter, "genmove b") == "= resign"
    assert quitter.state.history() == []


def _run_engine(lines, *args):
    proc = subprocess.run([sys.executable, "-m", "dpv.gtp", *args], input="".join(lines),
                          capture_output=True, text=True, timeout=900)  # only catches hangs
    return proc


def test_subprocess_engine_answers_with_ids_and_quits_cleanly():
    proc = _run_engine(["1 protocol_version\n", "# a comment\n", "\n", "2 boardsize 9\n",
                        "3 play b C3\n", "4 genmove w\n", "5 quit\n"], "--player", "random")
    assert proc.returncode == 0, proc.stderr
    answers = proc.stdout.split("\n\n")[:-1]
    assert answers[0] == "=1 2" and answers[1] == "=2" and answers[2] == "=3"
    assert answers[3].startswith("=4 ") and answers[4] == "=5"


def _malformed(rng: np.random.Generator) -> str:
    junk = "".join(chr(c) for c in rng.integers(33, 127, size=rng.integers(1, 12)))
    choices = [
        f"x{junk}",
        f"play {rng.choice(['x', 'blue', '', 'bb'])} D4",
        f"play b {rng.choice(['Z9', 'I5', 'A0', 'A10', 'pas', '', '44', 'D4 E5'])}",
        f"genmove {rng.choice(['', 'x', 'b w', '3'])}",
        f"boardsize {rng.choice(['', '0', '-1', '25', 'abc', '9 9', '1e9'])}",
        f"komi {rng.choice(['', 'abc', 'nan', 'inf', '1e9', '6.5 7'])}",
        f"known_command {rng.choice(['', 'a b'])}",
        f"final_status_list {rng.choice(['', 'maybe'])}",
        f"time_settings {rng.choice(['', '1 2', 'a b c'])}",
        f"time_left {rng.choice(['', 'b 10', 'q 1 2', 'b x 0'])}",
        f"kgs-time_settings {rng.choice(['', 'fischer 1', 'byoyomi 1 2'])}",
        f"lz-analyze {rng.choice(['-1', 'b -5', '10 avoid', 'x y z'])}",
        f"kata-analyze {rng.choice(['-2', '10 ownership maybe'])}",
        f"loadsgf {rng.choice(['', '/nonexistent/x.sgf', 'a b c'])}",
        f"set_free_handicap {rng.choice(['', 'A1', 'Z9 A1', 'A1 A1'])}",
        f"printsgf a b",
        f"{rng.integers(1000)} {junk}zz",
        f"\x01\x02genmove",
        "ñandú " + junk,
        "play " + "b " * int(rng.integers(2, 50)),
    ]
    return str(choices[int(rng.integers(len(choices)))])


def _valid(rng: np.random.Generator) -> str:
    """Commands a GUI sends; some fail by the rules (an occupied point, nothing to undo)."""
    col = "ABCDEFGHJ"[int(rng.integers(9))]
    vertex = f"{col}{int(rng.integers(1, 10))}"
    choices = [
        f"play {rng.choice(['b', 'w'])} {vertex}", f"play {rng.choice(['b', 'w'])} {vertex}",
        f"genmove {rng.choice(['b', 'w'])}", "undo", "showboard", "showboard", "printsgf",
        "lz-analyze 1", "kata-analyze 1 maxmoves 3", "lz-genmove_analyze 1", "kata-analyze b 2",
        "final_score", "final_status_list dead", "clear_board", "boardsize 9", "komi 7.5",
        "kgs-time_settings none", "time_settings 0 1 0", "time_left w 100 0",
        "fixed_handicap 2", "known_command play", "list_commands", "name", "version",
    ]
    return str(choices[int(rng.integers(len(choices)))])


def test_fuzz_1000_commands_read_strictly_stay_in_step(tmp_path):
    """Half malformed (each must be '?'), half valid GUI commands with ids (showboard and the
    analysis commands among them); every reply is read strictly and matched to its command."""
    ckpt = untrained_checkpoint("configs/go9.yaml", tmp_path / "go9.pt")
    rng = np.random.default_rng(0)
    commands = []
    for i in range(1000):
        if rng.random() < 0.5:
            commands.append((None, _malformed(rng)))
        else:
            commands.append((str(i + 1), f"{i + 1} {_valid(rng)}"))
    proc = _run_engine([c + "\n" for _, c in commands] + ["protocol_version\n", "quit\n"],
                       "--checkpoint", str(ckpt), "--sims", "2")
    assert proc.returncode == 0, proc.stderr[-500:]
    stream = io.StringIO(proc.stdout)
    replies = []
    while (r := read_reply(stream)) is not None:
        replies.append(r)
    assert len(replies) == 1002
    for (ident, line), reply in zip(commands, replies):
        if ident is None:
            assert not reply.ok, (line, reply)
        else:
            assert reply.ident == ident, (line, reply)
        assert "internal error" not in reply.text, (line, reply)
    valid = [(c, r) for (i, c), r in zip(commands, replies) if i is not None]
    assert sum(r.ok for _, r in valid) > len(valid) / 2  # most valid commands succeed
    shown = [r for c, r in valid if c.endswith(" showboard")]
    assert shown and all(r.text.startswith("\n   A B C D E F G H J") for r in shown)
    analysed = [r for c, r in valid if "analyze" in c and r.ok]
    assert any("info move" in r.text for r in analysed)
    assert replies[-2].text == "2" and replies[-1].ok


def test_unreadable_checkpoint_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = _run_engine(["quit\n"], "--checkpoint", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: checkpoint")
