"""Small-sample statistics for verdicts: Student's t distribution and Welch's two-sample t interval.

Pure stdlib (math only, no scipy/numpy): `lab verdict`, `lab status` and the digest import this and
must start fast. The t CDF goes through the regularized incomplete beta function, evaluated by its
continued fraction (modified Lentz, as in Numerical Recipes §6.4); quantiles invert the CDF by
safeguarded Newton steps. Accuracy: ~1e-12 for 1 ≤ df ≤ 1e4 (verdicts see df < 100), ~1e-8 by
df = 1e7, where lgamma's rounding dominates; df = math.inf is the normal distribution.
"""

from __future__ import annotations

import math

_EPS = 1e-15  # continued-fraction convergence, relative
_TINY = 1e-300  # keeps Lentz's denominators away from zero
_MAX_ITER = 100_000  # the fraction needs O(sqrt(a)) terms: df = 1e8 still converges


def mean(xs: list[float]) -> float:
    if not xs:
        raise ValueError("mean of no values: pass at least one")
    return math.fsum(xs) / len(xs)


def variance(xs: list[float]) -> float:
    """The sample variance (n - 1 in the denominator); needs at least two values."""
    if len(xs) < 2:
        raise ValueError(f"the sample variance needs at least 2 values, got {len(xs)}")
    m = mean(xs)
    return math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def std(xs: list[float]) -> float:
    return math.sqrt(variance(xs))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def betai(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betai needs a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betai needs 0 <= x <= 1, got x={x}")
    if x == 0.0 or x == 1.0:
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast only below (a+1)/(a+b+2); above it, use I_x(a,b) = 1 - I_{1-x}(b,a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_ppf(q: float) -> float:
    """The standard normal quantile: Acklam's rational approximation, then one Halley step (full precision)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs 0 < q < 1, got q={q}")
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771972e+01, -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
    if q < 0.02425 or q > 1 - 0.02425:
        r = math.sqrt(-2.0 * math.log(min(q, 1.0 - q)))
        x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / \
            ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1.0)
        x = x if q < 0.5 else -x
    else:
        s = q - 0.5
        r = s * s
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * s / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    e = normal_cdf(x) - q
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _check_df(df: float) -> None:
    if not df > 0:  # also catches NaN
        raise ValueError(f"degrees of freedom must be > 0, got {df}")


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with `df` degrees of freedom (df may be math.inf: the normal)."""
    _check_df(df)
    if math.isinf(df):
        return normal_cdf(t)
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betai(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_pdf(t: float, df: float) -> float:
    _check_df(df)
    if math.isinf(df):
        return math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi)
    log_norm = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t: Newton steps on t_cdf inside a bisection bracket."""
    _check_df(df)
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs 0 < q < 1, got q={q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    if q == 0.5:
        return 0.0
    z = normal_ppf(q)
    if math.isinf(df):
        return z
    # Start from the Cornish-Fisher expansion around the normal quantile; keep a bracket [lo, hi].
    x = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df)
    lo, hi = 0.0, max(2.0 * x, 1.0)
    while t_cdf(hi, df) < q:
        lo, hi = hi, 2.0 * hi
    x = x if lo < x < hi else (lo + hi) / 2.0
    for _ in range(200):
        err = t_cdf(x, df) - q
        step = err / t_pdf(x, df)
        if abs(step) <= 1e-13 * max(1.0, abs(x)):
            return x - step
        if err > 0:
            hi = x
        else:
            lo = x
        x -= step
        if not lo < x < hi:  # Newton left the bracket (heavy tails, small df): bisect instead
            x = (lo + hi) / 2.0
        if hi - lo <= 1e-13 * max(1.0, abs(x)):
            return x
    return x


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch–Satterthwaite degrees of freedom); ≥ 2 values each."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t needs at least 2 values per group, got {len(a)} and {len(b)}")
    va, vb = variance(a) / len(a), variance(b) / len(b)
    se2 = va + vb
    if se2 == 0.0:  # both groups constant: the pooled df is the only sensible limit
        return mean(a) - mean(b), 0.0, float(len(a) + len(b) - 2)
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return mean(a) - mean(b), math.sqrt(se2), df


def welch_df(n_a: int, n_b: int) -> float:
    """Welch's df when both groups have the same variance: what a study of these sizes plans with."""
    va, vb = 1.0 / n_a, 1.0 / n_b
    return (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))


def interval(diff: float, se: float, df: float, level: float = 0.95) -> tuple[float, float]:
    """The two-sided `level` confidence interval of a difference with standard error `se`."""
    half = t_ppf(0.5 + level / 2.0, df) * se
    return diff - half, diff + half


def ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's two-sided `level` confidence interval of mean(a) - mean(b)."""
    return interval(*welch(a, b), level=level)


def p_below(diff: float, se: float, df: float) -> float:
    """One-sided p-value for 'the true difference is below 0' (small p: diff is convincingly negative)."""
    if se == 0.0:
        return 0.0 if diff < 0 else 1.0 if diff > 0 else 0.5
    return t_cdf(diff / se, df)


def p_less(a: list[float], b: list[float]) -> float:
    """One-sided Welch p-value for mean(a) < mean(b)."""
    return p_below(*welch(a, b))


def p_greater(a: list[float], b: list[float]) -> float:
    """One-sided Welch p-value for mean(a) > mean(b)."""
    diff, se, df = welch(a, b)
    return p_below(-diff, se, df)
