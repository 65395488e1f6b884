"""Hybridized export to ``-symbol.json`` / ``-0000.params``."""
import mxnet as mx

from ..nn import gluon_graph

__all__ = ['export', 'parameter_context']


def parameter_context(net):
    """Context of ``net``'s first parameter (the CPU for a network without parameters).

    Parameters
    ----------
    net : mxnet.gluon.Block
        Initialized (or deferred-initialized) network.
    """
    for param in net.collect_params().values():
        return param.list_ctx()[0]
    return mx.cpu()


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
        Context of the tracing input; defaults to where ``net``'s parameters live
        (:func:`parameter_context`).

    Notes
    -----
    ATAC units run the plain Gluon graph for the trace (:func:`gluon_atac.nn.gluon_graph`),
    so the files load in any MXNet: the fused gate is an operator of a native library.
    Their ``fused`` settings come back afterwards, and ``net`` is left hybridized with its
    cached graph dropped, so its next call runs the path those settings choose.

    Returns
    -------
    (str, str)
        Paths of the symbol file and the parameter file; load them with
        ``mx.gluon.SymbolBlock.imports(symbol, ['data'], params)``.
    """
    ctx = ctx or parameter_context(net)
    with gluon_graph(net):
        net.hybridize(static_alloc=True, static_shape=True)
        net(mx.nd.zeros(input_shape, ctx=ctx))
        net.export(prefix, epoch=epoch)
    # hybridize() drops the graph just traced on the Gluon path.
    net.hybridize(static_alloc=True, static_shape=True)
    return '%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch)
