"""Proof under stress: a seeded bad-input corpus, a bad-input campaign against a live worker, and a fault
harness that kills workers, the broker and MongoDB while frames flow, then audits the outputs from outside.

``python -m chaos run ...`` runs the fault harness; ``bench/bad_input_campaign.py`` runs the campaign. Nothing
here is imported by the product: it drives ``streams`` and ``workers`` as a user would (subprocesses, topics,
MongoDB), so what it measures is the product's behaviour, not a test double's.
"""
