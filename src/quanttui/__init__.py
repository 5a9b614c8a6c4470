"""quanttui: compare GGUF quantizations live on your own hardware.

Importing the package imports nothing heavy: the CLI, the core and the TUI load on demand.
"""

__version__ = "0.1.0"
