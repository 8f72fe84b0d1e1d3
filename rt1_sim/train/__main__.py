"""`python -m rt1_sim.train` and `torchrun -m rt1_sim.train`."""

import sys

from rt1_sim.train.cli import main

sys.exit(main())
