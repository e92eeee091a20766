"""Shadow evaluation: a candidate model runs as an ordinary worker (``role="shadow"``) beside production.

- :mod:`workers.shadow.config`: the shadow worker's settings: its own group, a shadow results topic and a
  shadow collection, checked apart from production's outputs;
- :mod:`workers.shadow.replay`: a recorded range of the frames topic (by time or offsets), the start offsets
  committed for a fresh group, the record filter and the end of a replay;
- :mod:`workers.shadow.run`: live or replay runs;
- :mod:`workers.shadow.report` / :mod:`workers.shadow.render`: the comparison with production and labels;
- :mod:`workers.shadow.golden`: a folder of frames with expected verdicts, and Keras-vs-ONNX parity;
- :mod:`workers.shadow.drift_watch`: a recorded range per camera against the training reference;
- :mod:`workers.shadow.cli`: ``lineguard shadow run|report|golden|drift``.

The promotion gate that reads the reports lives in :mod:`vision.shadow_gate` (below the workers, next to the
registry it gates).
"""
