"""DPV-MCTS: batched, budget-aware tree search with dynamic exit selection (thesis 6.2.3)."""
from dpv.mcts.evaluators import RolloutEvaluator, UniformEvaluator, make_evaluator
from dpv.mcts.search import (MCTS, ExitCosts, SearchLimit, SearchResult, run_searches,
                             select_action, temperature_for_move)
from dpv.mcts.tree import Tree

__all__ = ["MCTS", "ExitCosts", "RolloutEvaluator", "SearchLimit", "SearchResult", "Tree",
           "UniformEvaluator", "make_evaluator", "run_searches", "select_action",
           "temperature_for_move"]
