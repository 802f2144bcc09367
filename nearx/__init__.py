"""NEARX shared kernel: settings, geo, money, ids, clock, database and outbox.

Kernel modules import nothing else of ours; `nearx.cli` is the composition root.
"""
