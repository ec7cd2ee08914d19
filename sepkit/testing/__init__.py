"""Contract suites for plugin authors: call them from your own pytest tests.

Each ``check_*`` function raises ``AssertionError`` naming the broken promise when a component
breaks the contract of its interface (``check_separator`` and ``check_critic`` return the
component they checked, for further assertions).

    from sepkit.testing import check_separator
    def test_my_separator():
        check_separator(MySeparator, MySeparator.Config(), num_sources=2, num_channels=1, num_bins=65)
"""

from .critic import check_critic
from .divergence import MLPCritic, check_divergence
from .logger import check_logger
from .representation import check_representation
from .separator import check_separator

__all__ = ["MLPCritic", "check_critic", "check_divergence", "check_logger", "check_representation", "check_separator"]
