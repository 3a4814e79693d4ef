"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['dose_groups', 'compare_groups', 'correlate', 'associate_outcome']


def dose_groups(*args, **kwargs):
    raise NotImplementedError('dose_groups')


def compare_groups(*args, **kwargs):
    raise NotImplementedError('compare_groups')


def correlate(*args, **kwargs):
    raise NotImplementedError('correlate')


def associate_outcome(*args, **kwargs):
    raise NotImplementedError('associate_outcome')

