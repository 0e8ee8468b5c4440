"""The variables statistic of ANSI/ASQ Z1.9 and MIL-STD-414 (standard deviation method,
variability unknown): sample mean and standard deviation, the quality indices, and the estimate of
the lot's percent nonconforming that Form 2 compares with M.

Pure arithmetic, no I/O. The estimate is the minimum-variance unbiased one the standards tabulate
(Z1.9 Table B-5, MIL-STD-414 Table B-5; Lieberman and Resnikoff, JASA 50, 1955): with
a = (n - 2) / 2 and x = max(0, 1/2 - Q sqrt(n) / (2 (n - 1))), p = I_x(a, a), the regularized
incomplete beta function. The same relation ties each plan's k (Form 1) to its M (Form 2).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

MIN_SAMPLE = 3  # the smallest sample the standards' tables hold (code letter B)


def incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (Lentz's method), to double precision: no scipy."""
    if not (a > 0 and b > 0) or math.isnan(x):
        raise ValueError(f"incomplete beta needs a, b > 0 and a number x (a={a}, b={b}, x={x})")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return result
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def percent_nonconforming(q: float, n: int) -> float:
    """The estimate of the lot's percent beyond one limit, from that limit's quality index Q and
    the sample size (Table B-5's entry, unrounded)."""
    if n < MIN_SAMPLE:
        raise ValueError(f"a sample of {n}: the standard deviation method needs at least {MIN_SAMPLE}")
    if math.isinf(q):
        return 0.0 if q > 0 else 100.0
    x = 0.5 - q * math.sqrt(n) / (2.0 * (n - 1))
    a = (n - 2) / 2.0
    return 100.0 * incomplete_beta(a, a, min(max(x, 0.0), 1.0))


@cache
def k_from_m(m_pct: float, n: int) -> float:
    """The Form 1 constant k equivalent to a Form 2 limit M (%) for a sample of n: the Q whose
    estimate is exactly M. Used to check that a table's k and M columns agree."""
    if not 0.0 < m_pct < 50.0:
        raise ValueError(f"M = {m_pct} % is outside (0, 50) %")
    low, high = 0.0, (n - 1) / math.sqrt(n)  # the estimate is 50 % at Q = 0 and 0 from Q = high on
    for _ in range(64):  # halving 4 units 64 times: far below the tables' three digits
        middle = (low + high) / 2.0
        low, high = (middle, high) if percent_nonconforming(middle, n) > m_pct else (low, middle)
    return (low + high) / 2.0


@dataclass(frozen=True)
class Statistic:
    """One quantity's sample statistic against its limits, and the decision of the plan's form."""

    n: int
    mean: float
    sd: float
    lower: float | None  # spec limits, in the quantity's unit (None: no limit on that side)
    upper: float | None
    q_lower: float | None  # (mean - L) / s
    q_upper: float | None  # (U - mean) / s
    p_lower_pct: float | None  # estimated percent below L
    p_upper_pct: float | None
    form: str  # "k" (Form 1) or "M" (Form 2)
    k: float
    m_pct: float
    accepted: bool

    @property
    def p_pct(self) -> float:
        """The estimated percent nonconforming beyond both limits: what Form 2 compares with M."""
        return (self.p_lower_pct or 0.0) + (self.p_upper_pct or 0.0)

    def reason(self) -> str:
        if self.form == "k":
            q, side = (self.q_upper, "Q_U") if self.upper is not None else (self.q_lower, "Q_L")
            return f"{side} = {_shown(q)} {'>=' if self.accepted else '<'} k = {self.k:g}"
        return f"p = {self.p_pct:.3f} % {'<=' if self.accepted else '>'} M = {self.m_pct:g} %"


def _shown(value: float | None) -> str:
    return "n/a" if value is None else "inf" if math.isinf(value) else f"{value:.3f}"


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and standard deviation (n - 1 divisor), as the standards compute them."""
    n = len(values)
    if n < MIN_SAMPLE:
        raise ValueError(f"a sample of {n}: the standard deviation method needs at least {MIN_SAMPLE}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("every value must be a finite number")
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def _index(distance: float, sd: float) -> float:
    """A quality index; a sample with no spread is infinitely inside (or outside) its limit."""
    if sd > 0:
        return distance / sd
    return math.inf if distance > 0 else -math.inf


def judge(values: Sequence[float], lower: float | None, upper: float | None, form: str, k: float,
          m_pct: float) -> Statistic:
    """The plan's decision on one quantity. Form "k" (Form 1, one limit): accept when Q >= k.
    Form "M" (Form 2, one or both limits): accept when the estimated percent nonconforming beyond
    the limits, p_L + p_U, is at most M."""
    if lower is None and upper is None:
        raise ValueError("a quantity needs at least one specification limit")
    if lower is not None and upper is not None and not lower < upper:
        raise ValueError(f"the lower limit {lower} is not below the upper limit {upper}")
    if form == "k" and lower is not None and upper is not None:
        raise ValueError("Form 1 (k) judges one limit; double limits use Form 2 (M)")
    if form not in ("k", "M"):
        raise ValueError(f"form {form!r} is neither 'k' nor 'M'")
    n = len(values)
    mean, sd = mean_sd(values)
    q_lower = _index(mean - lower, sd) if lower is not None else None
    q_upper = _index(upper - mean, sd) if upper is not None else None
    p_lower = percent_nonconforming(q_lower, n) if q_lower is not None else None
    p_upper = percent_nonconforming(q_upper, n) if q_upper is not None else None
    if form == "k":
        q = q_upper if q_upper is not None else q_lower
        assert q is not None
        accepted = q >= k
    else:
        accepted = (p_lower or 0.0) + (p_upper or 0.0) <= m_pct
    return Statistic(n, mean, sd, lower, upper, q_lower, q_upper, p_lower, p_upper, form, k, m_pct, accepted)
