"""Hybridized export to ``-symbol.json`` / ``-0000.params``."""
import mxnet as mx

from ..nn import ChaATAC

__all__ = ['export', 'use_gluon_graph']


def use_gluon_graph(net):
    """Make every ATAC unit of ``net`` run as plain Gluon operators (``fused=False``).

    The fused gate is a custom operator of a native library: graphs containing it only
    load where that library is loaded, and quantization cannot see inside it.
    """
    net.apply(lambda block: setattr(block, 'fused', False)
              if isinstance(block, ChaATAC) else None)
    return net


def export(net, prefix, input_shape=(1, 3, 224, 224), epoch=0, ctx=None):
    """Hybridize ``net``, trace it once and write ``prefix-symbol.json`` and params.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Initialized network.
    prefix : str
        Path prefix of the written files.
    input_shape : tuple, default (1, 3, 224, 224)
        Shape of the tracing input.
    epoch : int, default 0
    ctx : Context, optional
        Context of the tracing input; defaults to the CPU.

    Notes
    -----
    ATAC units are switched to the plain Gluon graph first (:func:`use_gluon_graph`) so
    the files load in any MXNet.

    Returns
    -------
    (str, str)
        Paths of the symbol file and the parameter file; load them with
        ``mx.gluon.SymbolBlock.imports(symbol, ['data'], params)``.
    """
    use_gluon_graph(net)
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.zeros(input_shape, ctx=ctx or mx.cpu()))
    net.export(prefix, epoch=epoch)
    return '%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch)
