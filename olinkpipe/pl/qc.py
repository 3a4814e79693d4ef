"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['qc', 'pca', 'distribution', 'bridge']


def qc(*args, **kwargs):
    raise NotImplementedError('qc')


def pca(*args, **kwargs):
    raise NotImplementedError('pca')


def distribution(*args, **kwargs):
    raise NotImplementedError('distribution')


def bridge(*args, **kwargs):
    raise NotImplementedError('bridge')

