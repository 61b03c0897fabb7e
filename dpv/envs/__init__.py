"""Gymnasium environments (registered on `import dpv`)."""
from dpv.envs.go_env import GoEnv, pettingzoo_layout

__all__ = ["GoEnv", "pettingzoo_layout"]
