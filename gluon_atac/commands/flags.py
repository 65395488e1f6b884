"""Argument plumbing the commands share: architecture flags and option filtering."""
import operator
import sys

from ..nn import canonical_name
from ..nn.attention import canonical_attention

__all__ = ['ARCHITECTURE_DEFAULTS', 'add_architecture_flags',
           'given_or_saved', 'architecture_options']


# Architecture when neither a flag nor a model card says otherwise (act_layers and
# attention: the host's own defaults).
ARCHITECTURE_DEFAULTS = (('act_type', 'ChaATAC'), ('r', 2), ('use_relu', True),
                         ('use_global', False), ('act_layers', None), ('attention', None))
_FLAGS = {'act_type': '--act-type', 'r': '--r', 'use_relu': '--relu/--no-relu',
          'use_global': '--use-global', 'act_layers': '--act-layers',
          'attention': '--attention'}


def add_architecture_flags(parser):
    """Flags every command shares for the ``get_model`` options of a trained network.

    ``--act-type --r --act-layers --use-global/--useGlobal --relu/--no-relu --attention``;
    each defaults to ``None`` (not given), so a model card can fill it in. Read them back
    with :func:`architecture_options`.
    """
    parser.add_argument('--act-type', default=None,
                        help='default: the model card\'s, else ChaATAC')
    parser.add_argument('--r', type=int, default=None,
                        help='ATAC reduction; default: the model card\'s, else 2')
    parser.add_argument('--act-layers', type=int, default=None,
                        help="default: the model card's, else the model's (4 for CIFAR, "
                             "2 for ResNets)")
    parser.add_argument('--use-global', '--useGlobal', dest='use_global',
                        action='store_const', const=True, default=None,
                        help='ATAC with global context')
    parser.add_argument('--relu', dest='use_relu', action='store_const', const=True,
                        default=None, help='ATAC with inner ReLU (default without a card)')
    parser.add_argument('--no-relu', dest='use_relu', action='store_const', const=False,
                        help='ATAC without inner ReLU')
    parser.add_argument('--attention', default=None,
                        help='attention module on the residual branch (se, ge)')


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


def _same_name(canonical):
    return lambda a, b: canonical(a) == canonical(b)


def architecture_options(args, card=None):
    """``get_model`` keyword arguments from :func:`add_architecture_flags`' flags.

    Parameters
    ----------
    args : argparse.Namespace
    card : dict, optional
        Model card (:mod:`gluon_atac.utils.model_card`) of the parameters; its options
        fill in the flags not given, and its other options are kept.
    """
    saved = dict(card['options']) if card else {}
    same = {'act_type': _same_name(canonical_name),
            'attention': _same_name(canonical_attention)}
    options = {}
    for key, default in ARCHITECTURE_DEFAULTS:
        value = given_or_saved(_FLAGS[key], getattr(args, key), saved.pop(key, None),
                               default, same.get(key, operator.eq))
        if value is not None:
            options[key] = value
    options.update(saved)
    return options
