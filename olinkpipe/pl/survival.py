"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['survival', 'cumulative_incidence', 'swimmer']


def survival(*args, **kwargs):
    raise NotImplementedError('survival')


def cumulative_incidence(*args, **kwargs):
    raise NotImplementedError('cumulative_incidence')


def swimmer(*args, **kwargs):
    raise NotImplementedError('swimmer')

