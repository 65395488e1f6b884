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
import os

__all__ = ['CARD_FORMAT', 'CARD_NAME', 'ModelCardError', 'card_path', 'make_card',
           'write_model_card', 'write_card', 'read_model_card', 'find_model_card',
           'card_to_metadata', 'card_from_metadata']

CARD_FORMAT = 'gluon_atac.model_card/1'
CARD_NAME = 'model.json'
_SYMBOL_SUFFIX = '-symbol.json'
_FIELDS = ('model', 'options', 'classes', 'dataset', 'preprocessing')
# ONNX metadata: the card's own fields, the preprocessing's keys repeated for readers,
# and keys that are neither those nor options.
_META_FIELDS = ('model', 'classes', 'dataset', 'gluon_atac_version')
_READABLE = ('input_size', 'mean', 'std')
_OTHER_KEYS = ('preprocessing', 'description')


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


def read_model_card(path):
    """Read and check a card file.

    Raises
    ------
    ModelCardError
        Not JSON, another format, or a missing field (the message names the file).
    """
    try:
        with open(path) as handle:
            card = json.load(handle)
    except ValueError as err:
        raise ModelCardError('model card %s is not JSON: %s' % (path, err)) from None
    if not isinstance(card, dict) or card.get('format') != CARD_FORMAT:
        raise ModelCardError('%s is not a gluon_atac model card (format %s expected)'
                             % (path, CARD_FORMAT))
    missing = [field for field in _FIELDS if field not in card]
    if missing:
        raise ModelCardError('model card %s lacks %s' % (path, ', '.join(missing)))
    return card


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


def card_from_metadata(metadata):
    """The card :func:`card_to_metadata` stored, or ``None`` if ``metadata`` has none.

    Keys the card does not know besides ``description`` are taken as options.
    """
    if 'model' not in metadata or 'preprocessing' not in metadata:
        return None
    try:
        flat = {key: json.loads(value) for key, value in metadata.items()}
    except ValueError:
        raise ModelCardError('the ONNX metadata is not a gluon_atac model card') from None
    card = {'format': CARD_FORMAT, 'preprocessing': flat['preprocessing'],
            'options': {key: value for key, value in flat.items()
                        if key not in _META_FIELDS + _READABLE + _OTHER_KEYS}}
    card.update({key: flat.get(key) for key in _META_FIELDS})
    return card
