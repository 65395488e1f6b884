"""A reader of the official CIFAR python batches that never unpickles.

The official ``cifar-10-batches-py`` and ``cifar-100-python`` files are pickles of one dict:
``data`` (a uint8 ``N x 3072`` numpy array), integer label lists of length ``N``, and
``filenames``/``batch_label`` strings. :func:`read_batch` walks the pickle's opcodes
(:func:`pickletools.genops`, which only decodes them) and builds exactly that structure
itself: no class is looked up, no callable is called, and the array is made by
``np.frombuffer`` as ``uint8`` from bytes of the file, whatever dtype the pickle
describes. A dtype with fields (which ``pickle`` would honour: the sender then picks the
pointers numpy dereferences) is refused, and so is everything else the official files do
not hold.

Nothing expands: a memo reference is the same Python object again, never a copy, and
labels must be plain integers and the image array one contiguous byte string of exactly
``N x 3072`` bytes, so the result is never larger than the file.
"""
import io
import os
import pickletools

import numpy as np

__all__ = ['BatchFormatError', 'read_batch', 'PIXELS', 'LABEL_KEYS',
           'MAX_FILE_BYTES']

PIXELS = 3 * 32 * 32
# Label lists of each data set (CIFAR-100's coarse labels are 20 superclasses).
LABEL_KEYS = {'cifar10': ('labels',), 'cifar100': ('fine_labels', 'coarse_labels')}
# Keys the official files hold besides the labels; ``data`` is the only required one.
_TEXT_KEYS = ('batch_label', 'filenames')
_MOST_CLASSES = 100

# The globals an ndarray pickle names: numpy's reconstructor (numpy >= 2 calls its
# internals numpy._core), ndarray and dtype, protocol 5's _frombuffer, and the way
# Python 3 pickles bytes at protocols 0-2. They become markers, never the functions.
_RECONSTRUCT = {(core + '.multiarray', '_reconstruct') for core in ('numpy.core', 'numpy._core')}
_FROMBUFFER = {(core + '.numeric', '_frombuffer') for core in ('numpy.core', 'numpy._core')}
_KNOWN_GLOBALS = _RECONSTRUCT | _FROMBUFFER | {
    ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode')}
_UINT8_NAMES = ('u1', '|u1', 'uint8', 'B')
# Larger than any official batch (CIFAR-100's train, 50000 images, is 155 MB) or a
# re-packed CIFAR-10 training set, and still a bound on what a file may cost.
MAX_FILE_BYTES = 1 << 30


class BatchFormatError(ValueError):
    """The file is not a CIFAR python batch of the official structure."""


class _Global(object):
    """A global the pickle names (only the known ones), as a marker."""

    def __init__(self, module, name):
        self.key = (module, name)


class _Mark(object):
    """The stack position MARK sets."""


class _Uint8(object):
    """A dtype the pickle built; only uint8 without fields is ever accepted."""


class _Array(object):
    """An ndarray under construction: ``_reconstruct`` made it, BUILD fills it."""

    def __init__(self):
        self.value = None


_MARK = _Mark()


def _refuse(reason):
    raise BatchFormatError(reason)


def _pop_mark(stack):
    """Items above the topmost mark, which is removed."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    _refuse('unbalanced MARK')


def _dtype(args):
    if not (isinstance(args, tuple) and args and isinstance(args[0], (str, bytes))):
        _refuse('a dtype without a name')
    name = args[0].decode('latin1') if isinstance(args[0], bytes) else args[0]
    if name not in _UINT8_NAMES:
        _refuse('a dtype %r, not uint8' % name[:20])
    return _Uint8()


def _check_dtype_state(state):
    # The state of a plain uint8 dtype is (3, '|', None, None, None, -1, -1, 0): no
    # subarray, field names or fields. Those are what a crafted file uses to make numpy
    # read pointers or memory outside the array.
    if not isinstance(state, tuple) or len(state) < 5 or \
            any(item is not None for item in state[2:5]):
        _refuse('a dtype with fields or a sub-array, not plain uint8')


def _array(shape, dtype, raw):
    if not isinstance(dtype, _Uint8):
        _refuse('image data without a uint8 dtype')
    if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)):
        _refuse('image data with a malformed shape')
    if not isinstance(raw, (bytes, bytearray)):
        _refuse('image data not stored as raw bytes')
    count = 1
    for side in shape:
        count *= side
    if count != len(raw):
        _refuse('image data of shape %s holds %d bytes, not %d'
                % ('x'.join(map(str, shape)), len(raw), count))
    # uint8 whatever else the pickle said (read-only over the file's bytes: the caller's
    # concatenation copies it once).
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _reduce(func, args):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        _refuse('a call of something other than a known global')
    if func.key == ('_codecs', 'encode'):
        if len(args) != 2 or not isinstance(args[0], str) or \
                args[1] not in ('latin1', 'latin-1'):
            _refuse('a malformed byte string')
        return args[0].encode('latin1')
    if func.key == ('numpy', 'dtype'):
        return _dtype(args)
    if func.key in _RECONSTRUCT:
        if not args or not (isinstance(args[0], _Global) and args[0].key == ('numpy', 'ndarray')):
            _refuse('an array of a class other than numpy.ndarray')
        return _Array()
    if func.key in _FROMBUFFER:
        if len(args) != 4 or args[3] != 'C':
            _refuse('image data not in C order')
        return _array(args[2], args[1], args[0])
    _refuse('a call of %s.%s' % func.key)


def _build(target, state):
    if isinstance(target, _Uint8):
        _check_dtype_state(state)
        return target
    if isinstance(target, _Array) and target.value is None:
        # (version, shape, dtype, fortran order, raw bytes)
        if not (isinstance(state, tuple) and len(state) == 5):
            _refuse('a malformed array state')
        if state[3]:
            _refuse('image data in Fortran order')
        target.value = _array(state[1], state[2], state[4])
        return target
    _refuse('a BUILD of something other than an array or its dtype')


def _value(item):
    return item.value if isinstance(item, _Array) else item


def _interpret(ops):
    """Run the opcodes of a pickle of lists, dicts, tuples, numbers, strings and uint8
    arrays; return the object STOP leaves."""
    stack, memo = [], {}
    for opcode, arg, _ in ops:
        name = opcode.name
        if name in ('PROTO', 'FRAME'):
            continue
        if name == 'STOP':
            if len(stack) != 1:
                _refuse('a malformed pickle stack')
            return stack[0]
        if name == 'MARK':
            stack.append(_MARK)
        elif name in ('EMPTY_DICT', 'EMPTY_LIST', 'EMPTY_TUPLE'):
            stack.append({'EMPTY_DICT': dict, 'EMPTY_LIST': list, 'EMPTY_TUPLE': tuple}[name]())
        elif name in ('NONE', 'NEWTRUE', 'NEWFALSE'):
            stack.append({'NONE': None, 'NEWTRUE': True, 'NEWFALSE': False}[name])
        elif name in ('BININT', 'BININT1', 'BININT2', 'LONG1', 'INT', 'LONG'):
            stack.append(arg)
        elif name in ('BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8', 'UNICODE'):
            stack.append(arg)
        elif name in ('BINSTRING', 'SHORT_BINSTRING', 'STRING', 'BINBYTES', 'SHORT_BINBYTES',
                      'BINBYTES8'):
            # Python 2's str (the official files) is read as bytes, as encoding='bytes' does.
            stack.append(arg.encode('latin1') if isinstance(arg, str) else bytes(arg))
        elif name == 'BYTEARRAY8':
            stack.append(bytearray(arg))
        elif name in ('TUPLE', 'TUPLE1', 'TUPLE2', 'TUPLE3'):
            size = {'TUPLE1': 1, 'TUPLE2': 2, 'TUPLE3': 3}.get(name)
            if size is None:
                items = _pop_mark(stack)
            elif len(stack) < size:
                _refuse('a malformed pickle stack')
            else:
                items = stack[-size:]
                del stack[-size:]
            stack.append(tuple(_value(i) for i in items))
        elif name in ('LIST', 'DICT'):
            items = [_value(i) for i in _pop_mark(stack)]
            stack.append(items if name == 'LIST' else _pairs({}, items))
        elif name in ('APPEND', 'APPENDS'):
            items = [stack.pop()] if name == 'APPEND' else _pop_mark(stack)
            if not stack or not isinstance(stack[-1], list):
                _refuse('APPEND to something other than a list')
            stack[-1].extend(_value(i) for i in items)
        elif name in ('SETITEM', 'SETITEMS'):
            items = stack[-2:] if name == 'SETITEM' else _pop_mark(stack)
            if name == 'SETITEM':
                del stack[-2:]
            if not stack or not isinstance(stack[-1], dict):
                _refuse('SETITEM on something other than a dict')
            _pairs(stack[-1], [_value(i) for i in items])
        elif name in ('PUT', 'BINPUT', 'LONG_BINPUT', 'MEMOIZE'):
            if not stack:
                _refuse('a malformed pickle stack')
            memo[len(memo) if name == 'MEMOIZE' else arg] = stack[-1]
        elif name in ('GET', 'BINGET', 'LONG_BINGET'):
            if arg not in memo:
                _refuse('a reference to an unknown memo entry')
            stack.append(memo[arg])
        elif name in ('GLOBAL', 'STACK_GLOBAL'):
            if name == 'GLOBAL':
                module, _, attr = arg.partition(' ')
            elif len(stack) < 2 or not all(isinstance(s, str) for s in stack[-2:]):
                _refuse('a malformed global')
            else:
                module, attr = stack[-2:]
                del stack[-2:]
            if (module, attr) not in _KNOWN_GLOBALS:
                _refuse('a reference to %s.%s' % (module[:60], attr[:60]))
            stack.append(_Global(module, attr))
        elif name == 'REDUCE':
            if len(stack) < 2:
                _refuse('a malformed pickle stack')
            args = stack.pop()
            stack[-1] = _reduce(stack[-1], args)
        elif name == 'BUILD':
            if len(stack) < 2:
                _refuse('a malformed pickle stack')
            state = stack.pop()
            stack[-1] = _build(stack[-1], state)
        else:
            _refuse('the pickle operation %s' % name)
    _refuse('no STOP')


def _pairs(target, items):
    if len(items) % 2:
        _refuse('a dict with an odd number of items')
    for key, value in zip(items[::2], items[1::2]):
        if not isinstance(key, (str, bytes)):
            _refuse('a dict key that is not a string')
        target[key] = value
    return target


def _text(value):
    return isinstance(value, (str, bytes))


def read_batch(path, dataset):
    """Images and label lists of one official CIFAR python batch.

    Parameters
    ----------
    path : str
    dataset : {'cifar10', 'cifar100'}

    Returns
    -------
    (ndarray, dict)
        uint8 ``N x 3072`` images and ``{label key: int64 array of N}``.

    Raises
    ------
    BatchFormatError
        One line saying what in the file is not of the official structure.
    ValueError
        The pickle is truncated or its opcodes are malformed.
    """
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        _refuse('%d bytes, more than the %d of any CIFAR batch' % (size, MAX_FILE_BYTES))
    with open(path, 'rb') as handle:
        # In memory, so a length the pickle declares reads at most the rest of the file
        # (a file object allocates the declared length first).
        blob = io.BytesIO(handle.read())
    try:
        batch = _interpret(pickletools.genops(blob))
    except (IndexError, TypeError, KeyError, RecursionError):
        _refuse('a malformed pickle stack')
    if not isinstance(batch, dict):
        _refuse('not a dict of data and labels')
    batch = {k.decode('latin1') if isinstance(k, bytes) else k: _value(v)
             for k, v in batch.items()}
    label_keys = LABEL_KEYS[dataset]
    unknown = sorted(set(batch) - set(label_keys) - set(_TEXT_KEYS) - {'data'})
    missing = [k for k in ('data',) + label_keys if k not in batch]
    if unknown or missing:
        _refuse('%s%s' % ('missing %s' % ', '.join(missing) if missing else '',
                          '%sunknown key(s) %s' % ('; ' if missing else '',
                                                   ', '.join(k[:40] for k in unknown[:3]))
                          if unknown else ''))
    images = batch['data']
    if not isinstance(images, np.ndarray) or images.ndim != 2 or images.shape[1] != PIXELS:
        _refuse('data is not a uint8 array of N x %d' % PIXELS)
    labels = {}
    for key in label_keys:
        values = batch[key]
        if not isinstance(values, list) or len(values) != len(images) or \
                not all(type(v) is int and 0 <= v < _MOST_CLASSES for v in values):
            _refuse('%s is not a list of %d integers in 0..%d'
                    % (key, len(images), _MOST_CLASSES - 1))
        labels[key] = np.asarray(values, dtype=np.int64)
    if not _text(batch.get('batch_label', '')) or not (
            isinstance(batch.get('filenames', []), list) and
            all(_text(name) for name in batch.get('filenames', []))):
        _refuse('batch_label or filenames are not strings')
    return images, labels
