"""The local OSS stand-in: state (plain files), errors (OSS XML), auth (V1/V4 verifiers), server (routing)."""

from .server import OssService, OssStandin, start_oss
from .state import OssState

__all__ = ["OssService", "OssStandin", "OssState", "start_oss"]
