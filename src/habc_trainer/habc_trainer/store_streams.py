"""Former home of the TrainConfig -> WindowStreams glue, now in streams.py (kept for importers)."""

from habc_trainer.streams import HELDOUT_FRACTION, open_streams, stream_config_for

__all__ = ["HELDOUT_FRACTION", "open_streams", "stream_config_for"]
