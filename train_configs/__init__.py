"""Data package (no code): the training configs shipped with rt1-sim; see rt1_sim/resources.py."""
