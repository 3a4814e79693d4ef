"""Terminal half-life and AUC to infinity in clinical.kinetics against PKNCA.

R 4.2.2, PKNCA 0.12.1 (CRAN), defaults (min.hl.points = 3, adj.r.squared.factor = 1e-4,
allow.tmax.in.half.life = FALSE, first.tmax = TRUE). Per patient ``x`` of PROFILES::

    hl <- pk.calc.half.life(x$c, x$t)    # lambda.z, half.life, r.squared, adj.r.squared,
                                         # lambda.z.n.points, lambda.z.time.first
    cl <- pk.calc.clast.obs(x$c, x$t)
    pk.calc.auc.last(x$c, x$t, method = m)
    pk.calc.auc.inf.obs(x$c, x$t, clast.obs = cl, lambda.z = hl$lambda.z, method = m)

with ``m`` = "linear" and "lin up/log down".
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from olinkpipe.clinical import kinetics
from olinkpipe.errors import OlinkpipeWarning, ValidationError

PROFILES = {
    "P1": ([0, 1, 4, 7, 10, 14, 21, 28], [0.5, 5, 80, 120, 60, 25, 8, 3]),
    "P2": ([0, 1, 4, 7, 10, 14, 21, 28], [1, 10, 200, 150, 90, 100, 30, 10]),
    "P3": ([0, 7, 14, 21, 28], [2, 10, 40, 30, 35]),  # two points after tmax
    "P4": ([0, 2, 4, 7, 10, 14, 21, 28], [0.2, 3, 50, 40, 20, 11, 6, 0]),  # last is 0
    "P5": ([0, 3, 7, 14, 21, 28], [1, 30, 20, 18, 9, 4.4]),
    "P6": ([0, 1, 3, 7, 10, 14, 21, 28], [1, 50, 100, 67.0, 49.7, 33.3, 16.5, 8.2]),
}
# lambda.z, half.life, r.squared, adj.r.squared, lambda.z.n.points, lambda.z.time.first
R_HL = {
    "P1": [0.151447395442864, 4.57681809933436, 0.998138240132127, 0.996276480264254, 3, 14],
    "P2": [0.164470363785289, 4.21441993929574, 0.999302570766204, 0.998605141532409, 3, 14],
    "P4": [0.10687096492258, 6.48583252768491, 0.977014286507474, 0.954028573014949, 3, 10],
    "P5": [0.100626229783711, 6.88833500022628, 0.999915183574202, 0.999830367148404, 3, 14],
    "P6": [0.100079193832179, 6.92598685119579, 0.999999063015064, 0.999998750686751, 5, 7],
}
# tlast; auc.last, aucinf.obs: method = "linear", then "lin up/log down"
R_AUC = {
    "P1": (28, [1024.25, 1044.05885832488], [989.971323367967, 1009.78018169285]),
    "P2": (28, [2180.5, 2241.30122746646], [2108.69908735035, 2169.50031481681]),
    "P3": (28, [689.5, np.nan], [687.824164774755, np.nan]),
    "P4": (21, [402.7, 458.842470542364], [395.16422399791, 451.306694540274]),
    "P5": (28, [420.9, 464.626173677157], [413.914973485947, 457.641147163104]),
    "P6": (28, [1111.3, 1193.23511244456], [1093.24949999082, 1175.18461243537]),
}


def _measurements() -> pd.DataFrame:
    rows = [
        {"patient": p, "day": d, "analyte": "CAR-T", "value": v}
        for p, (days, vals) in PROFILES.items()
        for d, v in zip(days, vals, strict=True)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module", params=["linear", "linear-up/log-down"])
def res(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        out = kinetics(_measurements(), analyte="CAR-T", auc=request.param, terminal=True)
    return request.param, out.set_index("patient")


def test_half_life_matches_pknca(res):
    _, out = res
    cols = ["lambda_z", "half_life", "r_squared", "adj_r_squared"]
    for p, ref in R_HL.items():
        np.testing.assert_allclose(out.loc[p, cols].to_numpy(float), ref[:4], rtol=1e-10)
        assert out.loc[p, "lambda_z_n_points"] == ref[4]
        assert out.loc[p, "lambda_z_first_day"] == ref[5]
    assert np.isnan(out.loc["P3", "lambda_z"])
    assert out.loc["P3", "lambda_z_n_points"] == 0
    assert "after tmax" in out.loc["P3", "reason"]


def test_auc_inf_matches_pknca(res):
    method, out = res
    i = 0 if method == "linear" else 1
    for p, (tlast, lin, log) in R_AUC.items():
        ref = [lin, log][i]
        assert out.loc[p, "tlast"] == tlast
        np.testing.assert_allclose(out.loc[p, "auc_last"], ref[0], rtol=1e-12)
        np.testing.assert_allclose(out.loc[p, "auc_inf"], ref[1], rtol=1e-12)
    # auc over the whole window equals auc_last where the last value is > 0
    assert out.loc["P1", "auc"] == pytest.approx(out.loc["P1", "auc_last"], rel=1e-14)
    assert out.loc["P4", "clast"] == 6


def test_terminal_is_opt_in_and_validated():
    out = kinetics(_measurements(), analyte="CAR-T")
    assert "lambda_z" not in out and out.attrs["terminal"] is False
    with pytest.raises(ValidationError):
        kinetics(_measurements(), analyte="CAR-T", terminal=True, lambda_z_min_points=1)


def test_min_points_option_and_tmax_excluded():
    # pk.calc.half.life(x$c, x$t, min.hl.points = 4): P1 -> lambda.z 0.164390097164972 on
    # 4 points (10, 14, 21, 28: tmax 7 excluded); P6 -> 0.100079193832179 on 5 points
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        out = kinetics(_measurements(), analyte="CAR-T", terminal=True, lambda_z_min_points=4)
    out = out.set_index("patient")
    assert out.loc["P1", "lambda_z"] == pytest.approx(0.164390097164972, rel=1e-10)
    assert out.loc["P1", "lambda_z_n_points"] == 4
    assert out.loc["P1", "lambda_z_first_day"] == 10
    assert out.loc["P6", "lambda_z"] == pytest.approx(0.100079193832179, rel=1e-10)
    assert out.loc["P6", "lambda_z_n_points"] == 5
