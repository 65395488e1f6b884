"""Model cards: the architecture, classes and preprocessing that travel with weights.

A card is a small JSON file, ``model.json`` in the folder of a run's parameter files
(``<prefix>-model.json`` beside an MXNet export ``<prefix>-symbol.json``)::

    {"format": "gluon_atac.model_card/1",
     "model": "cifar_resnet20_v2",           # a get_model name
     "options": {"act_type": "ChaATAC",      # get_model keyword arguments, all of the
                 "r": 2, "use_relu": false,  # architecture
                 "use_global": false, "act_layers": 4, "attention": null},
     "classes": 10,
     "dataset": "cifar10",                   # imagenet, cifar10, cifar100, mnist5k, ...
     "preprocessing": {...},                 # see gluon_atac.data.preprocessing
     "gluon_atac_version": "0.1.0"}

``get_model(card['model'], classes=card['classes'], **card['options'])`` rebuilds the
network (ResNet hosts also take ``input_size=card['preprocessing']['input_size']``).
The same fields, flattened to strings, are an ONNX file's ``metadata_props``
(:func:`card_to_metadata`, :func:`card_from_metadata`).
"""
import importlib.metadata
import json
import math
import os

from ..data.preprocessing import PREPROCESSED_DATASETS
from ..model_zoo.config import MODELS
from .fields import shown, whole_number

__all__ = ['CARD_FORMAT', 'CARD_NAME', 'ModelCardError', 'card_path', 'make_card',
           'write_model_card', 'write_card', 'read_model_card', 'find_model_card',
           'card_to_metadata', 'card_from_metadata', 'check_card', 'MAX_SIDE', 'MAX_CLASSES']

CARD_FORMAT = 'gluon_atac.model_card/1'
CARD_NAME = 'model.json'
_SYMBOL_SUFFIX = '-symbol.json'
_FIELDS = ('model', 'options', 'classes', 'dataset', 'preprocessing')
# ONNX metadata: the card's own fields, the preprocessing's keys repeated for readers,
# and keys that are neither those nor options.
_META_FIELDS = ('model', 'classes', 'dataset', 'gluon_atac_version')
_READABLE = ('input_size', 'mean', 'std')
_OTHER_KEYS = ('preprocessing', 'description')
# Bounds of what a card may ask for: a side beyond MAX_SIDE pixels (resize_to 26000 costs
# gigabytes per image) or more classes than any data set has is not a real model's.
MAX_SIDE = 4096
MAX_CLASSES = 100000
# A card is a few hundred bytes; a larger file is not one.
_MAX_CARD_BYTES = 1 << 20


class ModelCardError(ValueError):
    """A model card is malformed or cannot describe a network."""


def card_path(path):
    """Where the card of a parameter file, run folder or MXNet export lives.

    ``X-symbol.json`` has ``X-model.json``; a folder has its ``model.json``; any other file
    the ``model.json`` of its folder.
    """
    if path.endswith(_SYMBOL_SUFFIX):
        return path[:-len(_SYMBOL_SUFFIX)] + '-model.json'
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, CARD_NAME)


def make_card(model_name, options, classes, dataset, preprocessing):
    """A card as a dict; see :func:`write_model_card` for the parameters."""
    options = {key: value for key, value in dict(options).items()
               if key not in ('classes', 'input_size')}
    try:
        json.dumps(options)
    except TypeError:
        bad = sorted(key for key, value in options.items() if not _is_json(value))
        raise ModelCardError('a model card stores JSON values only; option(s) %s are not '
                             '(pass them by name, or leave them out)'
                             % ', '.join(bad)) from None
    return {'format': CARD_FORMAT, 'model': str(model_name), 'options': options,
            'classes': int(classes), 'dataset': str(dataset),
            'preprocessing': dict(preprocessing), 'gluon_atac_version': _version()}


def _version():
    """The installed gluon_atac's version (read from the package metadata, not the
    package root, which this layer may not import); ``unknown`` for a source tree that
    was never installed."""
    try:
        return importlib.metadata.version('gluon_atac')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def _is_json(value):
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def write_card(path, card):
    """Write ``card`` (a dict from :func:`make_card`) to ``path``; return ``path``."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as handle:
        handle.write(json.dumps(card, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, path)
    return path


def write_model_card(save_dir, model_name, options, classes, dataset, preprocessing):
    """Write ``save_dir/model.json`` for the parameter files a run saves there.

    Parameters
    ----------
    save_dir : str
        Folder of the parameter files (created if missing).
    model_name : str
        Name given to ``get_model``, e.g. ``'cifar_resnet20_v2'``.
    options : dict
        ``get_model`` keyword arguments of the architecture (``act_type, r, use_relu,
        use_global, act_layers, attention`` ...); ``classes`` and ``input_size`` in it are
        ignored (they are fields of their own). Values must be JSON values.
    classes : int
    dataset : str
        ``'imagenet'``, ``'cifar10'``, ``'cifar100'`` or ``'mnist5k'``.
    preprocessing : dict
        Validation preprocessing, e.g.
        ``gluon_atac.data.preprocessing.preprocessing_for(dataset, input_size)``.

    Returns
    -------
    str
        Path of the card.

    Raises
    ------
    ModelCardError
        An option is not a JSON value (e.g. a norm layer class).
    """
    card = make_card(model_name, options, classes, dataset, preprocessing)
    os.makedirs(save_dir, exist_ok=True)
    return write_card(os.path.join(save_dir, CARD_NAME), card)


def _kind(kinds, wanted):
    def check(value):
        return None if type(value) in kinds else wanted
    return check


def _choice(choices):
    def check(value):
        return None if value in choices and isinstance(value, str) else \
            'one of %s' % ', '.join(choices)
    return check


def _triple(value):
    if not (isinstance(value, list) and len(value) == 3 and
            all(type(v) in (int, float) and math.isfinite(v) for v in value)):
        return 'a list of 3 finite numbers'
    return None


def _positive_triple(value):
    return _triple(value) or (None if all(v > 0 for v in value) else
                              'a list of 3 positive numbers')


def _ratio(value):
    if type(value) not in (int, float) or not (math.isfinite(value) and 0 < value <= 1):
        return 'a number in (0, 1]'
    return None


_TEXT = _kind((str,), 'a string')
_TEXT_OR_NULL = _kind((str, type(None)), 'a string or null')
_FLAG = _kind((bool,), 'true or false')
# Options get_model takes from every card, by type; others must be JSON scalars.
_OPTION_CHECKS = {'act_type': _TEXT, 'r': whole_number(1, 4096), 'use_relu': _FLAG,
                  'use_global': _FLAG, 'act_layers': whole_number(0, 64),
                  'attention': _TEXT_OR_NULL}
_SCALAR = _kind((str, int, float, bool, type(None)), 'a string, number, boolean or null')
_PREPROCESSING_CHECKS = {'input_size': whole_number(1, MAX_SIDE),
                         'resize': _choice(('short', 'exact')),
                         'resize_to': whole_number(1, MAX_SIDE),
                         'crop': whole_number(1, MAX_SIDE),
                         'pad': whole_number(0, MAX_SIDE), 'grayscale': _FLAG, 'mean': _triple,
                         'std': _positive_triple}
_OPTIONAL_PREPROCESSING = {'crop_ratio': _ratio}


def _check_fields(fields, checks, optional, what, where):
    missing = [key for key in checks if key not in fields]
    if missing:
        raise ModelCardError('model card %s lacks %s%s' % (where, what, ', '.join(missing)))
    unknown = sorted(set(fields) - set(checks) - set(optional))
    if unknown:
        raise ModelCardError('model card %s has unknown %s%s'
                             % (where, what, ', '.join(k[:40] for k in unknown[:3])))
    for key, value in fields.items():
        reason = dict(optional, **checks)[key](value)
        if reason:
            raise ModelCardError('model card %s: %s%s is %s, not %s'
                                 % (where, what, key, shown(value), reason))


def check_card(card, where):
    """Refuse a card whose fields are of the wrong type or out of bounds.

    Parameters
    ----------
    card : dict
        Read from a file or from ONNX metadata.
    where : str
        The file the card came from, named in the error.

    Returns
    -------
    dict
        ``card``.

    Raises
    ------
    ModelCardError
        One line naming ``where`` and the first bad field: ``model`` must be a registered
        name, ``options`` of their types (others JSON scalars), ``classes`` a whole
        number in 1..MAX_CLASSES, ``dataset`` a known one, and the preprocessing's sizes
        whole numbers up to MAX_SIDE, its mean and std three finite numbers.
    """
    checks = {'model': lambda v: None if isinstance(v, str) and v in MODELS else
              'a registered model name',
              'classes': whole_number(1, MAX_CLASSES), 'dataset': _choice(PREPROCESSED_DATASETS),
              'gluon_atac_version': _TEXT_OR_NULL, 'format': _TEXT,
              'options': _kind((dict,), 'an object'),
              'preprocessing': _kind((dict,), 'an object')}
    _check_fields(card, {k: checks[k] for k in _FIELDS}, checks, '', where)
    options = card['options']
    _check_fields(options, {}, dict((k, _SCALAR) for k in options), 'option ', where)
    _check_fields({k: v for k, v in options.items() if k in _OPTION_CHECKS}, {},
                  _OPTION_CHECKS, 'option ', where)
    _check_fields(card['preprocessing'], _PREPROCESSING_CHECKS, _OPTIONAL_PREPROCESSING,
                  'preprocessing ', where)
    return card


def read_model_card(path):
    """Read and check a card file.

    Raises
    ------
    ModelCardError
        Not JSON, another format, a missing field or one of the wrong type or size (see
        :func:`check_card`; the message names the file).
    """
    if os.path.getsize(path) > _MAX_CARD_BYTES:
        raise ModelCardError('model card %s is larger than %d bytes' % (path, _MAX_CARD_BYTES))
    try:
        with open(path, 'rb') as handle:
            card = json.loads(handle.read())
    except (ValueError, RecursionError) as err:
        raise ModelCardError('model card %s is not JSON: %s'
                             % (path, str(err) or 'it nests too deep')) from None
    if not isinstance(card, dict) or card.get('format') != CARD_FORMAT:
        raise ModelCardError('%s is not a gluon_atac model card (format %s expected)'
                             % (path, CARD_FORMAT))
    return check_card(card, path)


def find_model_card(path):
    """The card of ``path`` (see :func:`card_path`) if one exists, else ``None``."""
    where = card_path(path)
    return read_model_card(where) if os.path.isfile(where) else None


def card_to_metadata(card):
    """Flat string key/values of ``card`` for ONNX ``metadata_props``.

    Every value is JSON. Options are keys of their own (``act_type``, ``r`` ...), the
    preprocessing is one key, and its ``input_size``, ``mean`` and ``std`` are repeated
    as keys for readers of the metadata.
    """
    flat = {key: card[key] for key in _META_FIELDS}
    flat.update(card['options'])
    flat['preprocessing'] = card['preprocessing']
    flat.update({key: card['preprocessing'][key] for key in _READABLE})
    return {key: json.dumps(value) for key, value in flat.items()}


def card_from_metadata(metadata, where='the ONNX file'):
    """The card :func:`card_to_metadata` stored, or ``None`` if ``metadata`` has none.

    Keys the card does not know besides ``description`` are taken as options. The card
    is checked as a card file is (:func:`check_card`).

    Parameters
    ----------
    metadata : dict
        String keys and values.
    where : str, default 'the ONNX file'
        Named in errors.
    """
    if 'model' not in metadata or 'preprocessing' not in metadata:
        return None
    try:
        flat = {key: json.loads(value) for key, value in metadata.items()}
    except (ValueError, RecursionError):
        raise ModelCardError('the metadata of %s is not a gluon_atac model card (not JSON)'
                             % where) from None
    card = {'format': CARD_FORMAT, 'preprocessing': flat['preprocessing'],
            'options': {key: value for key, value in flat.items()
                        if key not in _META_FIELDS + _READABLE + _OTHER_KEYS}}
    card.update({key: flat.get(key) for key in _META_FIELDS})
    return check_card(card, where)
