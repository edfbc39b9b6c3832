"""vgpu-tui's front: the command line (cli.py, commands/) and the Textual app (app.py).

The headless subcommands never import Textual; only `vgpu-tui` without a subcommand
(the TUI) does.
"""
