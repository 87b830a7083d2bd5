"""The usage report of `GET /v1/usage`: ledger rows per key, UTC day and route, and their totals."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.services.usage import UsageReport


class UsageCounts(BaseModel):
    requests: int = Field(description="Successful billed requests.")
    texts: int = Field(description="Texts in those requests.")
    characters: int = Field(description="Characters (code points) in those texts.")
    credits: int = Field(description="Credits charged (for an unlimited key: what they would have cost).")
    tokens: int = Field(default=0, description="Language-model tokens (prompt and completion) of those requests.")


class UsageDay(UsageCounts):
    key: str = Field(description="The key's prefix.")
    day: date = Field(description="UTC day.")
    route: str


class UsageResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    object: Literal["list"] = "list"
    start: date = Field(alias="from", description="First day reported (UTC).")
    end: date = Field(alias="to", description="Last day reported (UTC), included.")
    data: list[UsageDay]
    total: UsageCounts

    @classmethod
    def of(cls, report: UsageReport) -> UsageResponse:
        totals = report.totals
        return cls(
            start=report.start,
            end=report.end,
            data=[
                UsageDay(
                    key=r.key_prefix,
                    day=r.day,
                    route=r.route,
                    requests=r.requests,
                    texts=r.texts,
                    characters=r.characters,
                    credits=r.credits,
                    tokens=r.tokens,
                )
                for r in report.rows
            ],
            total=UsageCounts(
                requests=totals.requests,
                texts=totals.texts,
                characters=totals.characters,
                credits=totals.credits,
                tokens=totals.tokens,
            ),
        )
