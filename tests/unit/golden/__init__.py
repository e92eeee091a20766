"""Golden Avro bytes of lineguard's contract and the fixed records they encode (see ``regenerate.py``)."""
