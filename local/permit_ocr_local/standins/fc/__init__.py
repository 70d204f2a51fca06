"""The Function Compute 3.0 API stand-in: InvokeFunction (Sync and Async) over the real wire protocol, so
``permit-ocr backfill`` and ``replay`` talk to it with the real alibabacloud-fc20230330 SDK."""

from .server import FcServer, start_fc

__all__ = ["FcServer", "start_fc"]
