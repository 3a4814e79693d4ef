"""tl.differential(method="wilcoxon", wilcoxon_ci="uniroot") against R's wilcox.test.

The expected values were computed once with R 4.2.2, ``wilcox.test(target, reference,
paired = ..., conf.int = TRUE, conf.level = ...)`` on exactly the numbers generated below
(written with 17 significant digits and read back by R), and printed with
``sprintf("%.17g")``. R is not needed to run these tests.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning, ValidationError
from olinkpipe.tl import _kernels, _rwilcox

NAN = float("nan")
TOL = 1e-12


# --------------------------------------------------------------------------------------
# data: (reference, target) matrices, rows = pairs or samples, columns = assays


def paired_case(seed, n_pairs, n_assays, *, decimals=None, nan_frac=0.0):
    """Normal data, shifts from -0.4 to 0.6; rounding gives ties and zero differences."""
    rng = np.random.default_rng(seed)
    shift = np.linspace(-0.4, 0.6, n_assays)
    ref = rng.normal(5.0, 1.0, (n_pairs, n_assays))
    tgt = ref + shift + rng.normal(0.0, 0.6, (n_pairs, n_assays))
    if decimals is not None:
        ref, tgt = np.round(ref, decimals), np.round(tgt, decimals)
    if nan_frac:
        ref[rng.random(ref.shape) < nan_frac] = np.nan
        tgt[rng.random(tgt.shape) < nan_frac] = np.nan
    return ref, tgt


def unpaired_case(seed, n_tgt, n_ref, n_assays, *, decimals=None, nan_frac=0.0):
    rng = np.random.default_rng(seed)
    shift = np.linspace(-0.5, 0.7, n_assays)
    ref = rng.normal(5.0, 1.0, (n_ref, n_assays))
    tgt = rng.normal(5.0, 1.0, (n_tgt, n_assays)) + shift
    if decimals is not None:
        ref, tgt = np.round(ref, decimals), np.round(tgt, decimals)
    if nan_frac:
        ref[rng.random(ref.shape) < nan_frac] = np.nan
        tgt[rng.random(tgt.shape) < nan_frac] = np.nan
    return ref, tgt


def _columns(cols_ref, cols_tgt):
    """Matrices from columns of different lengths (NaN padded)."""
    k = max(len(c) for c in [*cols_ref, *cols_tgt])
    ref = np.full((k, len(cols_ref)), np.nan)
    tgt = np.full((k, len(cols_tgt)), np.nan)
    for j, (a, b) in enumerate(zip(cols_ref, cols_tgt, strict=True)):
        ref[: len(a), j] = a
        tgt[: len(b), j] = b
    return ref, tgt


def paired_edges():
    """Differences with few non-zero values, all equal, all zero, heavy ties."""
    rng = np.random.default_rng(7)
    diffs = [
        [0, 0, 0, 0.5, 0.7],  # 2 non-zero: alpha doubles past 1, CI = median
        [0.3] * 6,  # all equal: R gives the midrange and no CI
        [0] * 6,  # all zero: nothing
        [0, 0.1, 0.1, -0.1, 0.2, 0.3],
        [1, 2, 3, -1, 0, 0, 2, 2, 5, 6],
        [0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.3],
        list(np.round(rng.normal(0.2, 1, 12), 0)),
        list(np.round(rng.normal(0.2, 1, 30), 1)),
    ]
    ref = [[5.0] * len(d) for d in diffs]
    tgt = [[5.0 + v for v in d] for d in diffs]
    return _columns(ref, tgt)


def unpaired_edges():
    """Constant groups (R stops: all tied), CI at the interval ends, estimate outside the CI."""
    rng = np.random.default_rng(8)
    pairs = [  # (target, reference)
        ([1, 1, 1], [1, 1, 1]),
        ([1, 2, 3], [1, 1, 1]),
        ([1, 1, 1], [2, 2, 2]),
        ([1, 2, 2, 3, 3, 3], [2, 2, 2, 4]),
        (list(np.round(rng.normal(0, 1, 8), 0)), list(np.round(rng.normal(1, 1, 9), 0))),
        ([5.0] * 60, list(rng.normal(5, 1, 3))),
        (list(rng.normal(0, 1, 3)), list(rng.normal(1, 1, 70))),
    ]
    return _columns([r for _, r in pairs], [t for t, _ in pairs])


# name: (paired, data, conf_level)
CASES = {
    "paired_nan": (True, lambda: paired_case(101, 60, 8, nan_frac=0.02), 0.95),
    "paired_ties_1dp": (True, lambda: paired_case(102, 80, 6, decimals=1), 0.95),
    "paired_ties_2dp_nan": (
        True,
        lambda: paired_case(103, 55, 6, decimals=2, nan_frac=0.05),
        0.95,
    ),
    "paired_small_ties": (True, lambda: paired_case(104, 15, 4, decimals=1), 0.95),
    "paired_large_cl90": (True, lambda: paired_case(106, 300, 4, nan_frac=0.03), 0.9),
    "paired_edges": (True, paired_edges, 0.95),
    "paired_exact": (True, lambda: paired_case(105, 20, 4), 0.95),
    "unpaired_nan": (False, lambda: unpaired_case(201, 60, 55, 8, nan_frac=0.02), 0.95),
    "unpaired_ties": (False, lambda: unpaired_case(202, 70, 40, 6, decimals=1), 0.95),
    "unpaired_small_ties": (False, lambda: unpaired_case(203, 30, 25, 4, decimals=1), 0.95),
    "unpaired_cl99": (False, lambda: unpaired_case(205, 120, 50, 4, nan_frac=0.05), 0.99),
    "unpaired_edges": (False, unpaired_edges, 0.95),
    "unpaired_exact": (False, lambda: unpaired_case(204, 20, 15, 4), 0.95),
}


# name: {OlinkID: (estimate, ci_low, ci_high, p_value, R used the exact test)}
R_VALUES = {
    "paired_nan": {
        "OID0": (
            -0.39554874226892717,
            -0.55777747334042882,
            -0.22168409166395772,
            4.4993602038172903e-05,
            False,
        ),
        "OID1": (
            -0.23028679889210835,
            -0.37793107804130177,
            -0.075999506078408843,
            0.0030461182743248862,
            False,
        ),
        "OID2": (
            -0.061711904851425102,
            -0.22262694103246222,
            0.090628178956042291,
            0.41595601485948608,
            False,
        ),
        "OID3": (
            -0.13315213409219823,
            -0.32992610132218975,
            0.075990753511029824,
            0.24970494594648021,
            False,
        ),
        "OID4": (
            0.036613208108336882,
            -0.13205989664977044,
            0.21638206195398663,
            0.7086834723361044,
            False,
        ),
        "OID5": (
            0.31766338520094717,
            0.15866017250702802,
            0.45814169780361436,
            0.00015824400977978097,
            False,
        ),
        "OID6": (
            0.38858438361640091,
            0.21574631951645576,
            0.53538030315546126,
            1.353947446418421e-05,
            False,
        ),
        "OID7": (
            0.52435583320497714,
            0.34742160896784968,
            0.72388706188782437,
            2.3840399959993601e-07,
            False,
        ),
    },
    "paired_ties_1dp": {
        "OID0": (
            -0.54999537769959839,
            -0.65000636750645735,
            -0.39995479224463881,
            7.4893060690347919e-08,
            False,
        ),
        "OID1": (
            -0.35000080376071835,
            -0.50004819263782441,
            -0.20004295047345905,
            5.387613571210088e-06,
            False,
        ),
        "OID2": (
            -0.050051898695362251,
            -0.20002293047058384,
            0.049964812684873725,
            0.2240582156700007,
            False,
        ),
        "OID3": (
            0.29996745157793364,
            0.14996804645275585,
            0.44993716915248194,
            0.00030218154567998769,
            False,
        ),
        "OID4": (
            0.25001078346004535,
            0.10007076566142911,
            0.4000524835540647,
            0.00034946607892628255,
            False,
        ),
        "OID5": (
            0.60001197037349641,
            0.45001613963659204,
            0.7499872460023338,
            2.7570976358997812e-10,
            False,
        ),
    },
    "paired_ties_2dp_nan": {
        "OID0": (
            -0.41496634561675338,
            -0.60002294848561466,
            -0.25001535767204525,
            2.3600498546101853e-05,
            False,
        ),
        "OID1": (
            -0.18505739861755022,
            -0.38500680041904572,
            0.0099975155835995613,
            0.05843011707150015,
            False,
        ),
        "OID2": (
            -0.10004430323796684,
            -0.2700358312330573,
            0.074915415937621715,
            0.2338696086733128,
            False,
        ),
        "OID3": (
            0.24996533524900683,
            0.055024009055938183,
            0.41506030716923153,
            0.007853522741961598,
            False,
        ),
        "OID4": (
            0.57004805404741954,
            0.38497458635305204,
            0.7749388880479855,
            1.5726660313178175e-06,
            False,
        ),
        "OID5": (
            0.60501795587070362,
            0.41998899710851678,
            0.79504623081445902,
            9.9611610797011146e-07,
            False,
        ),
    },
    "paired_small_ties": {
        "OID0": (
            -0.400033706351478,
            -0.69995543175255059,
            -0.15001697828405408,
            0.0016029435193269206,
            False,
        ),
        "OID1": (
            0.10002183213660075,
            -0.39997283285802382,
            0.55004309469267099,
            0.66589566939105493,
            False,
        ),
        "OID2": (
            0.050082152525411414,
            -0.19997105062393208,
            0.30005164720394417,
            0.56881140041333722,
            False,
        ),
        "OID3": (
            0.74999870248404299,
            0.25003079952509516,
            1.1000534480276309,
            0.0034249743403918461,
            False,
        ),
    },
    "paired_large_cl90": {
        "OID0": (
            -0.34371609367209116,
            -0.40627579621206933,
            -0.28176679237539909,
            3.098157103835742e-17,
            False,
        ),
        "OID1": (
            -0.12687012102610654,
            -0.18440487194549393,
            -0.066911081268065123,
            0.00053241004547679798,
            False,
        ),
        "OID2": (
            0.25963292894226697,
            0.19267562919030976,
            0.32609553732712621,
            2.3308709685184248e-10,
            False,
        ),
        "OID3": (
            0.63826058950438824,
            0.57865412871918098,
            0.6997028977471963,
            2.1113690275366407e-35,
            False,
        ),
    },
    "paired_edges": {
        "OID0": (
            0.60000000000000009,
            0.60000000000000009,
            0.60000000000000009,
            0.37109336952269756,
            False,
        ),
        "OID1": (0.29999999999999982, NAN, NAN, 0.019656157250169875, False),
        "OID2": (NAN, NAN, NAN, NAN, False),
        "OID3": (
            0.10000000000000009,
            -0.099999999999999645,
            0.29999999999999982,
            0.16956414519056334,
            False,
        ),
        "OID4": (
            2.0771024096845112,
            0.5000355417513298,
            4.4999841061029056,
            0.02417705919026826,
            False,
        ),
        "OID5": (
            0.15005736748547419,
            0.099999999999999645,
            0.24996658365963648,
            0.02060029908628238,
            False,
        ),
        "OID6": (0.4999871620348888, -1, 1.4999739425704091, 0.57160764495333161, False),
        "OID7": (
            -0.25001423022838826,
            -0.64999836650474041,
            0.099965306807559468,
            0.10764200589678805,
            False,
        ),
    },
    "paired_exact": {
        "OID0": (
            -0.48670387391068481,
            -0.81012608818163478,
            -0.15865929266666967,
            0.0072956085205078125,
            True,
        ),
        "OID1": (
            0.030637003170300936,
            -0.18047588624497912,
            0.21068659273611612,
            0.64765548706054688,
            True,
        ),
        "OID2": (
            0.16450855714650847,
            -0.22865719403827711,
            0.57476293602928741,
            0.47490501403808594,
            True,
        ),
        "OID3": (
            0.77903546420277847,
            0.41594879953133113,
            1.0794533056804529,
            0.0005855560302734375,
            True,
        ),
    },
    "unpaired_nan": {
        "OID0": (
            -0.40258335977645548,
            -0.7887636996852686,
            -0.029359496482834899,
            0.033513116447745704,
            False,
        ),
        "OID1": (
            -0.18953187397347532,
            -0.59761563368035153,
            0.25469581086862164,
            0.40252521401253888,
            False,
        ),
        "OID2": (
            -0.24426519015882051,
            -0.66030860097366861,
            0.12128412171709306,
            0.18711509219710157,
            False,
        ),
        "OID3": (
            -0.48414486444899607,
            -0.87297340477382412,
            -0.075132011777542487,
            0.018131091139653922,
            False,
        ),
        "OID4": (
            0.30777025839201866,
            -0.10077318630404178,
            0.70489180939564045,
            0.13960850080028672,
            False,
        ),
        "OID5": (
            0.42607636425048129,
            0.045781654248079125,
            0.8070012359640677,
            0.026085056223983005,
            False,
        ),
        "OID6": (
            0.47432096780013122,
            0.070632145668917082,
            0.86608173746051986,
            0.026996999776442085,
            False,
        ),
        "OID7": (
            0.60150983271143077,
            0.26970599856948596,
            0.95824897439877244,
            0.00073297372068721275,
            False,
        ),
    },
    "unpaired_ties": {
        "OID0": (
            -0.89996599880597294,
            -1.2000532408259263,
            -0.50000443851041054,
            1.6776807583844595e-05,
            False,
        ),
        "OID1": (
            -0.70002764877136037,
            -1.1999859015531971,
            -0.30001428751154979,
            0.00035763592953215928,
            False,
        ),
        "OID2": (
            -0.39998160872449107,
            -0.79996908822383861,
            0.099981645544718681,
            0.12157279237337361,
            False,
        ),
        "OID3": (
            0.19996030010609517,
            -0.29998988085987793,
            0.59999602271736152,
            0.48811283507693676,
            False,
        ),
        "OID4": (
            0.6000579327694493,
            0.19993180453950962,
            1.100034999473908,
            0.0072318100002945205,
            False,
        ),
        "OID5": (
            0.50002282549332788,
            0.19993176156620696,
            0.89999412882001828,
            0.0051768416241589543,
            False,
        ),
    },
    "unpaired_small_ties": {
        "OID0": (
            -0.20004533622675133,
            -0.79993410449796987,
            0.29994130285373555,
            0.30997897968639593,
            False,
        ),
        "OID1": (
            0.099969605303262432,
            -0.59997904136742342,
            0.60004672086920485,
            0.80615676646230738,
            False,
        ),
        "OID2": (
            0.29999186236873987,
            -0.20000921040620045,
            0.70000636959982443,
            0.3346802851205436,
            False,
        ),
        "OID3": (
            0.79998706783443008,
            0.19996564212789503,
            1.3000368266391464,
            0.01219960781429532,
            False,
        ),
    },
    "unpaired_cl99": {
        "OID0": (
            -0.26403131342864183,
            -0.71947311787538515,
            0.19721783182260769,
            0.11502015883059617,
            False,
        ),
        "OID1": (
            -0.28600772631499594,
            -0.74795294932641099,
            0.18882714182226351,
            0.12024412465144453,
            False,
        ),
        "OID2": (
            0.28583748842149526,
            -0.17606786248008546,
            0.72911373887123021,
            0.091254559453895726,
            False,
        ),
        "OID3": (
            0.51668255655318418,
            -0.014168755163545944,
            1.014571871678315,
            0.012486839688811854,
            False,
        ),
    },
    "unpaired_edges": {
        "OID0": (NAN, NAN, NAN, None, None),  # R: error
        "OID1": (1, 0, 2, 0.19670560245894686, False),
        "OID2": (NAN, NAN, NAN, None, None),  # R: error
        "OID3": (4.4631561563056906e-05, -1.9999644181045502, 1, 1, False),
        "OID4": (
            -2.0193707102110521,
            -3.0000083018901336,
            -1.0000183087095893,
            0.00141029800402194,
            False,
        ),
        "OID5": (
            0.30160277579925632,
            0.30148210366161787,
            0.30158837515331549,
            0.0098796050761934349,
            False,
        ),
        "OID6": (
            -1.2741936382776897,
            -2.8263508172491516,
            0.0025731297660343396,
            0.050102329594961782,
            False,
        ),
    },
    "unpaired_exact": {
        "OID0": (
            -0.55919634747900426,
            -1.3621786458990162,
            0.36406106220399703,
            0.17936824608716362,
            True,
        ),
        "OID1": (
            -0.045352527489062044,
            -0.8588081172580706,
            0.59018156482454032,
            0.85644041196829324,
            True,
        ),
        "OID2": (
            0.90764450095861404,
            0.028876844755698627,
            1.683213561894874,
            0.042662396222475758,
            True,
        ),
        "OID3": (
            0.45630330024797061,
            -0.35740529920894382,
            1.213376624314205,
            0.34671227189825571,
            True,
        ),
    },
}

# wilcoxon_ci="order" (the default) before wilcoxon_ci existed: (estimate, ci_low, ci_high)
ORDER_BEFORE = {
    "paired_ties_1dp": {
        "OID0": (-0.5, -0.6499999999999995, -0.34999999999999987),
        "OID1": (-0.3500000000000001, -0.5, -0.20000000000000018),
        "OID2": (-0.050000000000000266, -0.15000000000000036, 0.04999999999999982),
        "OID3": (0.25, 0.10000000000000031, 0.3999999999999999),
        "OID4": (0.2500000000000002, 0.10000000000000031, 0.3999999999999999),
        "OID5": (0.5999999999999996, 0.44999999999999996, 0.7000000000000002),
    },
    "unpaired_nan": {
        "OID0": (-0.4021248013445593, -0.7887722033066105, -0.02927609357934635),
        "OID1": (-0.1894211583783174, -0.5976344786979872, 0.254717396490431),
        "OID2": (-0.24318113166195232, -0.6603222714957075, 0.12135693493156285),
        "OID3": (-0.4840795855092068, -0.8729393801599779, -0.07519581117477259),
        "OID4": (0.30796010502871773, -0.10068346162099395, 0.7048716692907009),
        "OID5": (0.4248220816972754, 0.04571429486357648, 0.8070660345566454),
        "OID6": (0.4743898720548376, 0.0706408973725674, 0.8660352723844698),
        "OID7": (0.6015263783113354, 0.2696568271177826, 0.9582787697623996),
    },
}


# --------------------------------------------------------------------------------------
# helpers


def _adata(paired: bool, ref: np.ndarray, tgt: np.ndarray) -> ad.AnnData:
    if paired:
        n = ref.shape[0]
        subj = [f"P{i}" for i in range(n)]
        obs = pd.DataFrame({"Subject": subj * 2, "Time": ["Baseline"] * n + ["Week.6"] * n})
    else:
        obs = pd.DataFrame({"Time": ["Baseline"] * ref.shape[0] + ["Week.6"] * tgt.shape[0]})
    obs.index = [f"S{i}" for i in range(len(obs))]
    var = pd.DataFrame(index=pd.Index([f"OID{j}" for j in range(ref.shape[1])], name="OlinkID"))
    return ad.AnnData(np.vstack([ref, tgt]), obs=obs, var=var)


def _run(name: str, **kw) -> pd.DataFrame:
    paired, data, conf_level = CASES[name]
    with warnings.catch_warnings():  # e.g. a CI level R cannot reach: tested on its own
        warnings.simplefilter("ignore", OlinkpipeWarning)
        res = op.tl.differential(
            _adata(paired, *data()),
            groupby="Time",
            reference="Baseline",
            pair="Subject" if paired else None,
            method="wilcoxon",
            conf_level=conf_level,
            **kw,
        )
    return res.set_index("OlinkID")


def _close(ours: float, r: float, tol: float = TOL) -> bool:
    if np.isnan(r):
        return bool(np.isnan(ours))
    return abs(ours - r) <= tol


# --------------------------------------------------------------------------------------
# R's values


@pytest.mark.parametrize("name", list(CASES))
def test_uniroot_equals_r(name):
    res = _run(name, wilcoxon_ci="uniroot")
    assert res.attrs["wilcoxon_ci"] == "uniroot"
    bad = []
    for oid, (est, lo, hi, p, _) in R_VALUES[name].items():
        row = res.loc[oid]
        got = (row["estimate"], row["ci_low"], row["ci_high"])
        if not all(_close(g, r) for g, r in zip(got, (est, lo, hi), strict=True)):
            bad.append((oid, got, (est, lo, hi)))
        if p is not None and not _close(row["p_value"], p, TOL * max(p, 1e-300)):
            bad.append((oid, "p", row["p_value"], p))
    assert not bad, bad


def test_cases_cover_the_asymptotic_branch():
    asym = [v for case in R_VALUES.values() for v in case.values() if v[4] is False]
    assert len(asym) >= 60
    # R's estimate is not the Hodges–Lehmann median there: the modes differ
    res_u = _run("paired_nan")  # the default
    res_o = _run("paired_nan", wilcoxon_ci="order")
    assert not np.array_equal(res_u["estimate"], res_o.loc[res_u.index, "estimate"])


@pytest.mark.parametrize("name", ["paired_exact", "unpaired_exact"])
def test_exact_branch_same_in_both_modes(name):
    assert all(v[4] for v in R_VALUES[name].values())  # R used the exact test
    order = _run(name, wilcoxon_ci="order")
    uni = _run(name, wilcoxon_ci="uniroot")
    cols = ["estimate", "ci_low", "ci_high", "p_value", "statistic"]
    pd.testing.assert_frame_equal(order[cols], uni.loc[order.index, cols], check_exact=True)
    for oid, (est, lo, hi, _, _) in R_VALUES[name].items():
        got = order.loc[oid, ["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, [est, lo, hi], rtol=0, atol=TOL)


# --------------------------------------------------------------------------------------
# "order" stays what it was


@pytest.mark.parametrize("name", list(ORDER_BEFORE))
def test_order_mode_unchanged(name):
    """wilcoxon_ci="order" gives the values the code gave before "uniroot" existed (and
    the default is now "uniroot", R's values)."""
    order = _run(name, wilcoxon_ci="order")
    assert order.attrs["wilcoxon_ci"] == "order"
    assert _run(name).attrs["wilcoxon_ci"] == "uniroot"
    for oid, vals in ORDER_BEFORE[name].items():
        got = order.loc[oid, ["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, vals, rtol=0, atol=TOL)


def test_kernels_default_is_order():
    ref, tgt = paired_case(102, 80, 6, decimals=1)
    d = tgt - ref
    a = _kernels.signed_rank(d)
    b = _kernels.signed_rank(d, ci_method="order")
    for k in ("estimate", "ci_low", "ci_high", "p_value"):
        np.testing.assert_array_equal(a[k], b[k])
    ref, tgt = unpaired_case(202, 70, 40, 6, decimals=1)
    a = _kernels.rank_sum(tgt, ref)
    b = _kernels.rank_sum(tgt, ref, ci_method="order")
    for k in ("estimate", "ci_low", "ci_high", "p_value"):
        np.testing.assert_array_equal(a[k], b[k])


def test_wilcoxon_ci_argument_checked_and_recorded():
    paired, data, _ = CASES["paired_small_ties"]
    adata = _adata(paired, *data())
    kw = {"groupby": "Time", "reference": "Baseline", "pair": "Subject"}
    with pytest.raises(op.errors.DesignError, match="wilcoxon_ci"):
        op.tl.differential(adata, method="wilcoxon", wilcoxon_ci="exact", **kw)
    assert op.tl.differential(adata, method="ttest", **kw).attrs["wilcoxon_ci"] is None
    # without the Hodges–Lehmann part the mode changes nothing
    a = op.tl.differential(adata, method="wilcoxon", hodges_lehmann=False, **kw)
    b = op.tl.differential(
        adata, method="wilcoxon", hodges_lehmann=False, wilcoxon_ci="uniroot", **kw
    )
    cols = ["estimate", "ci_low", "ci_high", "p_value"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


# --------------------------------------------------------------------------------------
# the building blocks against R


def test_qnorm_equals_r():
    # R: sprintf("%.17g", qnorm(p)) and qnorm(p, lower.tail = FALSE)
    r = {
        0.025: -1.9599639845400538,
        0.05: -1.6448536269514726,
        0.1: -1.2815515655446008,
        0.2: -0.84162123357291418,
        0.4: -0.25334710313579978,
        0.001: -3.0902323061678132,
        1e-12: -7.0344838253011321,
        0.3: -0.52440051270804067,
    }
    for p, q in r.items():
        assert _rwilcox.qnorm(p) == q
    assert _rwilcox.qnorm(0.2, lower_tail=False) == 0.84162123357291441  # not -qnorm(0.2)
    assert _rwilcox.qnorm(0.8) == 0.84162123357291441
    assert _rwilcox.qnorm(0.025, lower_tail=False) == 1.9599639845400538


@pytest.mark.parametrize(
    ("f", "interval", "tol", "root"),
    [  # R: sprintf("%.17g", uniroot(f, interval, tol = tol)$root)
        (lambda x: np.cos(x) - x, (0.0, 1.0), 1e-4, 0.73909105828536981),
        (lambda x: np.cos(x) - x, (0.0, 1.0), np.finfo(float).eps ** 0.25, 0.73909105828536981),
        (lambda x: x**3 - 2, (-1.0, 3.0), 1e-4, 1.2598972456931505),
        (lambda x: np.where(x < 0.3, 1.0, -1.0), (0.0, 1.0), 1e-4, 0.29998779296875),
    ],
)
def test_zeroin_equals_r_uniroot(f, interval, tol, root):
    a, b = np.array([interval[0]]), np.array([interval[1]])
    got = _rwilcox.zeroin(lambda idx, d: f(d), a, b, f(a), f(b), tol=tol)
    assert got[0] == root


def test_rows_with_different_numbers_of_values():
    """Vectorised over assays with NaN: each row equals the same row computed alone."""
    ref, tgt = paired_case(103, 55, 6, decimals=2, nan_frac=0.05)
    d = (tgt - ref).T
    d[0, :20] = np.nan  # a row with far fewer pairs
    together = _rwilcox.signed_rank_uniroot(d)[:3]
    for i in range(d.shape[0]):
        alone = _rwilcox.signed_rank_uniroot(d[i : i + 1])[:3]
        for t, a in zip(together, alone, strict=True):
            assert t[i] == a[0] or (np.isnan(t[i]) and np.isnan(a[0]))
    ref, tgt = unpaired_case(201, 60, 55, 8, nan_frac=0.02)
    tgt[:30, 1] = np.nan
    together = _rwilcox.rank_sum_uniroot(tgt.T, ref.T)[:3]
    for i in range(tgt.shape[1]):
        alone = _rwilcox.rank_sum_uniroot(tgt.T[i : i + 1], ref.T[i : i + 1])[:3]
        for t, a in zip(together, alone, strict=True):
            assert t[i] == a[0] or (np.isnan(t[i]) and np.isnan(a[0]))


def test_conf_level_must_be_a_probability():
    paired, data, _ = CASES["paired_small_ties"]
    adata = _adata(paired, *data())
    for bad in (0.0, 1.0, 1.5):  # 1.0 made R's alpha-doubling loop run forever
        with pytest.raises(ValidationError, match="conf_level"):
            op.tl.differential(
                adata,
                groupby="Time",
                reference="Baseline",
                pair="Subject",
                method="wilcoxon",
                conf_level=bad,
            )
        with pytest.raises(ValidationError, match="conf_level"):
            _rwilcox.signed_rank_uniroot(np.ones((1, 5)), conf_level=bad)


def test_lower_confidence_level_is_reported_as_r_does():
    """Few tied differences: R doubles alpha and warns 'requested conf.level not
    achievable'. R 4.2.2, wilcox.test(c(0.1, 0.1, 0.2, 0.3, 0.15), conf.int = TRUE):
    conf.level 0.79999999999999982, conf.int 0.10000000000000001 0.22507105372705069,
    estimate 0.15003112683313863."""
    d = np.array([[0.1, 0.1, 0.2, 0.3, 0.15]])
    est, lo, hi, level = _rwilcox.signed_rank_uniroot(d)
    assert level[0] == 0.79999999999999982
    assert (est[0], lo[0], hi[0]) == (0.15003112683313863, 0.1, 0.22507105372705069)
    x = np.vstack([np.zeros(5), d[0]])  # reference 0, target d: one paired assay
    obs = pd.DataFrame(
        {"g": ["r"] * 5 + ["t"] * 5, "p": [f"P{i}" for i in range(5)] * 2},
        index=[f"S{i}" for i in range(10)],
    )
    adata = ad.AnnData(
        x.reshape(-1, 1),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(["OID00001"], name="OlinkID")),
    )
    with pytest.warns(OlinkpipeWarning, match="cannot reach the requested level"):
        res = op.tl.differential(adata, groupby="g", reference="r", pair="p", method="wilcoxon")
    assert res.loc[0, "reason"].startswith("CI at 0.8 confidence")
    assert res.loc[0, "ci_low"] == lo[0] and res.loc[0, "ci_high"] == hi[0]


def test_exact_true_with_ties_falls_back_as_r_does():
    """R 4.2.2 (values below): wilcox.test(..., exact = TRUE, conf.int = TRUE) with ties
    warns and uses the normal approximation with continuity correction, for the p-value,
    the estimate and the CI."""
    d = np.array([0.1, 0.1, 0.2, 0.3, 0.15, -0.05, 0.2, 0.4])
    n = d.size
    obs = pd.DataFrame(
        {"g": ["r"] * n + ["t"] * n, "p": [f"P{i}" for i in range(n)] * 2},
        index=[f"S{i}" for i in range(2 * n)],
    )
    var = pd.DataFrame(index=pd.Index(["OID00001"], name="OlinkID"))
    paired = ad.AnnData(np.concatenate([np.zeros(n), d]).reshape(-1, 1), obs=obs, var=var)
    res = op.tl.differential(
        paired, groupby="g", reference="r", pair="p", method="wilcoxon", exact=True
    )
    r_p, r_est, r_lo, r_hi = (
        0.020550301646476272,
        0.17492975356387824,
        0.050021286370372259,
        0.29996392476834094,
    )
    assert res.loc[0, "p_value"] == pytest.approx(r_p, rel=1e-13)
    assert (res.loc[0, "estimate"], res.loc[0, "ci_low"], res.loc[0, "ci_high"]) == (
        r_est,
        r_lo,
        r_hi,
    )
    x = np.array([1.1, 2.2, 2.2, 3.5, 4.0])
    y = np.array([0.5, 1.1, 1.9, 2.2])
    obs = pd.DataFrame({"g": ["t"] * 5 + ["r"] * 4}, index=[f"S{i}" for i in range(9)])
    two = ad.AnnData(np.concatenate([x, y]).reshape(-1, 1), obs=obs, var=var)
    res = op.tl.differential(two, groupby="g", reference="r", method="wilcoxon", exact=True)
    assert res.loc[0, "statistic"] == 16.5
    assert res.loc[0, "p_value"] == pytest.approx(0.13327700744249354, rel=1e-13)
    assert res.loc[0, "estimate"] == 1.2000000000000002
    assert res.loc[0, "ci_low"] == -0.79998411859324436
    assert res.loc[0, "ci_high"] == 2.9999915333375826
