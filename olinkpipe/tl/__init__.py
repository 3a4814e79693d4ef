"""Statistics over all assays at once; every function returns a tidy DataFrame."""

from .de import differential
from .enrich import gsea, ora
from .lmer import lmer, lmer_posthoc
from .models import anova, anova_posthoc, longitudinal
from .nonparametric import nonparametric, nonparametric_posthoc
from .ordinal import ordinal, ordinal_posthoc

__all__ = [
    "differential",
    "longitudinal",
    "anova",
    "anova_posthoc",
    "lmer",
    "lmer_posthoc",
    "nonparametric",
    "nonparametric_posthoc",
    "ordinal",
    "ordinal_posthoc",
    "ora",
    "gsea",
]
