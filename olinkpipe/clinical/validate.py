"""PLACEHOLDER: to be implemented (see the issue). Replace this whole file."""

__all__ = ['read_measurements', 'read_patients']


def read_measurements(*args, **kwargs):
    raise NotImplementedError('read_measurements')


def read_patients(*args, **kwargs):
    raise NotImplementedError('read_patients')

