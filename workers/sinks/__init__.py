"""Where a worker's outputs go: the results and defect-events topics, MongoDB, and the dead-letter topic.

Every sink is idempotent under replay: Kafka outputs carry stable keys and ids, MongoDB documents have an
``_id`` derived from the frame's identity and the model version, so reprocessing after a crash rewrites the
same documents instead of adding new ones.
"""
