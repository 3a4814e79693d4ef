"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['below_lod', 'censor_lod', 'compute_lod', 'read_fixed_lod']


def below_lod(*args, **kwargs):
    raise NotImplementedError('below_lod')


def censor_lod(*args, **kwargs):
    raise NotImplementedError('censor_lod')


def compute_lod(*args, **kwargs):
    raise NotImplementedError('compute_lod')


def read_fixed_lod(*args, **kwargs):
    raise NotImplementedError('read_fixed_lod')

