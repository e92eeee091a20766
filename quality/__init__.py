"""Quality analytics over inspection records (`lineguard report`): yield, Pareto, shifts, SPC, model health.

Sits above the shared plumbing (settings, MongoDB access) and below the CLI; nothing lower imports it.
"""
