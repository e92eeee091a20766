"""The phases of ``bench/bench_workers.py``, one module each,
with the frames, worker process and figures they share."""
