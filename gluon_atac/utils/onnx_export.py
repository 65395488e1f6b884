"""ONNX export of a network, and its check against MXNet in ONNX Runtime.

Needs the ``onnx`` extra (``pip install -c constraints.txt -e '.[onnx]'``): ``onnx`` 1.15
(newer releases drop ``onnx.mapping``, which MXNet's converter imports) and
``onnxruntime``. The network is traced with :func:`gluon_atac.utils.export.export` (ATAC
as plain operators) and converted by MXNet's ``mx2onnx``, with three additions: a
converter for ``AdaptiveAvgPooling2D`` of any output size (Gather-Excite's pooling), the
name of the layer that cannot be converted in the error, and weights stored as
initializers only (listed as graph inputs too, they keep ONNX Runtime from folding
constants). :func:`check_conversion` judges ONNX Runtime's logits against MXNet's with a
tolerance measured on the network itself (its float32 sensitivity).
"""
import contextlib
import itertools
import json
import os
import tempfile
import time
import warnings

import mxnet as mx
import numpy as np

from .export import export, parameter_context

__all__ = ['OnnxError', 'INSTALL_HINT', 'DEFAULT_OPSET', 'OPSETS', 'require_onnx',
           'export_onnx', 'load_checked', 'read_metadata', 'onnx_session', 'compare_runtimes',
           'DEFAULT_FACTOR', 'float32_sensitivity', 'check_conversion']

INSTALL_HINT = "pip install -c constraints.txt -e '.[onnx]'"
# mx2onnx's operator translations are written for opsets 12 and 13.
OPSETS = (12, 13)
DEFAULT_OPSET = 13
_POOL_OP = '_contrib_AdaptiveAvgPooling2D'
# A correct conversion reorders float32 sums at every layer, which moves the logits about
# as far as rounding the input does (difference / sensitivity 0.6-1.1 measured on ResNet-8
# and chaotic ResNet-32s, 1.8 in issue 17); ten times the sensitivity leaves room for
# that, and a dropped layer or a wrong weight still moves well-conditioned logits far more.
DEFAULT_FACTOR = 10.0
# Relative size of the input noise: about one unit in the last place of a float32.
_NOISE = 1e-7
# Least sensitivity, as a fraction of the logit scale (at least 1): about ten units in the
# last place of the largest logit, for inputs the noise cannot move (zeros) or a network
# that ignores it.
_SENSITIVITY_FLOOR = 1e-6


class OnnxError(ValueError):
    """The ONNX packages are missing, or a network cannot be converted."""


def require_onnx():
    """Import and return ``(onnx, onnxruntime)``; :class:`OnnxError` says how to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise OnnxError('ONNX export needs the onnx extra (%s): %s'
                        % (INSTALL_HINT, err)) from None
    return onnx, onnxruntime


def _pool_matrix(inside, outside):
    """``outside x inside`` averaging matrix of adaptive pooling along one axis.

    Output ``i`` averages inputs ``floor(i * inside / outside)`` to
    ``ceil((i + 1) * inside / outside) - 1``, MXNet's windows.
    """
    matrix = np.zeros((outside, inside), np.float32)
    for i in range(outside):
        start = (i * inside) // outside
        stop = -(-((i + 1) * inside) // outside)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return matrix


def _adaptive_pool_converter(input_shapes, original):
    """A converter of ``AdaptiveAvgPooling2D`` that knows each node's input shape.

    Global pooling keeps MXNet's translation; a pooling to the input's own size is the
    identity (Gather-Excite at its training resolution); any other size is two MatMuls
    with constant averaging matrices, exact for every window layout.
    """
    from onnx import helper, numpy_helper

    def convert(node, **kwargs):
        name = node['name']
        height, width = input_shapes[name][2:]
        sizes = [int(s) for s in node.get('attrs', {}).get('output_size', '1')
                 .strip('()[] ').replace(',', ' ').split()]
        out_h, out_w = (sizes * 2)[:2]
        if (out_h, out_w) == (1, 1):
            return original(node, **kwargs)
        source = node['inputs'][0]
        data = kwargs['outputs_lookup'][source[0]][source[1]].name
        if (out_h, out_w) == (height, width):
            return [helper.make_node('Identity', [data], [name], name=name)]
        rows, cols = name + '_rows', name + '_cols'
        kwargs['initializer'].extend([
            numpy_helper.from_array(_pool_matrix(height, out_h), rows),
            numpy_helper.from_array(_pool_matrix(width, out_w).T.copy(), cols)])
        return [helper.make_node('MatMul', [rows, data], [name + '_h'], name=name + '_h'),
                helper.make_node('MatMul', [name + '_h', cols], [name], name=name)]
    return convert


def _pool_input_shapes(sym, input_shape):
    """Input shape of every adaptive pooling node of ``sym``, by node name."""
    shapes = {}
    internals = sym.get_internals()
    for node in json.loads(sym.tojson())['nodes']:
        if node['op'] == _POOL_OP:
            child = internals[node['name'] + '_output'].get_children()[0]
            shapes[node['name']] = child.infer_shape(data=input_shape)[1][0]
    return shapes


@contextlib.contextmanager
def _converters(sym, input_shape):
    """mx2onnx with the pooling converter, and errors that name the failing layer."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    registry = MXNetGraph.registry_
    pools = {opset: registry.get(opset, {}).get(_POOL_OP) for opset in OPSETS}
    convert_layer = MXNetGraph.convert_layer
    shapes = _pool_input_shapes(sym, input_shape)

    def named_errors(node, **kwargs):
        try:
            return convert_layer(node, **kwargs)
        except Exception as err:  # any failure of a translation is about this layer
            reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            raise OnnxError('cannot convert layer %s (operator %s) to ONNX: %s'
                            % (node['name'], node['op'], ' '.join(reason.split()))) from None
    try:
        for opset, original in pools.items():
            registry.setdefault(opset, {})[_POOL_OP] = _adaptive_pool_converter(
                shapes, original or pools[12])
        MXNetGraph.convert_layer = staticmethod(named_errors)
        yield MXNetGraph
    finally:
        MXNetGraph.convert_layer = staticmethod(convert_layer)
        for opset, original in pools.items():
            registry[opset][_POOL_OP] = original


def export_onnx(net, path, input_shape, dynamic_batch=True, opset=DEFAULT_OPSET,
                metadata=None):
    """Write ``net`` as an ONNX model.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Initialized float32 network with one image input.
    path : str
        The ``.onnx`` file to write.
    input_shape : tuple of int
        ``N x 3 x H x W`` of the trace; H and W are fixed in the file.
    dynamic_batch : bool, default True
        Make the batch axis symbolic (``N``), so one file serves every batch size.
    opset : {12, 13}, default 13
    metadata : dict, optional
        String keys and values stored in the model's ``metadata_props``.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    OnnxError
        The ONNX packages are missing, ``opset`` is unsupported, or a layer has an
        operator ONNX cannot express (the message names both).
    """
    onnx, _ = require_onnx()
    if opset not in OPSETS:
        raise OnnxError('opset %s is not supported; choose from %s'
                        % (opset, ', '.join(map(str, OPSETS))))
    input_shape = tuple(int(d) for d in input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        symbol_file, params_file = export(net, os.path.join(tmp, 'net'), input_shape)
        sym = mx.sym.load(symbol_file)
        params = {key.split(':', 1)[1]: value
                  for key, value in mx.nd.load(params_file).items()}
    dynamic_shape = [(None,) + input_shape[1:]] if dynamic_batch else None
    with warnings.catch_warnings(), _converters(sym, input_shape) as graph_class:
        # onnx 1.15 deprecates the `onnx.mapping` that mx2onnx reads.
        warnings.simplefilter('ignore', DeprecationWarning)
        graph = graph_class().create_onnx_graph_proto(
            sym, params, [input_shape], [onnx.TensorProto.FLOAT], opset_version=opset,
            dynamic=dynamic_batch, dynamic_input_shapes=dynamic_shape)
    model = onnx.helper.make_model(graph, producer_name='gluon_atac',
                                   opset_imports=[onnx.helper.make_opsetid('', opset)])
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [tensor for tensor in model.graph.input if tensor.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.helper.set_model_props(model, {str(k): str(v) for k, v in (metadata or {}).items()})
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(model, path)
    return path


def _tensors(graph):
    """Every tensor a graph holds: initializers and node attributes, subgraphs included."""
    for tensor in graph.initializer:
        yield tensor
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes):
    """The tensors in the attributes of ``nodes`` and of their subgraphs."""
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField('t'):
                yield attribute.t
            for tensor in attribute.tensors:
                yield tensor
            if attribute.HasField('sparse_tensor'):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            subgraphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField('g')
                                                  else [])
            for subgraph in subgraphs:
                yield from _tensors(subgraph)


def load_checked(path):
    """Read an ONNX file and check it before anything runs it.

    The file must parse as an ONNX ``ModelProto`` with a graph, and hold every tensor
    itself: a tensor stored as external data names a file for ONNX Runtime to open (any
    path, ``..`` and absolute ones included), so it is refused.

    Parameters
    ----------
    path : str

    Returns
    -------
    (onnx.ModelProto, bytes)
        The model and the file's bytes (checked once, so what runs is what was checked).

    Raises
    ------
    OnnxError
        One line naming ``path``: not protobuf, not an ONNX model, or external data.
    """
    onnx, _ = require_onnx()
    from google.protobuf.message import DecodeError

    with open(path, 'rb') as handle:
        blob = handle.read()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(blob)
    except (DecodeError, ValueError, RecursionError):
        raise OnnxError('%s is not an ONNX model: it does not parse as protobuf' % path) \
            from None
    if not model.HasField('graph') or not model.graph.node or not model.opset_import or \
            model.ir_version <= 0:
        raise OnnxError('%s is not an ONNX model: it holds no graph, opset or IR version'
                        % path)
    functions = (tensor for function in model.functions
                 for tensor in _node_tensors(function.node))
    for tensor in itertools.chain(_tensors(model.graph), functions):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            where = {entry.key: entry.value for entry in tensor.external_data}
            raise OnnxError('%s refers to external data (tensor %s in %r), which is '
                            'refused: a gluon_atac ONNX file holds its weights itself'
                            % (path, tensor.name[:60], where.get('location', '')[:80]))
    return model, blob


def read_metadata(path):
    """``metadata_props`` of an ONNX file as a dict of strings (checked by
    :func:`load_checked` first)."""
    model, _ = load_checked(path)
    return {prop.key: prop.value for prop in model.metadata_props}


def onnx_session(path, threads=None):
    """ONNX Runtime CPU session of ``path``, after :func:`load_checked` passed it.

    Parameters
    ----------
    path : str
    threads : int, optional
        Intra-op threads; default ``OMP_NUM_THREADS`` if set (as MXNet uses), else ONNX
        Runtime's own choice.

    Raises
    ------
    OnnxError
        The file failed the checks, or ONNX Runtime refuses the model (one line).
    """
    _, blob = load_checked(path)
    _, ort = require_onnx()
    options = ort.SessionOptions()
    threads = threads or int(os.environ.get('OMP_NUM_THREADS', '0') or 0)
    if threads:
        options.intra_op_num_threads = threads
    # Idle threads that spin steal the cores from MXNet when both run in one process.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    try:
        # The checked bytes, not the path: the file cannot change in between, and without
        # a path ONNX Runtime has no folder to look for other files in.
        return ort.InferenceSession(blob, options, providers=['CPUExecutionProvider'])
    except Exception as err:  # ONNX Runtime's errors have no common base class
        reason = ' '.join(str(err).split())
        raise OnnxError('ONNX Runtime cannot load %s: %s' % (path, reason[:300])) from None


def compare_runtimes(net, session, batch, rounds=3):
    """Logits of MXNet and ONNX Runtime on one batch, and both runtimes' speed.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        The exported network, run as MXNet runs it (native ATAC operators included).
    session : onnxruntime.InferenceSession
    batch : ndarray
        float32 ``N x 3 x H x W`` images, preprocessed.
    rounds : int, default 3
        Timed passes per runtime, alternating; the best counts (load on the machine only
        slows a pass down).

    Returns
    -------
    dict
        ``images``, ``max_abs_diff`` (logits), ``max_abs_logit`` (their scale),
        ``top1_agreement`` and ``mxnet_images_per_sec`` / ``onnxruntime_images_per_sec``.
    """
    data = mx.nd.array(batch, ctx=parameter_context(net))
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(batch, np.float32)}
    expected = net(data).asnumpy()
    got = session.run(None, feed)[0]
    speeds = [0.0, 0.0]
    for _ in range(rounds):
        for k, run in enumerate((lambda: net(data).wait_to_read(),
                                 lambda: session.run(None, feed))):
            tic = time.perf_counter()
            run()
            speeds[k] = max(speeds[k], len(batch) / (time.perf_counter() - tic))
    return {'images': int(len(batch)),
            'max_abs_diff': float(np.abs(expected - got).max()),
            'max_abs_logit': float(np.abs(expected).max()),
            'top1_agreement': float((expected.argmax(1) == got.argmax(1)).mean()),
            'mxnet_images_per_sec': speeds[0], 'onnxruntime_images_per_sec': speeds[1]}


def float32_sensitivity(net, batch, perturbations=3, seed=0, noise=_NOISE):
    """How far input noise of float32 rounding size moves MXNet's logits.

    Every pixel is multiplied by ``1 + noise * z`` (``z`` standard normal, one draw per
    perturbation, seeded) and rounded to float32, so about two thirds of them change by one
    unit in the last place. A deep network with badly conditioned layers (random
    BatchNorm statistics, no inner ReLU) amplifies that to a large part of its logits;
    a well-conditioned one keeps it near the rounding of the logits themselves.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
    batch : ndarray
        float32 ``N x 3 x H x W`` images, preprocessed.
    perturbations : int, default 3
        Seeded perturbations; the largest move counts.
    seed : int, default 0
        Seed of the first perturbation (``seed + k`` of the k-th).
    noise : float, default 1e-7
        Relative size of the perturbation.

    Returns
    -------
    float
        The largest ``|logit(perturbed) - logit(batch)|`` over the perturbations.
    """
    ctx = parameter_context(net)
    batch = np.asarray(batch, np.float32)
    base = net(mx.nd.array(batch, ctx=ctx)).asnumpy()
    largest = 0.0
    for k in range(perturbations):
        z = np.random.RandomState(seed + k).standard_normal(batch.shape)
        # Scaled in float64, so the one rounding is the final one to float32.
        moved = (batch.astype(np.float64) * (1.0 + noise * z)).astype(np.float32)
        logits = net(mx.nd.array(moved, ctx=ctx)).asnumpy()
        largest = max(largest, float(np.abs(logits - base).max()))
    return largest


def check_conversion(net, session, batch, factor=DEFAULT_FACTOR, perturbations=3, seed=0,
                     rounds=3):
    """Judge ONNX Runtime against MXNet with a tolerance from the network's sensitivity.

    A fixed fraction of the logit scale refuses correct conversions of deep, badly
    conditioned networks, whose float32 logits move by more than that when one input
    pixel is rounded differently; ONNX Runtime, which sums in another order, cannot be
    held closer to MXNet than MXNet is to itself. The tolerance is therefore ``factor``
    times the measured :func:`float32_sensitivity` (at least ``1e-6 x max(1, largest
    |logit|)``), which stays tight for a well-conditioned network.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        The exported network, run as MXNet runs it.
    session : onnxruntime.InferenceSession
    batch : ndarray
        float32 ``N x 3 x H x W`` images, preprocessed.
    factor : float, default 10
        Safety factor on the sensitivity; 0 demands identical logits.
    perturbations : int, default 3
        Seeded input perturbations the sensitivity is the largest of.
    seed : int, default 0
    rounds : int, default 3
        Timed passes per runtime (:func:`compare_runtimes`).

    Returns
    -------
    dict
        :func:`compare_runtimes`'s report and ``sensitivity`` (measured),
        ``sensitivity_floor``, ``factor``, ``tolerance`` (the largest logit difference
        allowed: ``factor x max(sensitivity, sensitivity_floor)``) and ``passed``
        (``max_abs_diff <= tolerance``).
    """
    report = compare_runtimes(net, session, batch, rounds=rounds)
    sensitivity = float32_sensitivity(net, batch, perturbations, seed)
    floor = _SENSITIVITY_FLOOR * max(1.0, report['max_abs_logit'])
    tolerance = factor * max(sensitivity, floor)
    report.update(sensitivity=sensitivity, sensitivity_floor=floor, factor=float(factor),
                  tolerance=tolerance, passed=report['max_abs_diff'] <= tolerance)
    return report
