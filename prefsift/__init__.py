"""prefsift: which preference pairs are worth aligning *your* model on."""

__version__ = "0.1.0"
