from dpv.nets.multi_exit import FlopsTable, MultiExitNet, StagedResult, count_flops
from dpv.nets.policy_value import (AuxPrediction, PolicyValue, PolicyValueNet, build_policy_value_net,
                                   has_aux, predict_aux)

__all__ = ["FlopsTable", "MultiExitNet", "StagedResult", "count_flops", "AuxPrediction", "PolicyValue",
           "PolicyValueNet", "build_policy_value_net", "has_aux", "predict_aux"]
