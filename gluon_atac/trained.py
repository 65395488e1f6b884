"""A trained network as every command sees it: flags, else its model card, else its
model's registered defaults.

:func:`resolve` turns those three sources into a :class:`TrainedModel`: the registered
model name, the architecture options of ``get_model``, the classes, the data set and the
preprocessing of an image. ``evaluate``, ``export``, ``classify``, ``visualize``,
``summary``, the demo and the trainers' ``--eval-only`` all go through it, so they agree
on every default, and none guesses: where neither a flag nor a card says how images are
preprocessed (an MXNet export without its card), :func:`resolve_preprocessing` refuses
with one line naming the flags to pass.

A flag that disagrees with the card wins, with one ``warning:`` line on stderr; a flag the
chosen data set ignores (``--crop-ratio`` outside ImageNet) is refused.
"""
import dataclasses
import inspect
import operator
import sys

from .data.loader import dataset_classes
from .data.preprocessing import PREPROCESSED_DATASETS, preprocessing_for
from .errors import UsageError
from .model_zoo import MODELS, classifier_width, get_model, get_model_config, load_parameters
from .nn import ATTENTION, canonical_name
from .utils.model_card import CARD_NAME, find_model_card, make_card

__all__ = ['ARCHITECTURE_DEFAULTS', 'TrainedModel', 'add_architecture_flags',
           'add_preprocessing_flags', 'add_model_flags', 'given_or_saved', 'fill_in',
           'resolve', 'resolve_preprocessing']

# Architecture when neither a flag nor a model card says otherwise; act_layers comes from
# the model's registered defaults.
ARCHITECTURE_DEFAULTS = {'act_type': 'ChaATAC', 'r': 2, 'use_relu': True,
                         'use_global': False, 'attention': None}
_ARCHITECTURE_FLAGS = {'act_type': '--act-type', 'r': '--r', 'use_relu': '--relu/--no-relu',
                       'use_global': '--use-global', 'act_layers': '--act-layers',
                       'attention': '--attention'}
_PREPROCESSING_FLAGS = ('--dataset', '--input-size', '--crop-ratio')
DATASETS = tuple(d for d in PREPROCESSED_DATASETS if d != 'cifar')


def _same_name(canonical):
    return lambda a, b: a is not None and b is not None and canonical(a) == canonical(b)


_SAME = {'act_type': _same_name(canonical_name), 'attention': _same_name(ATTENTION.canonical),
         'model': _same_name(MODELS.canonical)}


def add_architecture_flags(parser):
    """``--act-type --r --act-layers --use-global/--useGlobal --relu/--no-relu
    --attention``, each ``None`` unless given (a model card then fills it in)."""
    parser.add_argument('--act-type', default=None,
                        help="default: the model card's, else ChaATAC")
    parser.add_argument('--r', type=int, default=None,
                        help="ATAC reduction; default: the model card's, else 2")
    parser.add_argument('--act-layers', type=int, default=None,
                        help="default: the model card's, else the model's (4 for CIFAR "
                             "hosts, 2 for ResNets)")
    parser.add_argument('--use-global', '--useGlobal', dest='use_global',
                        action='store_const', const=True, default=None,
                        help='ATAC with global context')
    parser.add_argument('--relu', dest='use_relu', action='store_const', const=True,
                        default=None, help='ATAC with inner ReLU (default without a card)')
    parser.add_argument('--no-relu', dest='use_relu', action='store_const', const=False,
                        help='ATAC without inner ReLU')
    parser.add_argument('--attention', default=None,
                        help='attention module on the residual branch (%s)'
                             % ', '.join(ATTENTION.names(aliases=False)))


def add_preprocessing_flags(parser):
    """``--dataset --input-size --crop-ratio``: how an image becomes the network input."""
    parser.add_argument('--dataset', default=None, choices=DATASETS,
                        help="data the model was trained on, which fixes its preprocessing; "
                             "default: the model card's, else the model's")
    parser.add_argument('--input-size', type=int, default=None,
                        help="default: the model card's, else the model's (32 for CIFAR "
                             "hosts, 224 for ResNets)")
    parser.add_argument('--crop-ratio', type=float, default=None,
                        help="imagenet only: centre crop / resize; default: the model "
                             "card's, else 0.875")


def add_model_flags(parser, params_required=True):
    """The flags of a trained network: ``MODEL``, ``--params``, the architecture,
    ``--classes`` and the preprocessing; read them back with :func:`resolve`."""
    parser.add_argument('model', nargs='?', default=None,
                        help="registered model name, e.g. resnet50_v1b; default: the "
                             "model card's")
    parser.add_argument('--params', required=params_required,
                        help='.params file (save_parameters); its model card (%s in its '
                             'folder) fills in what the flags leave out' % CARD_NAME)
    add_architecture_flags(parser)
    parser.add_argument('--classes', type=int, default=None,
                        help="default: the model card's, else the data set's")
    add_preprocessing_flags(parser)


def given_or_saved(flag, given, saved, default, same=operator.eq):
    """A flag's value if given, else the model card's, else ``default``.

    A given flag that disagrees with the card wins, and one ``warning:`` line on stderr
    says so.

    Parameters
    ----------
    flag : str
        Spelling for the warning, e.g. ``'--r'``.
    given, saved, default
        ``None`` means absent.
    same : callable, optional
        Equality of two values (e.g. of names with aliases).
    """
    if given is None:
        return default if saved is None else saved
    if saved is not None and not same(given, saved):
        print('warning: %s %s overrides %s from the model card' % (flag, given, saved),
              file=sys.stderr)
    return given


def fill_in(given, saved, defaults, flags):
    """Every key of ``defaults`` from ``given``, else ``saved``, else the default.

    Parameters
    ----------
    given, saved : dict
        Values by key; ``None`` or a missing key means absent.
    defaults : dict
    flags : dict
        Spelling of each key's flag, for the warning of :func:`given_or_saved`.

    Returns
    -------
    dict
        ``defaults``' keys, then the keys of ``saved`` it does not know (options a card
        keeps that no flag sets).
    """
    out = {key: given_or_saved(flags.get(key, key), given.get(key), saved.get(key), default,
                               _SAME.get(key, operator.eq))
           for key, default in defaults.items()}
    out.update({key: value for key, value in saved.items() if key not in out})
    return out


def _flag(args, name):
    return getattr(args, name, None)


def resolve_preprocessing(args, card=None, config=None, what='the model file'):
    """The data set and preprocessing from the flags, else ``card``, else ``config``.

    Parameters
    ----------
    args : argparse.Namespace
        With :func:`add_preprocessing_flags`' flags (missing ones count as not given).
    card : dict, optional
        Model card.
    config : ModelConfig, optional
        The model's registered defaults.
    what : str
        Names the model in the refusal.

    Returns
    -------
    (str, dict)

    Raises
    ------
    UsageError
        Nothing says how images are preprocessed, or a flag does not apply to the data set.
    """
    saved = card['preprocessing'] if card else {}
    default = config.dataset if config else None
    dataset = given_or_saved('--dataset', _flag(args, 'dataset'), card and card['dataset'],
                             default)
    if dataset is None:
        raise UsageError('no model card describes %s: pass --dataset (%s) and, if it was '
                         'trained at another size, --input-size, to say how images are '
                         'preprocessed' % (what, '|'.join(DATASETS)))
    if _flag(args, 'crop_ratio') is not None and dataset != 'imagenet':
        raise UsageError('--crop-ratio applies to imagenet preprocessing only; %s images are '
                         'resized to the input size' % dataset)
    if card and dataset == card['dataset'] and _flag(args, 'input_size') is None and \
            _flag(args, 'crop_ratio') is None:
        return dataset, dict(saved)
    size = given_or_saved('--input-size', _flag(args, 'input_size'), saved.get('input_size'),
                          config.input_size if config else None)
    if dataset != 'imagenet':
        return dataset, preprocessing_for(dataset, size)
    ratio = given_or_saved('--crop-ratio', _flag(args, 'crop_ratio'), saved.get('crop_ratio'),
                           (config and config.crop_ratio) or 0.875)
    return dataset, preprocessing_for(dataset, size, ratio)


@dataclasses.dataclass
class TrainedModel:
    """A registered network with everything needed to rebuild and feed it.

    Attributes
    ----------
    name : str
        Registered model name.
    options : dict
        Architecture options of ``get_model`` (``act_type, r, use_relu, use_global,
        act_layers, attention`` and any other the card keeps).
    classes : int
    dataset : str
    preprocessing : dict
        See :mod:`gluon_atac.data.preprocessing`.
    params : str or None
        Parameter file.
    card : dict or None
        The model card it was resolved from.
    """

    name: str
    options: dict
    classes: int
    dataset: str
    preprocessing: dict
    params: str = None
    card: dict = None

    @property
    def input_size(self):
        """Side of the square network input."""
        return self.preprocessing['input_size']

    def model_kwargs(self):
        """Keyword arguments of ``get_model(self.name, ...)``."""
        kwargs = dict(self.options, classes=self.classes)
        builder = MODELS.get(self.name).builder
        if 'input_size' in inspect.signature(builder).parameters:
            # Hosts that size Gather-Excite's pooling by the training resolution.
            kwargs['input_size'] = self.input_size
        return kwargs

    def build(self):
        """The uninitialized network."""
        return get_model(self.name, **self.model_kwargs())

    def load(self, ctx, hybridize=True):
        """The network with :attr:`params` loaded (checked: a file of another
        architecture raises ``ValueError``), hybridized unless told otherwise."""
        net = self.build()
        load_parameters(net, self.params, ctx=ctx)
        if hybridize:
            net.hybridize(static_alloc=True, static_shape=True)
        return net

    def to_card(self):
        """The model card of this network (a dict; write it with ``write_card``)."""
        return make_card(self.name, self.options, self.classes, self.dataset,
                         self.preprocessing)


def resolve(args, card=None):
    """A :class:`TrainedModel` from :func:`add_model_flags`' flags.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``params`` and the architecture, ``--classes`` and preprocessing flags
        (missing attributes count as not given).
    card : dict, optional
        Default: the card beside ``args.params``, if any.

    Notes
    -----
    Classes come from ``--classes``, else the card, else the classifier saved in
    ``args.params``, else the data set, else the model's registered defaults.

    Raises
    ------
    UsageError
        No model name (neither given nor in a card), or a preprocessing flag that does not
        apply.
    ValueError
        Unknown model, act type or attention name.
    """
    params = _flag(args, 'params')
    if card is None and params:
        card = find_model_card(params)
    saved = card or {}
    name = given_or_saved('MODEL', _flag(args, 'model'), saved.get('model'), None,
                          _SAME['model'])
    if not name:
        raise UsageError('MODEL is required: no model card (%s) sits beside %s'
                         % (CARD_NAME, params))
    name = MODELS.canonical(name)
    config = get_model_config(name)
    defaults = dict(ARCHITECTURE_DEFAULTS, act_layers=config.act_layers)
    given = {key: _flag(args, key) for key in defaults}
    options = fill_in(given, saved.get('options', {}), defaults, _ARCHITECTURE_FLAGS)
    canonical_name(options['act_type'])
    dataset, preprocessing = resolve_preprocessing(args, card, config, params or name)
    classes = given_or_saved('--classes', _flag(args, 'classes'), saved.get('classes'), None)
    if classes is None:
        classes = (params and classifier_width(params)) or dataset_classes(dataset) or \
            config.classes
    return TrainedModel(name, options, classes, dataset, preprocessing, params, card)
