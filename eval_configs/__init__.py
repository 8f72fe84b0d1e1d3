"""Data package (no code): the evaluation suites shipped with rt1-sim; see rt1_sim/resources.py."""
