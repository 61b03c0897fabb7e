"""DPV: early-exit policy-value networks, budget-aware MCTS (DPV-MCTS) and exit policies."""

__version__ = "0.1.0"


def _register_gym_envs() -> None:
    # Registration needs only the entry-point string, so `gymnasium.make("dpv/Go-v0")` works
    # after `import dpv` without importing the environment module itself.
    try:
        import gymnasium
    except ImportError:  # gymnasium is a declared dependency; stay importable without it
        return
    if "dpv/Go-v0" not in gymnasium.registry:
        gymnasium.register(id="dpv/Go-v0", entry_point="dpv.envs.go_env:GoEnv")


_register_gym_envs()
