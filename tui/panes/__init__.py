"""The panes of the main screen, one module each, plus `data`, which asks the probes.

Every pane reads the contract's plain JSON shapes (../shared/CONTRACT.md), never the probe
modules' dataclasses, so a probe that is not there yet only leaves its pane saying so.
"""
