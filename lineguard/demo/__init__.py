"""``lineguard demo``: the whole system on one machine, watched live.

A synthetic camera publishes frames with known ground truth, a worker subprocess inspects them, and the demo
reads the results back from Kafka to show throughput, latency, defects and lag while it runs, then scores the
verdicts against the ground truth.

- :mod:`lineguard.demo.tally`: pure bookkeeping (counts, latency percentiles, accuracy); no I/O.
- :mod:`lineguard.demo.watch`: the Kafka side of watching (results, defect events, dead letters, lag).
- :mod:`lineguard.demo.run`: orchestration (services, topics, camera thread, watch loop, shutdown).
- :mod:`lineguard.demo.worker_process`: the worker subprocess (environment, start, join, stop).
- :mod:`lineguard.demo.summary`: the summary a run returns.
- :mod:`lineguard.demo.view`: the live table and the printed summary (rich).
- :mod:`lineguard.demo.cli`: the ``lineguard demo`` command.
"""
