"""OSS trigger event names, sorted by what they mean for the function."""

from __future__ import annotations

from typing import Final

OSS_PREFIX: Final = "oss:ObjectCreated:"
RECOMMENDED_EVENTS: Final = tuple(OSS_PREFIX + e for e in ("PutObject", "PostObject", "CompleteMultipartUpload"))
# events that fire before the object is complete, or for every part of a multipart upload
PARTIAL_EVENTS: Final = tuple(
    OSS_PREFIX + e for e in ("*", "InitiateMultipartUpload", "UploadPart", "UploadPartCopy")
)
WARN_EVENTS: Final = (OSS_PREFIX + "AppendObject", OSS_PREFIX + "PutSymlink")
OK_EVENTS: Final = (*RECOMMENDED_EVENTS, OSS_PREFIX + "CopyObject")
