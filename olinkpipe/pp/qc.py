"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['qc_summary', 'flag_outliers', 'filter']


def qc_summary(*args, **kwargs):
    raise NotImplementedError('qc_summary')


def flag_outliers(*args, **kwargs):
    raise NotImplementedError('flag_outliers')


def filter(*args, **kwargs):
    raise NotImplementedError('filter')

