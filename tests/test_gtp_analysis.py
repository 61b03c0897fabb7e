"""Live analysis: lz-analyze / kata-analyze lines, their genmove forms, the lcb formula, the
exit share field, the rounds that grow one tree, and bad arguments."""
import re
import subprocess
import sys
import time

import pytest
import torch

from dpv.config import GameConfig
from dpv.play.experiments import untrained_checkpoint
from dpv.play.gtp import GTPEngine
from dpv.play.gtp_analysis import AnalysisError, AnalysisRequest, lcb, parse_request
from dpv.play.gtp_protocol import read_reply
from dpv.players.spec import make_player

GO9 = GameConfig(board_size=9, komi=7.5, max_game_length=324)
# Leela Zero's info group: the fields Lizzie reads, in its order; other key/value pairs may
# come before `pv`, which runs to the next group
LZ_GROUP = re.compile(r"info move (?P<move>[A-HJ-T]\d{1,2}|pass) visits (?P<visits>\d+) "
                      r"winrate (?P<winrate>\d+) prior (?P<prior>\d+) lcb (?P<lcb>\d+) "
                      r"order (?P<order>\d+)(?: [a-zA-Z]+ \S+)*? pv(?: (?:[A-HJ-T]\d{1,2}|pass))+")
_PLAIN = re.sub(r"\(\?P<\w+>", "(?:", LZ_GROUP.pattern)
LZ_LINE = re.compile(rf"^{_PLAIN}(?: {_PLAIN})*$")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI's default: the machine is shared
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return untrained_checkpoint("configs/go9.yaml", tmp_path_factory.mktemp("ck") / "go9.pt")


def engine(ckpt, opts="mode=dynamic,n_ref=24,tau0=0.3,alpha=0.5"):
    return GTPEngine(lambda c: make_player(f"net:{ckpt},{opts}", c, seed=0), GO9)


def for_seconds(seconds):
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


def info_lines(reply):
    head, *lines = reply.rstrip("\n").split("\n")
    assert head == "=" and reply.endswith("\n\n")
    return [ln for ln in lines if ln.startswith("info")]


def total_visits(line):
    return sum(int(m.group("visits")) for m in LZ_GROUP.finditer(line))


@pytest.mark.parametrize("args, expected", [
    (["10"], AnalysisRequest("lz", None, 0.1)),
    (["b", "50"], AnalysisRequest("lz", 0, 0.5)),
    (["W", "0", "maxmoves", "5"], AnalysisRequest("lz", 1, 0.0, max_moves=5)),
    ([], AnalysisRequest("lz", None, 0.0)),
])
def test_lz_analyze_arguments(args, expected):
    assert parse_request("lz-analyze", args) == expected


def test_kata_analyze_takes_interval_and_ownership_keys():
    r = parse_request("kata-analyze", ["b", "interval", "20", "ownership", "true"])
    assert (r.dialect, r.colour, r.interval, r.ownership) == ("kata", 0, 0.2, True)


@pytest.mark.parametrize("args, message", [
    (["-5"], "interval must be >= 0 centiseconds, got -5"),
    (["b", "1.5"], "option '1.5' needs a value"),
    (["10", "avoid", "b"], "option 'avoid' is not supported"),
    (["10", "maxmoves", "x"], "maxmoves must be a whole number"),
])
def test_bad_analysis_arguments_name_the_problem(args, message):
    with pytest.raises(AnalysisError, match=re.escape(message)):
        parse_request("lz-analyze", args)


def test_lcb_is_the_bhatia_davis_bound():
    assert lcb(0.5, 100) == pytest.approx(0.5 - 1.96 * 0.05)
    assert lcb(0.9, 0) == 0.0 and lcb(0.01, 1) == 0.0  # clipped at 0
    assert lcb(1.0, 3) == 1.0  # no spread is possible at a certain win


def test_lz_analyze_reports_growing_trees_in_leela_zeros_format(ckpt):
    e = engine(ckpt)
    e.handle("play b E5")
    reply = e.handle("lz-analyze 10", stop=for_seconds(2.0))
    lines = info_lines(reply)
    assert len(lines) >= 5
    for line in lines:
        assert LZ_LINE.match(line), line[:200]
        groups = list(LZ_GROUP.finditer(line))
        assert [int(g.group("order")) for g in groups] == list(range(len(groups)))
        visits = [int(g.group("visits")) for g in groups]
        assert visits == sorted(visits, reverse=True)
        shares = re.search(r"exitshare (\S+)", line).group(1).split(",")
        assert len(shares) == 3 and abs(sum(int(s) for s in shares) - 10000) <= 3
    totals = [total_visits(line) for line in lines]
    assert all(b > a for a, b in zip(totals, totals[1:])), totals
    assert e.handle("name") == "= DPV\n\n"
    assert e.state.history() == [40]  # analysis plays nothing


def test_first_round_of_analysis_is_the_search_genmove_runs(ckpt):
    opts = "mode=fixed,sims=16,leaves=8"
    analyst, player = engine(ckpt, opts), engine(ckpt, opts)
    sims = lambda: analyst.player.mcts.simulations >= 16  # noqa: E731  (true once round 1 is done)
    line = info_lines(analyst.handle("lz-analyze 0", stop=sims))[-1]  # interval 0: one report at the end
    assert player.handle("genmove b").startswith("= ")
    expected = {(int(a), int(v)) for a, v in enumerate(player.player.last_move.visits) if v > 0}
    got = {(m.group("move"), int(m.group("visits"))) for m in LZ_GROUP.finditer(line)}
    from dpv.games.coords import action_to_vertex
    assert got == {(action_to_vertex(a, 9), v) for a, v in expected}


def test_kata_analyze_has_fractions_and_no_score_lead_without_a_score_head(ckpt):
    e = engine(ckpt)
    lines = info_lines(e.handle("kata-analyze 5 maxmoves 3", stop=for_seconds(0.8)))
    assert lines
    for line in lines:
        groups = line.split(" info ")
        assert len(groups) <= 3
        w = float(re.search(r"winrate (\S+)", line).group(1))
        assert 0.0 <= w <= 1.0 and "scoreLead" not in line and "exitShare" in line


def test_genmove_analyze_reports_then_plays(ckpt):
    e = engine(ckpt)
    reply = e.handle("lz-genmove_analyze b 1")
    *rest, play = reply.rstrip("\n").split("\n")
    assert rest[0] == "=" and play.startswith("play ")
    assert all(LZ_LINE.match(ln) for ln in rest[1:])
    assert len(e.state.history()) == 1 and reply.endswith("\n\n")


def test_bad_analysis_is_one_error_reply_and_changes_nothing(ckpt):
    e = engine(ckpt)
    e.handle("play b D4")
    assert e.handle("lz-analyze -5") == "? syntax error: interval must be >= 0 centiseconds, got -5\n\n"
    assert e.handle("7 lz-analyze b 10").startswith("?7 lz-analyze B: white is to move here")
    assert e.state.history() == [30] and e.handle("name") == "= DPV\n\n"


def test_random_player_lists_no_analysis():
    e = GTPEngine(lambda c: make_player("random", c), GO9)
    assert e.handle("known_command lz-analyze") == "= false\n\n"
    assert e.handle("lz-analyze 10") == "? unknown command\n\n"


def test_subprocess_analysis_for_two_seconds_then_name(ckpt):
    proc = subprocess.Popen([sys.executable, "-m", "dpv.gtp", "--checkpoint", str(ckpt),
                             "--mode", "dynamic", "--n-ref", "24", "--tau0", "0.3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        proc.stdin.write("1 boardsize 9\n")
        assert read_reply(proc.stdout).ident == "1"
        proc.stdin.write("2 lz-analyze 10\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "=2\n"  # the reply opens at once
        time.sleep(2.0)  # the analysis runs until the next command arrives
        proc.stdin.write("3 name\n4 quit\n")
        proc.stdin.flush()
        infos = []  # the rest of reply 2, read strictly: up to the first empty line
        while (line := proc.stdout.readline()) != "\n":
            assert line, "engine closed its output"
            infos.append(line.rstrip("\n"))
        name, bye = read_reply(proc.stdout), read_reply(proc.stdout)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert len(infos) >= 5 and all(LZ_LINE.match(ln) for ln in infos)
    totals = [total_visits(ln) for ln in infos]
    assert all(b > a for a, b in zip(totals, totals[1:]))
    assert (name.ident, name.text) == ("3", "DPV") and bye.ident == "4"
    assert proc.returncode == 0


# ---------------------------------------------------------------- a network with score and ownership heads
@pytest.fixture(scope="module")
def aux_ckpt(tmp_path_factory):
    import yaml

    d = tmp_path_factory.mktemp("aux")
    cfg = yaml.safe_load(open("configs/go9.yaml"))
    cfg["net"]["aux_heads"] = "last"
    (d / "go9_aux.yaml").write_text(yaml.safe_dump(cfg))
    return untrained_checkpoint(d / "go9_aux.yaml", d / "go9_aux.pt")


def test_kata_analyze_gives_score_lead_and_ownership_from_the_score_head(aux_ckpt):
    e = engine(aux_ckpt)
    e.handle("play b E5")
    line = info_lines(e.handle("kata-analyze 1 maxmoves 4 ownership true", stop=for_seconds(0.6)))[-1]
    groups = line.split(" ownership ")[0].split(" info ")
    assert 1 <= len(groups) <= 4
    aux = e.player.position_aux([e.state.child(0)])[0]  # A1, to check one number exactly
    for g in groups:
        lead = float(re.search(r"scoreLead (\S+)", g).group(1))
        assert float(re.search(r"scoreMean (\S+)", g).group(1)) == lead
        if " move A1 " in f" {g} ":
            assert lead == pytest.approx(-aux.score, abs=1e-3)
    own = [float(v) for v in line.split(" ownership ")[1].split()]
    assert len(own) == 81 and all(-1.0 <= v <= 1.0 for v in own)
    root = e.player.position_aux([e.state])[0].ownership  # the mover's view, rank 1 first
    assert own[:9] == pytest.approx(root[8].tolist(), abs=1e-5)  # KataGo's order: top row first


def test_dead_stones_come_from_the_ownership_head_when_the_net_has_one(aux_ckpt):
    e = engine(aux_ckpt)
    for line in ("play b E5", "play w D4", "play b pass", "play w pass"):
        assert e.handle(line) == "=\n\n"
    own = e.player.position_aux([e.state])[0].black_ownership
    dead = {"E5": own[4, 4] < 0, "D4": own[3, 3] > 0}  # a lone stone is dead where the other side owns it
    expected = " ".join(v for v in ("D4", "E5") if dead[v])
    assert e.handle("final_status_list dead") == (f"= {expected}\n\n" if expected else "=\n\n")
