"""Parameter and multiply-add counts as the paper's tables report them."""
import json

import numpy as np
import mxnet as mx

from ..nn import ChaATAC, gluon_graph

__all__ = ['count_params', 'count_flops', 'infer_param_shapes']


def _symbol(net, input_shape):
    # The fused gate is one opaque operator: trace the Gluon graph to see its layers.
    with gluon_graph(net):
        out = net(mx.sym.var('data'))
    return out, {'data': tuple(input_shape)}


def infer_param_shapes(net, input_shape=(1, 3, 224, 224)):
    """Shapes of every parameter by structural name, inferring deferred ones.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    input_shape : tuple, default (1, 3, 224, 224)
        Only used when some shape is not known yet.
    """
    params = net._collect_params_with_prefix()
    if all(0 not in p.shape for p in params.values() if p.shape is not None):
        return {name: tuple(p.shape) for name, p in params.items()}
    sym, shapes = _symbol(net, input_shape)
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    by_full = dict(zip(sym.list_arguments(), arg_shapes))
    by_full.update(zip(sym.list_auxiliary_states(), aux_shapes))
    return {name: tuple(by_full[p.name]) for name, p in params.items()}


def count_params(net, input_shape=(1, 3, 224, 224)):
    """Count parameters as ``save_parameters`` writes them.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    input_shape : tuple, default (1, 3, 224, 224)
        Used to infer deferred shapes; the counts do not depend on it.

    Returns
    -------
    dict
        ``total``: every saved array (BN running statistics included, as the paper's
        28.0M); ``trainable``: arrays with a gradient.
    """
    shapes = infer_param_shapes(net, input_shape)
    params = net._collect_params_with_prefix()
    total = sum(int(np.prod(s)) for s in shapes.values())
    trainable = sum(int(np.prod(shapes[n])) for n, p in params.items() if p.grad_req != 'null')
    return {'total': total, 'trainable': trainable}


def _gate_elementwise(block, shapes, inputs):
    """Elementwise operations of one ATAC unit for one image.

    Inner BN (+ ReLU) touch C/r values per gate position, outer BN and sigmoid C values,
    and the product x * gate every element of the input.
    """
    convs = [c for c in block.module._children.values() if isinstance(c, mx.gluon.nn.Conv2D)]
    per_image = lambda s: int(np.prod(s[1:]))
    first = list(block.module._children.values())[0].prefix + 'fwd'
    inner = (2 if block.use_relu else 1) * per_image(shapes[convs[0].prefix + 'fwd'])
    outer = 2 * per_image(shapes[convs[1].prefix + 'fwd'])
    return inner + outer + per_image(shapes[inputs[first]])


def _batch_dot_macs(node, shape_of):
    """Multiply-adds of one ``batch_dot``: every output element sums ``d`` products, ``d``
    the contracted axis of the left operand. The graph is inferred for one image, so the
    whole output counts, whatever the attention folded into its batch axis (heads,
    positions)."""
    lhs = shape_of(node['inputs'][0])
    transposed = node.get('attrs', {}).get('transpose_a', 'False') in ('True', 'true', '1')
    return int(np.prod(shape_of(node))) * int(lhs[-2] if transposed else lhs[-1])


def count_flops(net, input_shape=(1, 3, 224, 224)):
    """Multiply-adds of convolution, dense and attention products for one image (the
    GFlops column, in multiply-adds: the convention of the paper's ATAC rows; Bello et
    al. and Ramachandran et al. count two FLOPs per multiply-add, so their numbers are
    twice ours).

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    input_shape : tuple, default (1, 3, 224, 224)
        Batch size is ignored: counts are per image.

    Returns
    -------
    dict
        ``macs``: multiply-adds of Convolution and FullyConnected layers and of the
        ``batch_dot`` products of self-attention (QK^T, attention x V, relative logits:
        :mod:`gluon_atac.nn.self_attention`); softmax and other elementwise work is not
        counted, as the papers do not count it; ``gate_ops``:
        elementwise operations inside ATAC units (BNs, ReLU, sigmoid, product), which the
        original's helper ignores and we report separately.
    """
    sym, shapes = _symbol(net, (1,) + tuple(input_shape[1:]))
    internals = sym.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(**shapes)
    out_by_name = {name[:-len('_output')] if name.endswith('_output') else name: s
                   for name, s in zip(internals.list_outputs(), out_shapes)}
    arg_by_name = dict(zip(internals.list_arguments(), arg_shapes))
    nodes = json.loads(sym.tojson())['nodes']

    def shape_of(ref):
        """Shape of a node (dict) or of an input reference ``[node, output, ...]``."""
        if isinstance(ref, dict):
            return out_by_name[ref['name']]
        source = nodes[ref[0]]
        if source['op'] == 'null':
            return arg_by_name[source['name']]
        name = source['name']
        return out_by_name.get(name, out_by_name.get('%s_output%d' % (name, ref[1])))

    macs = 0
    for node in nodes:
        if node['op'] in ('Convolution', 'FullyConnected'):
            weight = arg_by_name[nodes[node['inputs'][1][0]]['name']]
            macs += int(np.prod(out_by_name[node['name']][1:])) * int(np.prod(weight[1:]))
        elif node['op'] == 'batch_dot':
            macs += _batch_dot_macs(node, shape_of)
    inputs = {n['name']: nodes[n['inputs'][0][0]]['name'] for n in nodes if n['inputs']}
    gate_ops = sum(_gate_elementwise(b, out_by_name, inputs) for b in _blocks(net, ChaATAC))
    return {'macs': macs, 'gate_ops': gate_ops}


def _blocks(net, cls):
    found = []
    net.apply(lambda b: found.append(b) if isinstance(b, cls) else None)
    return found
