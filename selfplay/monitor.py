"""TensorBoard scalars in the run directory and one progress line on the console.

Scalars are indexed by learner step (self-play ones too), so curves from a resumed run
continue where they stopped; `purge_step` drops events a killed session wrote after its
last checkpoint.
"""
from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from selfplay.sysinfo import anon_rss_mb, rss_mb


@dataclass
class ResignTotals:
    """Resignation counts over this session's self-play reports (selfplay.resign)."""

    games: int = 0
    resigned: int = 0
    played_out: int = 0
    would_resign: int = 0
    false_positives: int = 0

    def add(self, report) -> None:
        self.games += len(report.games)
        self.resigned += report.resigned
        self.played_out += report.played_out
        self.would_resign += report.would_resign
        self.false_positives += report.false_positives


class Monitor:
    def __init__(self, tb_dir, purge_step: int, num_exits: int, progress: bool = True):
        self.writer = SummaryWriter(str(tb_dir), purge_step=purge_step if purge_step > 0 else None)
        self.num_exits = num_exits
        self.bar = tqdm(total=None, dynamic_ncols=True, file=sys.stderr, disable=not progress,
                        bar_format="{desc}", leave=True)
        self._games = deque(maxlen=256)  # (time, cumulative games) for games/hour
        self._evals = deque(maxlen=64)  # (network seconds, rows) per self-play report
        self.last_loss: float | None = None
        self.resign = ResignTotals()

    def train(self, step: int, m) -> None:
        w = self.writer
        w.add_scalar("loss/total", m.loss, step)
        for k in range(len(m.policy)):
            w.add_scalar(f"loss_policy/exit{k}", m.policy[k], step)
            w.add_scalar(f"loss_value/exit{k}", m.value[k], step)
            w.add_scalar(f"agreement/exit{k}", m.agreement[k], step)
        # aux heads (net.aux_heads): only the exits that have them, None elsewhere
        for tag, values in (("loss_ownership", m.ownership), ("loss_score", m.score),
                            ("ownership_accuracy", m.ownership_accuracy)):
            for k, v in enumerate(values):
                if v is not None:
                    w.add_scalar(f"{tag}/exit{k}", v, step)
        self.last_loss = m.loss

    def selfplay(self, step: int, games_total: int, report, buffer_size: int) -> None:
        now = time.monotonic()
        self._games.append((now, games_total))
        self._evals.append((report.network_seconds, report.evaluations, report.seconds))
        w = self.writer
        w.add_scalar("selfplay/games", games_total, step)
        w.add_scalar("selfplay/buffer_size", buffer_size, step)
        gph = self.games_per_hour()
        if gph is not None:
            w.add_scalar("selfplay/games_per_hour", gph, step)
        net_s = sum(e[0] for e in self._evals)
        rows = sum(e[1] for e in self._evals)
        wall = sum(e[2] for e in self._evals)
        if net_s > 0:
            w.add_scalar("selfplay/evaluator_positions_per_s", rows / net_s, step)
        if wall > 0:
            w.add_scalar("selfplay/actor_positions_per_s", rows / wall, step)
            w.add_scalar("selfplay/network_share", net_s / wall, step)
        total = sum(report.exit_histogram)
        for k, c in enumerate(report.exit_histogram):
            w.add_scalar(f"exits_used/exit{k}", c / total if total else 0.0, step)
        w.add_scalar("selfplay/exit", report.exit, step)
        if report.resign_threshold is not None:
            self.resign.add(report)
            r = self.resign
            w.add_scalar("resign/threshold", report.resign_threshold, step)
            w.add_scalar("resign/resigned_share", r.resigned / max(r.games, 1), step)
            w.add_scalar("resign/played_out_games", r.played_out, step)
            if r.would_resign:
                w.add_scalar("resign/false_positive_rate", r.false_positives / r.would_resign, step)
        w.add_scalar("memory/actor_rss_mb", report.rss_mb, step)
        w.add_scalar("memory/driver_rss_mb", rss_mb(), step)
        w.add_scalar("memory/actor_anon_mb", report.anon_mb, step)
        w.add_scalar("memory/driver_anon_mb", anon_rss_mb(), step)

    def games_per_hour(self) -> float | None:
        if len(self._games) < 2:
            return None
        (t0, g0), (t1, g1) = self._games[0], self._games[-1]
        return (g1 - g0) / (t1 - t0) * 3600 if t1 > t0 else None

    def gating(self, step: int, tally, promoted: bool, promotions: int) -> None:
        w = self.writer
        w.add_scalar("gating/candidate_score", tally.score, step)
        w.add_scalar("gating/promoted", float(promoted), step)
        w.add_scalar("gating/promotions", promotions, step)

    def anchor(self, step: int, name: str, tally) -> None:
        self.writer.add_scalar(f"anchors/{name}", tally.score, step)

    def status(self, c, buffer_size: int, best_version: int, exit_index: int) -> None:
        gph = self.games_per_hour()
        loss = f"{self.last_loss:.3f}" if self.last_loss is not None else "-"
        self.bar.set_description_str(
            f"games {c.games} | steps {c.steps} | buffer {buffer_size} | best v{best_version} "
            f"| exit {exit_index} | loss {loss} | {gph or 0:.0f} games/h | {c.seconds / 60:.1f} min")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.bar.close()
