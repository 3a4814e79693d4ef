"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['kinetics', 'peaks', 'correlation']


def kinetics(*args, **kwargs):
    raise NotImplementedError('kinetics')


def peaks(*args, **kwargs):
    raise NotImplementedError('peaks')


def correlation(*args, **kwargs):
    raise NotImplementedError('correlation')

