"""The registry of statistical methods in :mod:`olinkpipe.tl`: one entry per method.

Each :class:`Method` names the public function that runs it and its ``attrs["method"]``,
says what it computes (``test``: the paired and unpaired wording of ``attrs["test"]``), what
to write in a report's Methods section (:meth:`Method.methods_text`), which published
implementation it matches, and which columns its result has after the annotation
(``OlinkID``, ``Assay``, ``UniProt``, ``Panel``). For :func:`olinkpipe.tl.differential` an
entry also carries its kernel: the method names ``differential`` accepts are the keys of
:func:`methods_of` ``("differential")``, so a new two-group test is one entry here (with its
kernel in :mod:`olinkpipe.tl._de_kernels`); validation, ``attrs``, the dask path and the
workflow report's Methods paragraph read it from here.

Examples
--------
>>> from olinkpipe.tl.methods import get_method, methods_of
>>> sorted(methods_of("differential"))
['moderated', 'ttest', 'wilcoxon']
>>> get_method("differential", "ttest").methods_text(pair="patient", groupby="timepoint")
'paired t-test'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._validate import check_literal
from . import _de_kernels

__all__ = ["Method", "METHODS", "get_method", "methods_of"]


@dataclass(frozen=True)
class Method:
    """One statistical method of a :mod:`olinkpipe.tl` function."""

    function: str  #: the public function, e.g. ``"differential"``
    name: str  #: its ``attrs["method"]`` (and ``method=`` value where there is a choice)
    description: str  #: one line for listings
    methods_unpaired: str  #: Methods text; ``{pair}`` and ``{groupby}`` are filled in
    methods_paired: str | None  #: Methods text with ``pair=`` (None: as unpaired)
    reference: str  #: the implementation the numbers are tested against
    result_columns: tuple[str, ...]  #: columns after the annotation, in order
    test_unpaired: str = ""  #: ``attrs["test"]`` (differential)
    test_paired: str = ""
    label: str = ""  #: a short name for plot titles (e.g. ``"moderated t"``)
    kernel: Callable | None = None  #: differential: arrays of one design → per-assay arrays
    finish: Callable | None = None  #: differential: a step over all assays after the kernel
    covariates: bool = False  #: differential: accepts ``covariates=``
    paired_moments: bool = False  #: differential: paired without covariates needs only the
    #: moments of the differences (n, mean, sum of squares; one fused pass, no copy)

    def methods_text(self, *, pair: str | None = None, groupby: str = "") -> str:
        """The test as a report's Methods section names it (paired when ``pair``)."""
        text = self.methods_paired if pair and self.methods_paired else self.methods_unpaired
        return text.format(pair=pair, groupby=groupby)

    def test_text(self, *, paired: bool) -> str:
        return self.test_paired if paired else self.test_unpaired


#: columns of a two-group comparison, after the annotation
TWO_GROUP_COLUMNS = (
    "estimate",
    "ci_low",
    "ci_high",
    "statistic",
    "df",
    "p_value",
    "p_adj",
    "significant",
    "n",
    "mean_reference",
    "mean_target",
    "reason",
)
_TERM_TEST = ("term", "statistic", "df", "p_value", "p_adj", "significant", "n", "reason")
_CONTRASTS = (
    "term",
    "contrast",
    "estimate",
    "ci_low",
    "ci_high",
    "statistic",
    "df",
    "p_adj",
    "significant",
    "n",
    "reason",
)
_LONGITUDINAL = (
    "term",
    "estimate",
    "ci_low",
    "ci_high",
    "statistic",
    "df",
    "p_value",
    "p_adj",
    "significant",
    "n",
    "n_subjects",
    "reason",
)
_ONE_WAY = ("statistic", "df", "p_value", "p_adj", "significant", "n", "reason")
_RANK_CONTRASTS = (
    "term",
    "contrast",
    "estimate",
    "statistic",
    "p_value",
    "p_adj",
    "significant",
    "n",
    "reason",
)

_ALL = [
    Method(
        "differential",
        "ttest",
        "t-test: Welch (or Student) unpaired, one-sample t on within-pair differences paired",
        "Welch's t-test",
        "paired t-test",
        "scipy.stats.ttest_rel / ttest_ind; R t.test as in OlinkAnalyze olink_ttest",
        TWO_GROUP_COLUMNS,
        test_unpaired="Welch two-sample t-test (Student with equal_var=True)",
        test_paired="paired t-test on within-pair differences (df = pairs - 1)",
        label="t-test",
        kernel=_de_kernels.ttest,
        paired_moments=True,
    ),
    Method(
        "differential",
        "wilcoxon",
        "Wilcoxon rank-sum / signed-rank test with the Hodges-Lehmann estimate",
        "Wilcoxon rank-sum test with the Hodges–Lehmann estimate",
        "Wilcoxon signed-rank test with the Hodges–Lehmann estimate",
        "R wilcox.test (exact rule, tie and continuity correction); scipy wilcoxon / mannwhitneyu",
        TWO_GROUP_COLUMNS,
        test_unpaired="Wilcoxon rank-sum (Mann-Whitney) test with Hodges-Lehmann shift",
        test_paired="Wilcoxon signed-rank test with Hodges-Lehmann pseudo-median",
        label="Wilcoxon",
        kernel=_de_kernels.wilcoxon,
    ),
    Method(
        "differential",
        "moderated",
        "limma-style moderated t (empirical Bayes), covariates allowed",
        "limma-style empirical-Bayes moderated t-test (Smyth 2004)",
        "limma-style empirical-Bayes moderated t-test (Smyth 2004) on the model ~ {pair} + "
        "{groupby}",
        "Smyth (2004) Stat Appl Genet Mol Biol 3:3; limma lmFit + eBayes (legacy fitFDist)",
        TWO_GROUP_COLUMNS,
        test_unpaired="limma-style moderated t, design ~ group (+ covariates)",
        test_paired="limma-style moderated t, paired design ~ pair + group (+ covariates)",
        label="moderated t",
        kernel=_de_kernels.moderated,
        finish=_de_kernels.moderated_finish,
        covariates=True,
        paired_moments=True,
    ),
    Method(
        "longitudinal",
        "mixed",
        "linear mixed model with a random subject intercept; Wald or LR chi2 for time",
        "a linear mixed model with a random intercept per {pair} (statsmodels MixedLM, REML)",
        None,
        "statsmodels MixedLM",
        _LONGITUDINAL,
    ),
    Method(
        "longitudinal",
        "friedman",
        "Friedman rank-sum test over time points, complete subjects per assay",
        "the Friedman rank-sum test (subjects as blocks)",
        None,
        "R friedman.test; scipy.stats.friedmanchisquare",
        _LONGITUDINAL,
    ),
    Method(
        "anova",
        "anova",
        "type-III ANOVA with sum-to-zero contrasts (full factorial + covariates)",
        "type-III ANOVA with sum-to-zero contrasts",
        None,
        "car::Anova(type = 3) as OlinkAnalyze olink_anova; statsmodels anova_lm(typ=3)",
        ("term", "df", "sumsq", "meansq", "statistic", "df_residual")
        + ("p_value", "p_adj", "significant", "n", "reason"),
    ),
    Method(
        "anova_posthoc",
        "anova_posthoc",
        "Tukey-adjusted pairwise contrasts of estimated marginal means after anova",
        "Tukey-adjusted pairwise contrasts of estimated marginal means (emmeans)",
        None,
        "emmeans as OlinkAnalyze olink_anova_posthoc; statsmodels pairwise_tukeyhsd",
        tuple(c for c in _CONTRASTS if c != "reason"),
    ),
    Method(
        "lmer",
        "lmer",
        "linear mixed model per assay, type-III F with Satterthwaite df (lmerTest)",
        "linear mixed models with a random intercept per {pair}, type-III F tests with "
        "Satterthwaite degrees of freedom (lmerTest)",
        None,
        "lmerTest anova(type = 3) as OlinkAnalyze olink_lmer",
        ("term", "sumsq", "meansq", "NumDF", "DenDF", "statistic")
        + ("p_value", "p_adj", "significant", "n", "reason"),
    ),
    Method(
        "lmer_posthoc",
        "lmer_posthoc",
        "pairwise contrasts of estimated marginal means after lmer, Satterthwaite df",
        "pairwise contrasts of estimated marginal means of the mixed model (emmeans, "
        "Satterthwaite df)",
        None,
        "emmeans(lmer.df = 'satterthwaite') as OlinkAnalyze olink_lmer_posthoc",
        _CONTRASTS,
    ),
    Method(
        "ordinal",
        "ordinal",
        "proportional-odds model on NPX ranks; Wald chi2 per term",
        "cumulative-logit (proportional-odds) models on NPX ranks with Wald chi-square tests",
        None,
        "ordinal::clm + anova(type = 'marginal') as OlinkAnalyze olink_ordinalRegression",
        _TERM_TEST,
    ),
    Method(
        "ordinal_posthoc",
        "ordinal_posthoc",
        "pairwise z contrasts of estimated marginal means after ordinal (latent scale)",
        "pairwise contrasts of estimated marginal means of the cumulative-logit model (emmeans)",
        None,
        "emmeans on ordinal::clm as OlinkAnalyze olink_ordinalRegression_posthoc",
        _CONTRASTS,
    ),
    Method(
        "nonparametric",
        "kruskal",
        "Kruskal-Wallis rank-sum test (tie-corrected)",
        "the Kruskal–Wallis rank-sum test",
        None,
        "R kruskal.test; scipy.stats.kruskal (OlinkAnalyze olink_one_non_parametric)",
        _ONE_WAY,
    ),
    Method(
        "nonparametric",
        "friedman",
        "Friedman rank-sum test (tie-corrected), subjects as blocks",
        "the Friedman rank-sum test (subjects as blocks)",
        None,
        "R friedman.test; scipy.stats.friedmanchisquare (olink_one_non_parametric)",
        _ONE_WAY,
    ),
    Method(
        "nonparametric_posthoc",
        "dunn",
        "Dunn's test (tie-corrected, two-sided) after Kruskal-Wallis",
        "Dunn's test",
        None,
        "dunn.test via FSA::dunnTest (OlinkAnalyze olink_one_non_parametric_posthoc)",
        _RANK_CONTRASTS,
    ),
    Method(
        "nonparametric_posthoc",
        "wilcoxon_paired",
        "paired Wilcoxon signed-rank tests on complete subjects after Friedman",
        "paired Wilcoxon signed-rank tests",
        None,
        "R wilcox.test(paired = TRUE) via rstatix (olink_one_non_parametric_posthoc)",
        _RANK_CONTRASTS,
    ),
]

#: every method, keyed by ``(function, name)``
METHODS: dict[tuple[str, str], Method] = {(m.function, m.name): m for m in _ALL}


def methods_of(function: str) -> dict[str, Method]:
    """The methods of one public function, keyed by name (registry order)."""
    return {m.name: m for (f, _), m in METHODS.items() if f == function}


def get_method(function: str, name: str) -> Method:
    """The entry of ``function``'s method ``name`` (a DesignError lists the names)."""
    check_literal("method", name, list(methods_of(function)))
    return METHODS[(function, name)]
