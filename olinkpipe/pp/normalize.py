"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['subset_normalize', 'intensity_normalize', 'reference_median_normalize', 'normalize_plates']


def subset_normalize(*args, **kwargs):
    raise NotImplementedError('subset_normalize')


def intensity_normalize(*args, **kwargs):
    raise NotImplementedError('intensity_normalize')


def reference_median_normalize(*args, **kwargs):
    raise NotImplementedError('reference_median_normalize')


def normalize_plates(*args, **kwargs):
    raise NotImplementedError('normalize_plates')

