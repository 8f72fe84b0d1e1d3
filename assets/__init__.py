"""Data package (no code): the robot model, bundled checkpoints and their cards; see rt1_sim/resources.py."""
