"""Statistics over all assays at once; every function returns a tidy DataFrame."""

from .de import differential
from .models import longitudinal, anova, anova_posthoc
from .enrich import ora, gsea

__all__ = ['differential', 'longitudinal', 'anova', 'anova_posthoc', 'ora', 'gsea']
