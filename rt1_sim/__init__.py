"""rt1-sim: RT-1 (Robotics Transformer) in PyTorch with its own PyBullet pick simulation."""

__version__ = "0.1.0"
