"""vgpu-tui's headless core: everything it knows about the machine, Ollama and the loader.

Nothing in this package imports Textual or Rich (tests/test_headless.py checks it), so
every probe works from scripts, the CLI's --json and a fleet alike.
"""
