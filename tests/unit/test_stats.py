"""lab/judge/stats.py against published table values (t tables, the normal quantile) and exact identities.

Cost: ~0.1 s, pure Python; fast set. Run: `just test tests/unit/test_stats.py`.
"""

from __future__ import annotations

import math

import pytest

from lab.judge import stats


@pytest.mark.parametrize("q, df, expected", [
    (0.975, 2, 4.302653), (0.975, 10, 2.228139), (0.95, 4, 2.131847), (0.8, 4, 0.940965),
    (0.975, 1, 12.706205), (0.995, 3, 5.840909), (0.99, 30, 2.457262), (0.9, 7, 1.414924),
    (0.999, 5, 5.893430), (0.975, 1e7, 1.959964),
])
def test_t_quantiles_match_the_tables(q, df, expected):
    assert stats.t_ppf(q, df) == pytest.approx(expected, abs=2e-6)
    assert stats.t_ppf(1 - q, df) == pytest.approx(-expected, abs=2e-6)


def test_t_cdf_inverts_the_quantile_and_is_symmetric():
    for df in (1, 2, 3.7, 8, 55.5):
        for t in (-7.0, -1.3, 0.0, 0.4, 2.9):
            assert stats.t_cdf(t, df) + stats.t_cdf(-t, df) == pytest.approx(1.0, abs=1e-14)
        for q in (0.01, 0.3, 0.5, 0.9, 0.9999):
            assert stats.t_cdf(stats.t_ppf(q, df), df) == pytest.approx(q, abs=1e-12)
    assert stats.t_cdf(0.0, 3) == 0.5
    assert stats.t_cdf(2.228139, 10) == pytest.approx(0.975, abs=1e-7)


def test_t_cdf_closed_forms():
    # df = 1 is the Cauchy distribution: 1/2 + atan(t)/pi; df = 2: 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-3.0, -0.5, 0.25, 1.0, 10.0):
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
        assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)


def test_large_df_is_the_normal():
    assert stats.normal_ppf(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert stats.normal_ppf(0.975) == pytest.approx(1.959963984540054, abs=1e-14)
    assert stats.t_ppf(0.975, math.inf) == stats.normal_ppf(0.975)
    assert stats.t_cdf(1.959963984540054, math.inf) == pytest.approx(0.975, abs=1e-14)
    assert stats.t_ppf(0.975, 1e6) == pytest.approx(1.959964, abs=5e-6)
    assert stats.normal_ppf(1e-10) == pytest.approx(-6.361340902404056, abs=1e-9)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="degrees of freedom must be > 0, got 0"):
        stats.t_cdf(1.0, 0)
    with pytest.raises(ValueError, match="0 < q < 1, got q=1.0"):
        stats.t_ppf(1.0, 3)
    with pytest.raises(ValueError, match="at least 2 values per group, got 1 and 3"):
        stats.welch([1.0], [1.0, 2.0, 3.0])


def test_welch_by_hand():
    # a = [1, 2, 3]: mean 2, var 1; b = [2, 4, 6, 8]: mean 5, var 20/3.
    # se^2 = 1/3 + (20/3)/4 = 1/3 + 5/3 = 2; df = 2^2 / ((1/3)^2/2 + (5/3)^2/3) = 4 / (1/18 + 25/27) = 216/53.
    diff, se, df = stats.welch([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert diff == pytest.approx(-3.0)
    assert se == pytest.approx(math.sqrt(2.0))
    assert df == pytest.approx(216 / 53)
    lo, hi = stats.ci([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    half = stats.t_ppf(0.975, 216 / 53) * math.sqrt(2.0)
    assert (lo, hi) == pytest.approx((-3.0 - half, -3.0 + half))
    # One-sided p-values of the two directions add up to 1; the better direction has the small one.
    p_less = stats.p_less([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert p_less == pytest.approx(stats.t_cdf(-3.0 / math.sqrt(2.0), 216 / 53))
    assert p_less + stats.p_greater([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]) == pytest.approx(1.0)
    assert p_less < 0.1


def test_welch_equal_variances_equal_sizes_gives_pooled_df():
    diff, se, df = stats.welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (diff, df) == pytest.approx((-3.0, 4.0))
    assert stats.welch_df(3, 3) == pytest.approx(4.0)
    assert stats.welch_df(3, 8) == pytest.approx((1 / 3 + 1 / 8) ** 2 / ((1 / 3) ** 2 / 2 + (1 / 8) ** 2 / 7))


def test_constant_groups_degenerate_cleanly():
    diff, se, df = stats.welch([2.0, 2.0], [3.0, 3.0, 3.0])
    assert (diff, se, df) == (-1.0, 0.0, 3.0)
    assert stats.p_below(-1.0, 0.0, 3.0) == 0.0
    assert stats.p_below(0.0, 0.0, 3.0) == 0.5
