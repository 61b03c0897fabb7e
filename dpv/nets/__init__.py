from dpv.nets.multi_exit import FlopsTable, MultiExitNet, StagedResult, count_flops
from dpv.nets.policy_value import PolicyValue, PolicyValueNet, build_policy_value_net

__all__ = ["FlopsTable", "MultiExitNet", "StagedResult", "count_flops", "PolicyValue",
           "PolicyValueNet", "build_policy_value_net"]
