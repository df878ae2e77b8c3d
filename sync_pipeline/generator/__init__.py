"""Synthetic matched Svenn/Tripletex worlds for the sandboxes, demos and tests."""

from .world import DEMO_SEED, SCALES, World, generate_world

__all__ = ["DEMO_SEED", "SCALES", "World", "generate_world"]
