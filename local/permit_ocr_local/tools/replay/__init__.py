"""Replay: decide which images named by error records or failed events to invoke again (``replayer``), read
failure logs (``failurelog``); the run itself (batching, pacing, checkpoint) is backfill's."""

from .failurelog import error_code, failure_log_events, log_cursor
from .replayer import Replayer

__all__ = ["Replayer", "error_code", "failure_log_events", "log_cursor"]
