"""diffsweep: sweeps over score-based diffusion models in the random-walk-with-Tweedie view.

Importing the package is cheap: torch and friends load only inside the submodules that need them.
"""

__version__ = "0.1.0"
