"""Bad-input campaign against a live worker: ``python bench/bad_input_campaign.py --cases 10000 [--json]``.

Needs Kafka and MongoDB (``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI``, or ``lineguard stack up``). Prints
``cases``, ``crashes`` (goal 0), ``dead_lettered`` (goal = cases), ``reasons`` and whether the worker still
inspects good frames afterwards; exits 1 when a goal is missed. See :mod:`chaos.campaign`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing chaos

from chaos.cli import bad_input_main

if __name__ == "__main__":
    bad_input_main()
