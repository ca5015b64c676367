"""``python -m tests.sim``: replay one simulated schedule, or run many (:mod:`tests.sim.run`)."""

import sys

from .run import main

sys.exit(main())
