"""Budgeted exit policies for classifiers, all on dpv's ExitPolicy protocol (decide/select on
an ExitContext), so each runs offline on a trace (dpv.exits.run_offline) and online on a
staged forward (eexit_vision.policies.staged) alike."""
from eexit_vision.policies.asti import LookThenLeap
from eexit_vision.policies.eero import EERO
from eexit_vision.policies.msdnet import PerExitThreshold, fit_msdnet
from eexit_vision.policies.offline import OfflineResult, check_budget, evaluate_policy, fit_to_budget
from eexit_vision.policies.ttamer import TTamer

__all__ = ["EERO", "LookThenLeap", "OfflineResult", "PerExitThreshold", "TTamer", "check_budget",
           "evaluate_policy", "fit_msdnet", "fit_to_budget"]
