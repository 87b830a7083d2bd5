"""Credits: what a request costs, the atomic debit before inference, the refund when it fails.

A request costs `price(engine) x texts`; the price list comes from Settings. A key without a balance (None) is
unlimited: no database write happens for it. A key with a balance is debited with one conditional UPDATE (see
`KeyRepository.debit`), so concurrent requests, in any worker or replica, never spend the same credit twice.

`billed` (over `Billing.billed`) is the one place a use case calls: it debits after the input was validated and
the model resolved (so bad input is never billed and the engine is known), refunds if the work then fails, and
records usage when it succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

import anyio

from labelwise.errors import InsufficientBalance, StorageUnavailable
from labelwise.services.usage import UsageMeter
from labelwise.storage.repositories import KeyRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays for a request and what it is recorded under: the key prefix and the route."""

    key: str
    route: str
    metered: bool  # the key has a balance; False means unlimited


@dataclass(frozen=True, slots=True)
class Charge:
    """What a request was charged: its cost, and the balance left (None: the key is unlimited)."""

    cost: int
    remaining: int | None


class PriceList:
    """Credits per text, by engine; engines not listed cost `default`."""

    def __init__(self, prices: Mapping[str, int], default: int = 1) -> None:
        self.prices = dict(prices)
        self.default = default

    def cost(self, engine: str, texts: int) -> int:
        return self.prices.get(engine, self.default) * texts


class CreditService:
    """Prices requests and moves credits on the key's balance."""

    def __init__(self, repo: KeyRepository, prices: PriceList) -> None:
        self.repo = repo
        self.prices = prices

    def cost(self, engine: str, texts: int) -> int:
        """The credits `texts` texts cost on `engine` (also what the categories API reports as `metadata.cost`)."""
        return self.prices.cost(engine, texts)

    async def debit(self, payer: Payer, cost: int) -> Charge:
        """Take `cost` from the payer's balance; `InsufficientBalance` (402) when it does not cover it."""
        if not payer.metered or cost <= 0:
            return Charge(cost, None)
        remaining = await asyncio.to_thread(self.repo.debit, payer.key, cost)
        if remaining is not None:
            return Charge(cost, remaining)
        row = await asyncio.to_thread(self.repo.by_prefix, payer.key)
        if row is not None and row.credits is None:
            return Charge(cost, None)  # made unlimited since the key was verified
        balance = row.credits if row is not None and row.credits is not None else 0
        raise InsufficientBalance(
            f"credits: this request costs {cost:,} and the key's balance is {balance:,}", cost=cost, balance=balance
        )

    async def refund(self, payer: Payer, charge: Charge) -> None:
        """Give back a charge whose work failed. If the database went away since the debit, the refund cannot be
        written: it is logged as an error with the key's prefix and the amount, for the operator to credit, and the
        work's own error goes on to the caller (not replaced by the outage)."""
        if charge.remaining is not None and charge.cost > 0:
            try:
                await asyncio.to_thread(self.repo.refund, payer.key, charge.cost)
            except StorageUnavailable:
                logger.error(
                    "refund not written: the database is unavailable", extra={"key": payer.key, "credits": charge.cost}
                )


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """What a language-model request costs: a price per request plus a price per 1,000 tokens, rounded up."""

    per_request: int = 1
    per_1000_tokens: int = 10

    def cost(self, tokens: int) -> int:
        return self.per_request + math.ceil(max(0, tokens) * self.per_1000_tokens / 1000)


@dataclass(slots=True)
class Reservation:
    """Credits taken before work whose cost is known only after it (language-model tokens).

    The work calls `settle` with what it used; the unused part of the reservation is given back. `charge` is the
    reservation until then, the final charge after."""

    charge: Charge
    tokens: int = 0
    characters: int = 0
    settled: bool = False
    reserved_cost: int = -1

    def __post_init__(self) -> None:
        self.reserved_cost = self.charge.cost

    def settle(self, cost: int, *, tokens: int, characters: int) -> Charge:
        """The final charge: `cost`, capped at what was reserved (an estimate that fell short is not billed again).
        The balance it reports is the one after the unused part goes back."""
        reserved = self.reserved_cost
        final = min(cost, reserved)
        remaining = None if self.charge.remaining is None else self.charge.remaining + reserved - final
        self.charge = Charge(final, remaining)
        self.tokens, self.characters, self.settled = tokens, characters, True
        return self.charge


class Billing:
    """Credits and usage together, around one unit of billed work."""

    def __init__(self, credits: CreditService, usage: UsageMeter) -> None:
        self.credits = credits
        self.usage = usage

    def cost(self, engine: str, texts: int) -> int:
        return self.credits.cost(engine, texts)

    @asynccontextmanager
    async def billed(self, payer: Payer, engine: str, texts: Sequence[str]) -> AsyncIterator[Charge]:
        """Debit before the block, refund if it raises (cancellation included), record usage if it completes."""
        charge = await self.credits.debit(payer, self.cost(engine, len(texts)))
        try:
            yield charge
        except BaseException:
            await self.credits.refund(payer, charge)
            raise
        characters = sum(len(text) for text in texts)
        self.usage.record(payer.key, payer.route, texts=len(texts), characters=characters, credits=charge.cost)

    async def reserve(self, payer: Payer, cost: int) -> Reservation:
        """Debit `cost`, the most the work can cost, before work whose price is known only afterwards."""
        return Reservation(await self.credits.debit(payer, cost))

    async def close(self, payer: Payer, reservation: Reservation, *, completed: bool) -> None:
        """After reserved work: refund all of it if the work failed (or was cancelled), else the unused part and
        record usage, tokens included. Shielded: a cancelled request still gets its refund."""
        with anyio.CancelScope(shield=True):
            if not completed:
                await self.credits.refund(payer, Charge(reservation.reserved_cost, reservation.charge.remaining))
                return
            if not reservation.settled:
                reservation.settle(reservation.reserved_cost, tokens=0, characters=0)
            final = reservation.charge
            if reservation.reserved_cost > final.cost:
                await self.credits.refund(payer, Charge(reservation.reserved_cost - final.cost, final.remaining))
            self.usage.record(
                payer.key,
                payer.route,
                texts=1,
                characters=reservation.characters,
                credits=final.cost,
                tokens=reservation.tokens,
            )

    @asynccontextmanager
    async def reserved(self, payer: Payer, cost: int) -> AsyncIterator[Reservation]:
        """`reserve` before the block and `close` after it (a block that raises is refunded in full)."""
        reservation = await self.reserve(payer, cost)
        try:
            yield reservation
        except BaseException:
            await self.close(payer, reservation, completed=False)
            raise
        await self.close(payer, reservation, completed=True)


def billed(
    billing: Billing | None, payer: Payer | None, engine: str, texts: Sequence[str]
) -> AbstractAsyncContextManager[Charge | None]:
    """`Billing.billed` around a unit of work when there is a payer and billing is on; else the work runs unbilled
    and the charge is None (a request without a key, or a service built without billing)."""
    if billing is None or payer is None:
        return nullcontext(None)
    return billing.billed(payer, engine, texts)
