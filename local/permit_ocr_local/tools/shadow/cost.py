"""What recognition costs, per image: the FC price table (the engine function is billed by the second, like any
function) and the OCR API's per-call fee. One place for both: `make bench` and `permit-ocr shadow-report` read
them here. List prices change and differ by site and tier: pass your own (``--api-price``) before deciding.

FC 3.0 pay-as-you-go (Alibaba Cloud, "Function Compute 3.0 > Pay-as-you-go", alibabacloud.com/help/en/
functioncompute/fc-3-0/product-overview/pay-as-you-go-billing-method-1, updated 2024-08-27, read offline in a
stored copy): usage converts to compute units (CU): active vCPU 1 CU per vCPU-second, memory 0.15 CU per
GB-second, 75 CU per 10,000 invocations; tier 1 (0-100 M CU a month) costs USD 0.000020 per CU.

The API fee: see API_PRICE_USD below for what was (and was not) found, and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FC_PRICE: Final = {
    "usd_per_cu": 0.000020,
    "cu_per_vcpu_s": 1.0,  # active vCPU
    "cu_per_gb_s": 0.15,  # memory
    "cu_per_invocation": 75 / 10_000,
}
# RecognizeExitEntryPermitToMainland is billed per successful call, monthly tiers, free quota first (Alibaba
# Cloud OCR "Billing", help.aliyun.com/en/ocr/product-overview/product-billing/). The tier prices of the
# 个人证照识别 (personal card and certificate) category were not in the stored copy of that page this was built
# from: the default below is an assumption to be replaced by your price list or contract (--api-price).
API_PRICE_USD: Final = 0.01
# the engine function as s.selfhosted.yaml deploys it (chosen from `make bench`'s measurement)
ENGINE_MEMORY_MB: Final = 1024
ENGINE_VCPU: Final = 1.0
# the main function waits for the engine: its own seconds at s.yaml's 128 MB (0.10 vCPU assumed, bench/README.md)
CALLER_MEMORY_MB: Final = 128
CALLER_VCPU: Final = 0.10


@dataclass(frozen=True)
class FcCost:
    """What 1,000 invocations of one function cost: GB-s, vCPU-s and USD."""

    gb_s: float
    vcpu_s: float
    usd: float


def fc_cost_per_1000(seconds: float, memory_mb: int, vcpu: float, *, invocations: bool = True) -> FcCost:
    """1,000 invocations of ``seconds`` each (billed duration) at this memory and vCPU (``invocations``: count
    the per-invocation fee; not for seconds added to invocations billed anyway)."""
    gb_s = 1000 * seconds * memory_mb / 1024
    vcpu_s = 1000 * seconds * vcpu
    cu = gb_s * FC_PRICE["cu_per_gb_s"] + vcpu_s * FC_PRICE["cu_per_vcpu_s"]
    cu += 1000 * FC_PRICE["cu_per_invocation"] if invocations else 0.0
    return FcCost(gb_s, vcpu_s, cu * FC_PRICE["usd_per_cu"])


@dataclass(frozen=True)
class Costs:
    """Per 1,000 images: the API alone, the engine alone (its function, and the main function waiting for it),
    and a cascade sending ``escalated`` of them on to the API."""

    api_usd: float
    engine: FcCost
    waiting: FcCost
    escalated: float  # share of images a cascade sends to the API (0..1)

    @property
    def engine_usd(self) -> float:
        return self.engine.usd + self.waiting.usd

    @property
    def cascade_usd(self) -> float:
        return self.engine_usd + self.escalated * self.api_usd


def costs(engine_seconds: float, escalated: float, *, api_price_usd: float = API_PRICE_USD,
          memory_mb: int = ENGINE_MEMORY_MB, vcpu: float = ENGINE_VCPU) -> Costs:
    return Costs(1000 * api_price_usd, fc_cost_per_1000(engine_seconds, memory_mb, vcpu),
                 fc_cost_per_1000(engine_seconds, CALLER_MEMORY_MB, CALLER_VCPU, invocations=False), escalated)
