"""Keys that pay for what they use (a credit balance or a monthly budget) use priced models only.

A model without a price in the catalog (a passthrough id, or a row without `pricing`) would be
billed $0 while the operator pays the provider, so such a key is refused it (402 `model_not_priced`)
before any provider call; unpriced fallbacks are dropped. Keys without credits and without a
budget keep passthrough. `SKYLANE_ALLOW_UNPRICED=true` lets every key use unpriced models.
"""

from __future__ import annotations

from skylane.accounts.gate import Principal
from skylane.core.catalog import Target
from skylane.core.errors import ModelNotPriced
from skylane.core.settings import Settings

__all__ = ["priced_targets"]


def priced_targets(principal: Principal, targets: list[Target], settings: Settings) -> list[Target]:
    """`targets` without the unpriced ones for a paying key; 402 when the requested model is unpriced."""
    record = principal.record
    if record is None or settings.allow_unpriced or not getattr(record, "billed", False):
        return targets
    first = targets[0]
    if not first.model.priced:
        raise ModelNotPriced(
            f"The model '{first.requested}' has no price on this gateway, and this key pays for what it uses "
            f"(credits or a monthly budget). The gateway's operator adds a price for it in the SKYLANE_CATALOG "
            f"file (a model row with `pricing`), or allows unpriced models with SKYLANE_ALLOW_UNPRICED=true.",
            param="model")
    return [t for t in targets if t.model.priced]
