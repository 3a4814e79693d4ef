"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['longitudinal', 'anova']


def longitudinal(*args, **kwargs):
    raise NotImplementedError('longitudinal')


def anova(*args, **kwargs):
    raise NotImplementedError('anova')

