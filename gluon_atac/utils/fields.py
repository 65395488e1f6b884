"""Checks of single fields of files people exchange (model cards, checkpoints).

A check returns ``None`` for a good value, else what was expected, so the one-line error
can name the field, the value found (:func:`shown`) and what it should have been.
"""
import json

__all__ = ['whole_number', 'shown']


def whole_number(low, high):
    """A check: a whole number in ``low..high`` (not a bool, a string or a float)."""
    def check(value):
        if type(value) is not int or not low <= value <= high:
            return 'a whole number in %d..%d' % (low, high)
        return None
    return check


def shown(value):
    """``value`` as JSON, cut to 40 characters for an error line."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + '...'
