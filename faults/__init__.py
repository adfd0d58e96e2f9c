"""Fault injection for habc-rig: each fault is injected many times and must be survived.

`make faults` runs every trial and writes docs/reliability.md; `tests/test_faults.py` runs the
fast subset (a few trials of each) in the default suite. A fault module exposes ``FAULTS``, a
tuple of :class:`faults.core.Fault`; :mod:`faults.registry` lists the modules.
"""
