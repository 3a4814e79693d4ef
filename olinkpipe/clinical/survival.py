"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['kaplan_meier', 'logrank', 'cumulative_incidence', 'gray_test']


def kaplan_meier(*args, **kwargs):
    raise NotImplementedError('kaplan_meier')


def logrank(*args, **kwargs):
    raise NotImplementedError('logrank')


def cumulative_incidence(*args, **kwargs):
    raise NotImplementedError('cumulative_incidence')


def gray_test(*args, **kwargs):
    raise NotImplementedError('gray_test')

