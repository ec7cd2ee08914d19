"""Contract suites for plugin authors: call them from your own pytest tests.

Each ``check_*`` function raises ``AssertionError`` naming the broken promise, and returns nothing
when the component keeps the contract of its interface.
"""

from .divergence import MLPCritic, check_divergence
from .representation import check_representation

__all__ = ["MLPCritic", "check_divergence", "check_representation"]
