"""Shared test helper: random Go games that pass rarely, so boards fill up and captures happen."""
import numpy as np


def play_random_go(game, rng: np.random.Generator, pass_prob: float = 0.05):
    """Play a random game on `game` (a dpv Go game) to its end and return the final state."""
    pass_action = game.num_actions - 1
    st = game.new_state()
    while not st.is_terminal():
        legal = st.legal_actions()
        non_pass = [a for a in legal if a != pass_action]
        pick = non_pass if non_pass and rng.random() > pass_prob else legal
        st.apply(int(pick[rng.integers(len(pick))]))
    return st
