"""MKE Edge runtime: what runs on the robot. Imports nothing of ours and never imports torch."""
from mke.runtime.errors import MkeError

__all__ = ["MkeError"]
