"""Acting on the verdict: the per-part join (views of every camera -> one decision per part) and the PLC
bridge that hands each decision to the line's PLC over OPC UA. Consumes topics through ``schemas`` and the
shared plumbing in ``infra``; never imports ``workers`` or ``streams``."""
