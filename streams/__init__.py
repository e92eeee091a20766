"""The producer side of lineguard: camera frames -> Avro Frame records -> Kafka.

- ``sources/``: where frames come from (``opencv:``, ``video:``, ``folder:``, ``synthetic``), one protocol;
- ``encoder``: pure; pixels -> JPEG/PNG -> ``schemas.records.Frame``;
- ``publisher``: a plain confluent-kafka ``Producer`` with claim-check for large images and a disk spool;
- ``spool``: the bounded store-and-forward spool;
- ``runner``: rate control, count, progress, clean shutdown; ``camera`` wires them from ``settings``;
- ``cli``: ``lineguard camera``.

``streams`` never imports ``workers`` (and the other way round); what both need lives in ``schemas`` and
``lineguard`` (e.g. ``infra.claimcheck``).
"""
