"""`python -m tui` is the same as the `vgpu-tui` command."""
import sys

from tui.cli import main

sys.exit(main())
