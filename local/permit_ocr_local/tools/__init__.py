"""Operator tools: backfill and replay, the chaos run, the offline s.yaml checks and the result schemas."""
