"""The dialect contract, defined by the pipeline that drives it (skylane.pipeline.contract)."""

from skylane.pipeline.contract import CallView, Dialect, StreamRenderer

__all__ = ["CallView", "Dialect", "StreamRenderer"]
