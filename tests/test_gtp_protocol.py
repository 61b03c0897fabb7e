"""GTP framing and the strict reader: no reply holds an empty line, ids come back, a
controller that reads to the first empty line stays in step."""
import io

from dpv.play.gtp_protocol import Command, frame, parse_command, read_reply


def test_parse_strips_comments_control_characters_and_takes_the_id():
    assert parse_command("  12 play\tb D4 # a comment\n") == Command("12", "play", ["b", "D4"])
    assert parse_command("\x01\x02genmove b") == Command("", "genmove", ["b"])
    assert parse_command("# only a comment") is None and parse_command("\n") is None
    assert parse_command("7") == Command("7", "", [])


def test_frame_never_lets_an_empty_line_into_a_reply():
    assert frame("", True) == "=\n\n"
    assert frame("3", True, "D4") == "=3 D4\n\n"
    board = frame("", True, "\n   A B\n\n 2 . . 2\n")
    assert board == "= \n   A B\n 2 . . 2\n\n"  # GNU Go's '= ' then the board
    assert frame("9", False, "line one\nline two") == "?9 line one line two\n\n"
    for text in ("a\n\n\nb", "\n\n", "x\r\n\r\ny", "  \n  \n"):
        reply = frame("1", True, text)
        assert "\n\n" not in reply[:-2] and reply.endswith("\n\n")


def test_strict_reader_reads_reply_by_reply():
    stream = io.StringIO("=1 2\n\n= \n   A B\n 2 . . 2\n\n?3 illegal move\n\n=4\n\n")
    replies = []
    while (r := read_reply(stream)) is not None:
        replies.append(r)
    assert [(r.ok, r.ident, r.text) for r in replies] == [
        (True, "1", "2"), (True, "", "\n   A B\n 2 . . 2"), (False, "3", "illegal move"),
        (True, "4", "")]


# ---------------------------------------------------------------- a whole session, read strictly
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from dpv.play.experiments import untrained_checkpoint  # noqa: E402

# command -> (valid line, expect ok?), (invalid line, expect ok?); None: either answer is fine
# (the command ignores arguments). Played in this order, so each valid line finds the
# position it needs (an empty board for handicap, a move to undo ...).
CASES = {
    "protocol_version": [("protocol_version", True), ("protocol_version extra", None)],
    "name": [("name", True), ("name extra", None)],
    "version": [("version", True), ("version extra", None)],
    "known_command": [("known_command lz-analyze", True), ("known_command", False)],
    "list_commands": [("list_commands", True), ("list_commands extra", None)],
    "boardsize": [("boardsize 9", True), ("boardsize 10", False)],
    "clear_board": [("clear_board", True), ("clear_board extra", None)],
    "komi": [("komi 6.5", True), ("komi lots", False)],
    "fixed_handicap": [("fixed_handicap 2", True), ("fixed_handicap 2", False)],  # not empty now
    "place_free_handicap": [("clear_board", True), ("place_free_handicap 3", True),
                            ("place_free_handicap x", False)],
    "set_free_handicap": [("clear_board", True), ("set_free_handicap C3 G7", True),
                          ("set_free_handicap Z9 A1", False)],
    "loadsgf": [("loadsgf {sgf}", True), ("loadsgf {sgf}.missing", False)],
    "play": [("play w G3", True), ("play w G3", False)],  # after the loaded B E5, W D4, B C3
    "genmove": [("genmove b", True), ("genmove purple", False)],
    "kgs-genmove_cleanup": [("kgs-genmove_cleanup w", True), ("kgs-genmove_cleanup", False)],
    "undo": [("undo", True), ("clear_board", True), ("undo", False)],
    "time_settings": [("time_settings 0 1 1", True), ("time_settings a b c", False)],
    "kgs-time_settings": [("kgs-time_settings none", True), ("kgs-time_settings fischer 1", False)],
    "time_left": [("time_left b 30 0", True), ("time_left q 1 2", False)],
    "showboard": [("play b D4", True), ("showboard", True), ("showboard extra", None)],
    "printsgf": [("printsgf", True), ("printsgf a b", False)],
    "final_score": [("final_score", True), ("final_score extra", None)],
    "final_status_list": [("final_status_list dead", True), ("final_status_list maybe", False)],
    "lz-analyze": [("lz-analyze 5", True), ("lz-analyze -1", False)],
    "lz-genmove_analyze": [("lz-genmove_analyze w 5", True), ("lz-genmove_analyze w -1", False)],
    "kata-analyze": [("kata-analyze 5", True), ("kata-analyze 5 ownership maybe", False)],
    "kata-genmove_analyze": [("kata-genmove_analyze b 5", True), ("kata-genmove_analyze b x", False)],
    "quit": [("quit", True)],
}


@pytest.fixture(scope="module")
def net_ckpt(tmp_path_factory):
    return untrained_checkpoint("configs/go9.yaml", tmp_path_factory.mktemp("ck") / "go9.pt")


def _engine_session(lines, *args):
    """Send every line at once (ids 1..n) and read the replies strictly."""
    proc = subprocess.run([sys.executable, "-m", "dpv.gtp", *args], capture_output=True, text=True,
                          input="".join(f"{i} {line}\n" for i, line in enumerate(lines, 1)),
                          timeout=600)
    stream = io.StringIO(proc.stdout)
    replies = []
    while (r := read_reply(stream)) is not None:
        replies.append(r)
    return proc, replies


def test_every_listed_command_valid_and_invalid_keeps_a_strict_reader_in_step(net_ckpt, tmp_path):
    sgf = tmp_path / "g.sgf"
    sgf.write_text("(;GM[1]FF[4]SZ[9]KM[7.5];B[ee];W[dd];B[cc])")
    args = ["--checkpoint", str(net_ckpt), "--mode", "dynamic", "--n-ref", "4", "--tau0", "0.3"]
    listed = _engine_session(["list_commands", "quit"], *args)[1][0].text.split("\n")
    assert set(listed) == set(CASES), set(listed) ^ set(CASES)  # every command has its cases
    steps = [step for name in listed if name != "quit" for step in CASES[name]] + CASES["quit"]
    lines = [line.format(sgf=sgf) for line, _ in steps]
    proc, replies = _engine_session(lines, *args)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert [r.ident for r in replies] == [str(i) for i in range(1, len(lines) + 1)]
    for (line, ok), reply in zip(steps, replies):
        assert ok is None or reply.ok == ok, (line, reply)
        assert "internal error" not in reply.text, (line, reply)
    by_line = dict(zip(lines, replies))
    assert by_line["name"].text == "DPV" and by_line["protocol_version"].text == "2"
    assert by_line["showboard"].text.startswith("\n   A B C D E F G H J\n 9 ")
    assert by_line["printsgf"].text.startswith("(;FF[4]GM[1]")
    assert by_line["lz-genmove_analyze w 5"].text.split("\n")[-1].startswith("play ")
