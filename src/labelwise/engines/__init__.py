"""Model backends behind one contract (`base.Engine`); the "features + head + calibrator" engines share
`base.HeadEngine` (and `base.EncoderEngine` when their features come from the sentence encoder they are given)."""

from labelwise.engines.base import EncoderEngine, Engine, HeadEngine, ProgressCallback, TextEncoder, rank_scores

__all__ = ["EncoderEngine", "Engine", "HeadEngine", "ProgressCallback", "TextEncoder", "rank_scores"]
