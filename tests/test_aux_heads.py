"""Ownership and score heads (KataGo's auxiliary targets): the targets self-play records, the
heads and their losses, and the formats (checkpoint, replay) that carry them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dpv.checkpoint import (FORMAT_VERSION, load_policy_value, policy_value_payload, save_checkpoint,
                            save_policy_value)
from dpv.config import GameConfig, NetConfig, to_dict
from dpv.errors import CheckpointError, ConfigError
from dpv.games import make_game
from dpv.games.scoring import area_owner, area_score
from dpv.nets import build_policy_value_net, has_aux, predict_aux
from selfplay.config import CONFIG_DIR, load_run_config
from selfplay.learner import Learner
from selfplay.losses import AuxTargets, deep_supervision_loss
from selfplay.replay import BUFFER_FORMAT, ReplayBuffer, SelfPlayGame
from selfplay.targets import finished_game_targets
from selfplay.worker import SelfPlayWorker

PASS5 = 25
# 5x5: Black walls column C, White column D, both pass. Actions are row * 5 + col, row 0 = rank 1.
WALLS = [2, 3, 7, 8, 12, 13, 17, 18, 22, 23, PASS5, PASS5]
# Black owns columns A-C (15 points), White D-E (10): every rank reads B B B W W
WALL_OWNER = np.array([[1, 1, 1, -1, -1]] * 5, dtype=np.int8)


def go5(komi: float):
    cfg = GameConfig(name="go", board_size=5, komi=komi)
    return cfg, make_game(cfg)


def walls_game(komi: float):
    _, game = go5(komi)
    state = game.state_from_actions(WALLS)
    players = [t % 2 for t in range(len(WALLS))]  # Black moves first, then they alternate
    return game, state, players


def test_area_owner_is_the_map_area_scoring_counts():
    _, game = go5(0.5)
    black, white = game.stones(game.state_from_actions(WALLS).spiel_state)
    owner = area_owner(black, white)
    np.testing.assert_array_equal(owner, WALL_OWNER)
    s = area_score(black, white, 0.5)
    assert (s.black, s.white) == ((owner > 0).sum(), (owner < 0).sum()) == (15, 10)
    # an empty region touching both colours is nobody's
    assert area_owner(np.eye(3, dtype=bool), np.flipud(np.eye(3, dtype=bool)) & ~np.eye(3, dtype=bool))[0, 1] == 0


def test_game_gives_final_ownership_of_go_and_none_elsewhere():
    game, state, _ = walls_game(0.5)
    np.testing.assert_array_equal(game.final_ownership(state), WALL_OWNER)
    ttt = make_game(GameConfig(name="tic_tac_toe"))
    assert ttt.final_ownership(ttt.new_state()) is None


def test_ownership_targets_of_a_finished_5x5_game_are_the_owner_map_from_the_movers_view():
    game, state, players = walls_game(0.5)
    t = finished_game_targets(game, state, players)
    assert t.ownership.shape == (12, 5, 5) and t.ownership.dtype == np.int8
    for i, p in enumerate(players):
        np.testing.assert_array_equal(t.ownership[i], WALL_OWNER if p == 0 else -WALL_OWNER)


@pytest.mark.parametrize("komi, margin", [(0.5, 4.5), (5.5, -0.5)])  # Black wins, then White
def test_score_target_is_the_result_margin_with_the_sign_flipped_for_white(komi, margin):
    game, state, players = walls_game(komi)
    assert game.result(state).margin == margin
    t = finished_game_targets(game, state, players)
    np.testing.assert_array_equal(t.score, [margin if p == 0 else -margin for p in players])
    black_won = margin > 0
    np.testing.assert_array_equal(t.values, [1.0 if (p == 0) == black_won else -1.0 for p in players])


def aux_cfg(*sets: str):
    return load_run_config(None, ["net.blocks=3", "net.channels=8", "net.exits=[1,2,3]",
                                  "net.value_hidden=16", "net.aux_heads=last", "mcts.simulations=4",
                                  "selfplay.concurrent_games=2", "selfplay.pass_after=0",
                                  "game.max_game_length=16", *sets], board=5)


def test_self_play_records_ownership_and_score_that_agree_with_each_other():
    cfg = aux_cfg()
    games = SelfPlayWorker(cfg, seed=3).play(moves=16).games  # every game ends by move 16
    assert games
    for g in games:
        assert g.ownership.shape == (len(g), 5, 5) and g.score.shape == (len(g),)
        # one final map from alternating views; Black's margin = its area - White's - komi
        np.testing.assert_array_equal(g.ownership[1::2], -g.ownership[0::2][: len(g) // 2])
        assert g.score[0] == pytest.approx(float(g.ownership[0].sum()) - cfg.game.komi)
        np.testing.assert_array_equal(g.score[1::2], -g.score[0::2][: len(g) // 2])


def small_net(aux: str, game=None):
    torch.manual_seed(0)
    game = game or go5(7.5)[1]
    return build_policy_value_net(NetConfig(blocks=3, channels=8, exits=(1, 2, 3), value_hidden=16,
                                            aux_heads=aux), game)


@pytest.mark.parametrize("aux, with_heads", [("none", []), ("last", [2]), ("all", [0, 1, 2])])
def test_aux_heads_sit_on_the_exits_the_config_names(aux, with_heads):
    net = small_net(aux)
    outs = net(torch.zeros(2, 17, 5, 5))
    assert [k for k, o in enumerate(outs) if o.ownership is not None] == with_heads
    for k in with_heads:
        assert outs[k].ownership.shape == (2, 25) and outs[k].score.shape == (2,)
        assert outs[k].ownership.abs().max() <= 1
    assert [has_aux(net, k) for k in range(3)] == [k in with_heads for k in range(3)]


def test_aux_heads_are_refused_for_a_game_without_territory():
    with pytest.raises(ConfigError, match="net.aux_heads"):
        small_net("last", make_game(GameConfig(name="tic_tac_toe")))


def test_the_staged_forward_carries_the_aux_outputs_of_the_exit_that_answered():
    net = small_net("all").eval()
    x = torch.randn(4, 17, 5, 5)
    full = net(x)
    res = net.staged_forward(x, lambda k, out, rows: (rows % 3) == k)  # row i stops at exit i % 3
    for i in range(4):
        k = min(i % 3, 2)
        torch.testing.assert_close(res.outputs.ownership[i], full[k].ownership[i])
        torch.testing.assert_close(res.outputs.score[i], full[k].score[i])


def aux_batch(n: int = 6, points: int = 25, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    own = torch.randint(-1, 2, (n, points), generator=g).float()
    return AuxTargets(own, torch.ones(n), torch.randn(n, generator=g) * 10, torch.ones(n), 1.5, 0.05)


def test_aux_losses_change_gradients_only_of_the_aux_heads_and_the_trunk():
    net = small_net("last").train()
    x = torch.randn(6, 17, 5, 5)
    pi = torch.softmax(torch.randn(6, 26), dim=1)
    z = torch.tensor([1.0, -1.0] * 3)
    outs = net(x)
    weights = [1.0, 1.0, 2.0]
    with_aux = deep_supervision_loss(outs, pi, z, weights, aux=aux_batch())
    plain = deep_supervision_loss(outs, pi, z, weights)
    (with_aux.total - plain.total).backward()  # the gradient the aux terms add

    def changed(prefix: str) -> bool:
        return any(p.grad is not None and bool(torch.any(p.grad != 0))
                   for n, p in net.named_parameters() if n.startswith(prefix))

    def untouched(prefix: str) -> bool:
        return all(p.grad is None or bool(torch.all(p.grad == 0))
                   for n, p in net.named_parameters() if n.startswith(prefix))

    for part in ("ownership_conv", "score_fc", "value_fc1", "value_conv"):  # score reads value_fc1
        assert changed(f"heads.2.{part}"), part
    assert changed("stem") and all(changed(f"stages.{k}") for k in range(3))
    for part in ("policy_conv", "policy_bn", "policy_fc", "value_fc2"):
        assert untouched(f"heads.2.{part}"), part
    assert untouched("heads.0") and untouched("heads.1")  # no aux heads on the shallow exits
    assert with_aux.ownership[:2] == [None, None] and with_aux.ownership[2] > 0
    assert with_aux.score[2] > 0 and 0 <= with_aux.ownership_accuracy[2] <= 1


def test_rows_without_aux_targets_add_no_aux_loss():
    net = small_net("last")
    outs = net(torch.randn(3, 17, 5, 5))
    aux = aux_batch(3)
    none = AuxTargets(aux.ownership, torch.zeros(3), aux.score, torch.zeros(3), 1.5, 0.05)
    pi, z = torch.full((3, 26), 1 / 26), torch.zeros(3)
    parts = deep_supervision_loss(outs, pi, z, [1.0, 1.0, 2.0], aux=none)
    plain = deep_supervision_loss(outs, pi, z, [1.0, 1.0, 2.0])
    assert float(parts.total.detach()) == pytest.approx(float(plain.total.detach()))
    assert parts.ownership[2] == 0.0 and parts.score[2] == 0.0


def test_ownership_loss_is_the_mean_squared_error_over_points_and_score_is_scaled_by_points():
    net = small_net("last")
    out = net(torch.randn(2, 17, 5, 5))[2]
    aux = aux_batch(2)
    parts = deep_supervision_loss([out], torch.full((2, 26), 1 / 26), torch.zeros(2),
                                  [1.0], aux=aux)
    want_own = float(((out.ownership - aux.ownership) ** 2).mean().detach())
    want_score = float((((out.score - aux.score) / 25) ** 2).mean().detach())
    assert parts.ownership[0] == pytest.approx(want_own, rel=1e-5)
    assert parts.score[0] == pytest.approx(want_score, rel=1e-5)


def test_learner_trains_the_aux_heads_on_replay_batches():
    cfg = aux_cfg()
    game = make_game(cfg.game)
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game, "sample")
    buf.add_game(go_game_with_targets(8))
    learner = Learner(cfg, game, "cpu")
    batch = buf.sample(16, np.random.default_rng(0))
    first = learner.step(batch)
    for _ in range(10):
        last = learner.step(batch)
    assert first.ownership[:2] == [None, None] and first.ownership_accuracy[:2] == [None, None]
    assert last.ownership[2] < first.ownership[2] and last.score[2] < first.score[2]


def test_predict_aux_gives_the_deepest_exits_ownership_and_score_for_each_colour():
    net = small_net("last").eval()
    _, game = go5(7.5)
    black, white = game.new_state(), game.state_from_actions([12])
    got = predict_aux(net, [black, white])
    out = net.forward_to(torch.from_numpy(np.stack([black.observation(), white.observation()])), 2)
    for i, (st, p) in enumerate(zip((black, white), got)):
        assert p.mover == st.current_player() == i
        np.testing.assert_allclose(p.ownership.reshape(-1), out.ownership[i].detach().numpy(), rtol=1e-6)
        assert p.score == pytest.approx(float(out.score[i]))
        sign = 1 if i == 0 else -1
        np.testing.assert_allclose(p.black_ownership, sign * p.ownership)
        assert p.black_score == pytest.approx(sign * p.score)
    with pytest.raises(ValueError, match="exit 0 of this network has no ownership/score heads"):
        predict_aux(net, [black], k=0)


def test_old_checkpoint_without_aux_heads_loads_as_the_net_it_was(tmp_path):
    cfg, game = go5(7.5)
    net = small_net("none").eval()
    payload = policy_value_payload(net, cfg)
    for key in ("aux_heads", "ownership_weight", "score_weight"):  # what format 1 never had
        del payload["net"][key]
    payload["format_version"] = 1
    save_checkpoint(tmp_path / "old.pt", payload)
    loaded, _ = load_policy_value(tmp_path / "old.pt")
    assert loaded.config.aux_heads == "none" and not has_aux(loaded)
    x = torch.randn(2, 17, 5, 5)
    torch.testing.assert_close(loaded.forward_to(x, 2).value, net.forward_to(x, 2).value)


def test_checkpoint_with_aux_heads_round_trips(tmp_path):
    cfg, _ = go5(7.5)
    net = small_net("all").eval()
    save_policy_value(tmp_path / "aux.pt", net, cfg)
    assert torch.load(tmp_path / "aux.pt", weights_only=True)["format_version"] == FORMAT_VERSION == 2
    loaded, _ = load_policy_value(tmp_path / "aux.pt")
    assert loaded.config == net.config and all(has_aux(loaded, k) for k in range(3))
    x = torch.randn(2, 17, 5, 5)
    torch.testing.assert_close(loaded.forward_to(x, 0).ownership, net.forward_to(x, 0).ownership)


def test_a_newer_checkpoint_format_is_refused_in_one_line(tmp_path):
    cfg, _ = go5(7.5)
    payload = policy_value_payload(small_net("none"), cfg)
    payload["format_version"] = FORMAT_VERSION + 1
    save_checkpoint(tmp_path / "new.pt", payload)
    with pytest.raises(CheckpointError, match="newer than this package reads") as e:
        load_policy_value(tmp_path / "new.pt")
    assert "\n" not in str(e.value)


def go_game_with_targets(n: int = 4) -> SelfPlayGame:
    _, game = go5(0.5)
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 2, (n,) + game.observation_shape).astype(np.uint8)
    own = np.stack([WALL_OWNER if t % 2 == 0 else -WALL_OWNER for t in range(n)])
    own[:, 0, 0] = 0  # a neutral corner: not symmetric, so a wrong transform shows
    # plane 0 marks the points the mover owns, so planes and ownership must move together
    planes[:, 0] = own > 0
    return SelfPlayGame(planes, np.full((n, 26), 1 / 26, np.float32), np.zeros(n, np.float32),
                        ownership=own, score=np.array([4.5, -4.5] * (n // 2), np.float32))


@pytest.mark.parametrize("symmetries", ["sample", "write"])
def test_replay_moves_ownership_with_the_planes_under_symmetries(symmetries):
    _, game = go5(0.5)
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game, symmetries)
    buf.add_game(go_game_with_targets())
    b = buf.sample(64, np.random.default_rng(1))
    np.testing.assert_array_equal(b.planes[:, 0].reshape(64, -1), b.ownership > 0)
    assert set(np.unique(b.score)) == {4.5, -4.5} and np.all(b.has_ownership == 1) and np.all(b.has_score == 1)


def test_replay_file_round_trip_keeps_aux_targets(tmp_path):
    _, game = go5(0.5)
    buf = ReplayBuffer(100, game.observation_shape, game.num_actions, game, "none")
    buf.add_game(go_game_with_targets())
    buf.add_game(SelfPlayGame(np.zeros((2,) + game.observation_shape, np.uint8),
                              np.full((2, 26), 1 / 26, np.float32), np.zeros(2, np.float32)))  # resigned
    buf.save(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as z:
        assert int(z["format"]) == BUFFER_FORMAT == 2
    other = ReplayBuffer(100, game.observation_shape, game.num_actions, game, "none")
    other.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(other.ownership[:6], buf.ownership[:6])
    assert other.has_ownership[:6].tolist() == [True] * 4 + [False] * 2
    np.testing.assert_array_equal(other.score[:4], [4.5, -4.5, 4.5, -4.5])
    assert np.isnan(other.score[4:6]).all()


def test_a_format_1_replay_file_is_converted_with_no_aux_targets(tmp_path):
    _, game = go5(0.5)
    n = 3
    np.savez(tmp_path / "old.npz", format=1, planes=np.zeros((n,) + game.observation_shape, np.uint8),
             policies=np.full((n, 26), 1 / 26, np.float32), values=np.array([1, -1, 1], np.float32), added=n)
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game, "none")
    buf.load(tmp_path / "old.npz")
    assert len(buf) == 3 and buf.values[:3].tolist() == [1, -1, 1]
    b = buf.sample(8, np.random.default_rng(0))
    assert np.all(b.has_ownership == 0) and np.all(b.has_score == 0) and np.all(b.score == 0)
    buf.save(tmp_path / "new.npz")  # written back in the new format
    with np.load(tmp_path / "new.npz") as z:
        assert int(z["format"]) == 2


def test_a_replay_file_of_an_unknown_format_is_refused_in_one_line(tmp_path):
    _, game = go5(0.5)
    np.savez(tmp_path / "future.npz", format=9, planes=np.zeros((1,) + game.observation_shape, np.uint8),
             policies=np.zeros((1, 26), np.float32), values=np.zeros(1, np.float32), added=1)
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game, "none")
    with pytest.raises(CheckpointError, match="has format 9, this package reads 1 and 2") as e:
        buf.load(tmp_path / "future.npz")
    assert "\n" not in str(e.value) and len(buf) == 0


def test_go9_keeps_aux_heads_and_resignation_off_by_default():
    cfg = load_run_config(CONFIG_DIR / "go9.yaml")
    assert cfg.net.aux_heads == "none" and not cfg.selfplay.resign.enabled
    assert to_dict(cfg.net)["aux_heads"] == "none"


def test_a_run_directory_from_before_the_aux_heads_resumes_converted(tmp_path):
    """config.yaml without the new keys, a format-1 replay file: the run resumes as it ran
    (aux heads none, resignation off) and its positions carry no aux targets."""
    import yaml

    from selfplay.driver import TrainingRun
    from selfplay.rundir import RunDir, RunState
    from selfplay.schedule import Counters, Limits

    cfg = load_run_config(CONFIG_DIR / "tictactoe.yaml")
    game = make_game(cfg.game)
    rd = RunDir(tmp_path)
    old_cfg = cfg.to_dict()
    del old_cfg["net"]["aux_heads"], old_cfg["net"]["ownership_weight"], old_cfg["net"]["score_weight"]
    del old_cfg["selfplay"]["resign"]
    rd.config_path.parent.mkdir(parents=True, exist_ok=True)
    rd.config_path.write_text(yaml.safe_dump(old_cfg))
    learner = Learner(cfg, game, "cpu")
    buf = ReplayBuffer(10, game.observation_shape, game.num_actions, game)
    buf.add(np.zeros((3,) + game.observation_shape, np.uint8), np.full((3, 9), 1 / 9, np.float32),
            np.array([1, -1, 1], np.float32))
    rd.save(RunState(Counters(games=1), learner.state_dict(), learner.weights_cpu()), buf, learner.net,
            cfg.game, {})
    replay = next(rd.replay_dir.glob("replay-*.npz"))
    with np.load(replay) as z:  # rewrite it as the format-1 file an older package wrote
        np.savez(replay.with_suffix(".tmp.npz"), format=1, planes=z["planes"], policies=z["policies"],
                 values=z["values"], added=z["added"])
    replay.with_suffix(".tmp.npz").replace(replay)
    assert rd.check_config(cfg.to_dict(), force=False) is True  # same run, not "another config"
    run = TrainingRun(cfg, rd, Limits())
    assert run.restore() is not None
    assert len(run.buffer) == 3 and not run.buffer.has_ownership[:3].any()
    assert np.isnan(run.buffer.score[:3]).all()


def test_the_arena_reports_the_mean_score_a_score_head_predicts(tmp_path):
    import json

    from dpv.play.arena import run_match
    from dpv.play.plan import MatchPlan

    cfg = GameConfig(name="go", board_size=5, komi=0.5, max_game_length=30)
    net = small_net("last").eval()
    save_policy_value(tmp_path / "aux.pt", net, cfg)
    run = run_match(MatchPlan(f"net:{tmp_path / 'aux.pt'},sims=4", "random", cfg, games=2, seed=1),
                    tmp_path / "match", progress=False)
    summary = run.summary()
    a, b = summary.per_player["a"], summary.per_player["b"]
    assert b.mean_predicted_score is None  # random has no score head
    # the mean of what the score head says of each position the net moved in
    game = make_game(cfg)
    said = []
    for r in summary.records:
        state = game.new_state()
        for t, action in enumerate(r.moves):
            if t >= r.opening_moves and state.current_player() == r.a_colour:
                said.append(predict_aux(net, [state])[0].score)
            state.apply(action)
    assert len(said) == a.moves > 0
    assert a.mean_predicted_score == pytest.approx(float(np.mean(said)), rel=1e-5)
    per_player = json.loads((tmp_path / "match" / "summary.json").read_text())["per_player"]
    assert per_player["a"]["mean_predicted_score"] == pytest.approx(a.mean_predicted_score)
    assert "mean_predicted_score" not in per_player["b"]
    assert "mean predicted score" in summary.report()


def test_ownership_accuracy_and_plot_commands_on_a_finished_game(tmp_path, capsys):
    import json

    from dpv.play.sgf import write_sgf
    from selfplay.ownership import main

    cfg = GameConfig(name="go", board_size=5, komi=0.5)
    net = small_net("last").eval()
    save_policy_value(tmp_path / "aux.pt", net, cfg)
    games = tmp_path / "games"
    games.mkdir()
    (games / "game_0001.sgf").write_text(write_sgf(WALLS, 5, 0.5, result="B+4.5"))
    (games / "game_0002.sgf").write_text(write_sgf([12, 6], 5, 0.5, result="W+R"))  # resigned
    main(["accuracy", "--net", str(tmp_path / "aux.pt"), "--sgf", str(games), "--json", str(tmp_path / "a.json")])
    res = json.loads((tmp_path / "a.json").read_text())
    _, game = go5(0.5)
    states = [game.state_from_actions(WALLS[:t]) for t in range(len(WALLS))]
    pred = np.sign(np.stack([p.black_ownership for p in predict_aux(net, states)]))
    assert res["games"] == 1 and res["positions"] == 12 and res["points"] == 12 * 25
    assert res["skipped_unfinished"] == 1
    assert res["accuracy"] == pytest.approx(float((pred == WALL_OWNER).mean()))
    assert "ownership sign accuracy" in capsys.readouterr().out
    main(["plot", "--net", str(tmp_path / "aux.pt"), "--sgf", str(games / "game_0001.sgf"),
          "--move", "6", "--out", str(tmp_path / "own.png")])
    assert (tmp_path / "own.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ownership_commands_refuse_a_net_without_the_head_in_one_line(tmp_path, capsys):
    from selfplay.ownership import main

    save_policy_value(tmp_path / "plain.pt", small_net("none"), GameConfig(name="go", board_size=5, komi=0.5))
    with pytest.raises(SystemExit) as e:
        main(["accuracy", "--net", str(tmp_path / "plain.pt"), "--sgf", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no ownership head" in err and "\n" not in err
