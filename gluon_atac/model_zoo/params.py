"""Checked loading of ``.params`` files: a file of another architecture is named as such."""
import os

import mxnet as mx

from ..errors import ParamsMismatchError, one_line

__all__ = ['load_parameters', 'check_parameters', 'classifier_width']


def _shapes_fit(file_shape, model_shape):
    # 0 marks a dimension Gluon has not inferred yet (deferred initialization).
    return len(file_shape) == len(model_shape) and all(
        m in (0, f) for f, m in zip(file_shape, model_shape))


def _brief(names, most=5):
    names = sorted(names)
    more = ' (+%d more)' % (len(names) - most) if len(names) > most else ''
    return ', '.join(names[:most]) + more


def _read(path):
    if not os.path.isfile(path):
        raise FileNotFoundError('parameter file not found: %s' % path)
    try:
        return mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ParamsMismatchError('cannot read parameter file %s: %s'
                                  % (path, one_line(err))) from None


def check_parameters(net, path):
    """Compare a ``.params`` file with ``net`` by structural name and shape.

    Parameters
    ----------
    net : mxnet.gluon.Block
    path : str
        File written by ``save_parameters``.

    Returns
    -------
    dict
        The loaded arrays, keyed by structural name.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ParamsMismatchError
        If names are missing, unexpected, or shapes differ; the message says which.
    """
    loaded = _read(path)
    if not isinstance(loaded, dict):
        raise ParamsMismatchError('parameter file %s holds unnamed arrays, not a '
                                  'Gluon save_parameters file' % path)
    model = {name: p.shape for name, p in net._collect_params_with_prefix().items()}
    missing = set(model) - set(loaded)
    unexpected = set(loaded) - set(model)
    differ = ['%s file %s vs model %s' % (n, tuple(loaded[n].shape), model[n])
              for n in sorted(set(model) & set(loaded))
              if not _shapes_fit(loaded[n].shape, model[n])]
    problems = []
    if missing:
        problems.append('%d missing (%s)' % (len(missing), _brief(missing)))
    if unexpected:
        problems.append('%d unexpected (%s)' % (len(unexpected), _brief(unexpected)))
    if differ:
        problems.append('%d shapes differ (%s)' % (len(differ), _brief(differ, 3)))
    if problems:
        raise ParamsMismatchError('%s does not fit %s: %s%s' % (
            path, net.__class__.__name__, '; '.join(problems),
            _hint(missing | unexpected, [n for n in model if n in loaded and
                                         not _shapes_fit(loaded[n].shape, model[n])])))
    return loaded


def _hint(renamed, reshaped):
    """What the usual mismatches mean, as the end of the one-line error."""
    if renamed and all('.module.' in name for name in renamed):
        # An ATAC unit's children are numbered: with and without the inner ReLU (or with
        # the global pool) the same weights carry other indices.
        return (' (only ATAC units differ: the inner ReLU or the global context does not '
                'match the file; its model card, or --useReLU/--relu/--no-relu and '
                '--useGlobal, must say how it was trained)')
    if not renamed and reshaped and all(name.split('.')[0] in ('output', 'fc')
                                        for name in reshaped):
        return ' (only the classifier differs: give the classes the file was trained with)'
    return ''


def load_parameters(net, path, ctx=None):
    """Load ``path`` into ``net`` after :func:`check_parameters` found it fits.

    Parameters
    ----------
    net : mxnet.gluon.Block
    path : str
    ctx : Context or list of Context, optional
        Defaults to the CPU.
    """
    loaded = check_parameters(net, path)
    ctx = ctx or mx.cpu()
    # The same per-parameter init Block.load_parameters does, without reading the file
    # again. The network's dtype decides: float16 files (the published ImageNet run saved
    # after net.cast('float16'), BatchNorm kept in float32) load into float32 networks
    # and the other way round.
    for name, param in net._collect_params_with_prefix().items():
        param._load_init(loaded[name], ctx, cast_dtype=True, dtype_source='current')
    return net


def classifier_width(path):
    """Classes of the classifier saved in a ``.params`` file (its ``output`` or ``fc``
    weight, as the zoo's hosts name it), or ``None`` if the file has neither.

    Raises
    ------
    FileNotFoundError, ParamsMismatchError
        As :func:`check_parameters`.
    """
    loaded = _read(path)
    for key in ('output.weight', 'fc.weight'):
        if isinstance(loaded, dict) and key in loaded:
            return int(loaded[key].shape[0])
    return None
