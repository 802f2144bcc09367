"""One measured figure, optionally beside the anchor it is compared with in the same run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """``ratio`` is anchor / value for "lower is better" metrics (times), value / anchor otherwise."""

    benchmark: str
    case: str
    metric: str
    value: float
    unit: str
    anchor: str | None = None
    anchor_value: float | None = None
    lower_is_better: bool = True
    target: str | None = None
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.anchor_value is None or self.value == 0 or self.anchor_value == 0:
            return None
        return self.anchor_value / self.value if self.lower_is_better else self.value / self.anchor_value

    def cells(self) -> tuple[str, ...]:
        ratio = self.ratio
        return (
            self.benchmark,
            self.case,
            self.metric,
            f"{self.value:,.3f} {self.unit}",
            self.anchor or "",
            "" if self.anchor_value is None else f"{self.anchor_value:,.3f} {self.unit}",
            "" if ratio is None else f"{ratio:,.2f}x",
            self.target or "",
            {True: "yes", False: "NO", None: ""}[self.met],
        )
