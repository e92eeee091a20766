"""Live counters per line and time window (frames, verdicts, defects per class) from the results topic.

`lineguard counters run` keeps them in Redis for the console and dashboards; see :mod:`.consumer` for the
guarantees (exact under replay and duplicates, offsets stored with the counters).
"""
