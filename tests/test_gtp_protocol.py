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
