"""Backfill: find images that have no up-to-date outcome and invoke the deployed function for them
asynchronously through the FC 3.0 API, in OSS-shaped events of up to K records, at a bounded rate, resumably.

The pieces are small and mostly pure: ``rules`` (classification, option bounds), ``batching`` (events within
FC's payload limit), ``checkpoint`` (where a run stands), ``run`` (batch, pace with the function's own token
bucket, send, checkpoint, summary), ``items`` (what to send); the I/O sits in adapters: ``oss`` (the
ListObjectsV2 paginator, HEAD/GET through the function's own ``Storage``) and ``fc`` (InvokeFunction with
``x-fc-invocation-type: Async``). ``job`` is the command-line job shared with ``permit-ocr replay``
(``permit_ocr_local.tools.replay`` decides what replay sends).

Delivery is at-least-once per batch: the checkpoint is written after FC accepted a batch, so a crash between
the two re-sends that one batch on resume; the handler's idempotency (result metadata ``source-etag``) makes
the repeat free of OCR cost. Nothing here deletes or rewrites an outcome: a replayed image keeps its error
record until the function replaces it with a new result or record, so an interrupted run loses nothing.
"""

from .batching import REPLAY_MARK, Batcher, encode_event, event_record, record_size
from .checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    CheckpointError,
    CheckpointMismatch,
    load_checkpoint,
    parse_checkpoint,
    save_checkpoint,
)
from .fc import FcInvoker, InvokeError
from .items import backfill_items, ordered_map
from .oss import Lister, OssReader, RecordGone, oss_client, retry_transient
from .rules import (
    COUNTERS,
    MAX_BATCH,
    PAYLOAD_BUDGET,
    RATE_MAX,
    RATE_MIN,
    Item,
    Listed,
    classify,
    fc_endpoint,
    is_final_record,
    normalize_suffixes,
    one_line,
    option_problem,
    outcome_state,
    parse_since,
    replay_decision,
)
from .run import ListingError, RunOptions, RunResult, SentBatch, run_items, summary, summary_table

__all__ = [
    "CHECKPOINT_VERSION", "COUNTERS", "MAX_BATCH", "PAYLOAD_BUDGET", "RATE_MAX", "RATE_MIN", "REPLAY_MARK",
    "Batcher", "Checkpoint", "CheckpointError", "CheckpointMismatch", "FcInvoker", "InvokeError", "Item", "Listed",
    "Lister", "ListingError", "OssReader", "RecordGone", "RunOptions", "RunResult", "SentBatch", "backfill_items",
    "classify", "encode_event", "event_record", "fc_endpoint", "is_final_record", "load_checkpoint",
    "normalize_suffixes", "one_line", "option_problem", "ordered_map", "oss_client", "outcome_state",
    "parse_checkpoint", "parse_since", "record_size", "replay_decision", "retry_transient", "run_items",
    "save_checkpoint", "summary", "summary_table",
]
