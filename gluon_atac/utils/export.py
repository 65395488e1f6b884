"""Hybridized export to ``-symbol.json`` / ``-0000.params``."""
import mxnet as mx

__all__ = ['export']


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

    Returns
    -------
    (str, str)
        Paths of the symbol file and the parameter file; load them with
        ``mx.gluon.SymbolBlock.imports(symbol, ['data'], params)``.
    """
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.zeros(input_shape, ctx=ctx or mx.cpu()))
    net.export(prefix, epoch=epoch)
    return '%s-symbol.json' % prefix, '%s-%04d.params' % (prefix, epoch)
