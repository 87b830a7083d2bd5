"""Model backends behind one contract (`base.Engine`)."""

from labelwise.engines.base import Engine, ProgressCallback, rank_scores

__all__ = ["Engine", "ProgressCallback", "rank_scores"]
