"""`permit-ocr shadow-report`: shadow mode's comparison records summed up (report, pure), read from the output
bucket (store), priced (cost: the FC price table and the API fee, shared with `make bench`)."""

from .cost import API_PRICE_USD, ENGINE_MEMORY_MB, ENGINE_VCPU, FC_PRICE, Costs, FcCost, costs, fc_cost_per_1000
from .report import Summary, cost_of, render, summarize
from .store import read_records

__all__ = ["API_PRICE_USD", "ENGINE_MEMORY_MB", "ENGINE_VCPU", "FC_PRICE", "Costs", "FcCost", "Summary", "cost_of",
           "costs", "fc_cost_per_1000", "read_records", "render", "summarize"]
