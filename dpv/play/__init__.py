"""Everything that plays matches: the match engine, the arena, the GTP engine, SGF records,
match statistics and the thesis's match experiments.

Kept apart from the core (games, nets, exits, search) so the core reads on its own; players
themselves are in `dpv.players`. This face imports nothing, so `import dpv.play.sgf` stays
light and no submodule can come back round to it.
"""
