"""Static INT8 quantization of an exported ONNX model with ONNX Runtime, and its check.

The float model is first prepared by ``onnxruntime.quantization``'s pre-processing
(shape inference, BatchNorm folded into the convolutions, so that the folded weights are
what gets quantized), then quantized as QDQ: QuantizeLinear/DequantizeLinear pairs
around each quantized operator, which ONNX Runtime fuses into its INT8 kernels. Weights
are signed 8-bit per output channel, activations unsigned 8-bit per tensor (the pair
x86's VNNI and AVX2 INT8 kernels take), with min/max ranges calibrated on real images.

Needs ``onnxruntime`` <= 1.18.1 next to ``onnx`` 1.15: later ``onnxruntime.quantization``
releases read ``onnx.TensorProto.INT4``, which only onnx >= 1.16 has, and onnx >= 1.16 drops
``onnx.mapping``, which MXNet's ONNX converter imports (constraints.txt pins the pair).
"""
import os
import tempfile
import time

import numpy as np

from .onnx_export import INSTALL_HINT, OnnxError, onnx_session

__all__ = ['require_quantization', 'quantize_static_int8', 'compare_sessions']


def require_quantization():
    """Import and return ``onnxruntime.quantization``; :class:`OnnxError` says how to
    install a version that works with this project's onnx."""
    try:
        from onnxruntime import quantization
    except (ImportError, AttributeError) as err:
        # AttributeError: an onnxruntime newer than the pinned one, under onnx 1.15.
        raise OnnxError('INT8 ONNX export needs onnxruntime.quantization working with '
                        'onnx 1.15 (%s): %s: %s' % (INSTALL_HINT, type(err).__name__,
                                                    err)) from None
    return quantization


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over float32 batches."""

    def __init__(self, name, batches):
        self._feeds = iter([{name: np.ascontiguousarray(b, np.float32)} for b in batches])

    def get_next(self):
        return next(self._feeds, None)


def quantize_static_int8(float_path, int8_path, calib_batches):
    """Write a static QDQ INT8 copy of the ONNX model ``float_path`` to ``int8_path``.

    Parameters
    ----------
    float_path : str
        A float32 ONNX model (e.g. from :func:`~gluon_atac.utils.onnx_export.export_onnx`).
    int8_path : str
        Where the INT8 model goes.
    calib_batches : list of ndarray
        float32 ``N x 3 x H x W`` images, preprocessed as the network was trained; the
        range of every quantized tensor is their min/max.

    Returns
    -------
    str
        ``int8_path``.
    """
    quantization = require_quantization()
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, 'prepared.onnx')
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        session = onnx_session(prepared)
        reader = _Reader(session.get_inputs()[0].name, calib_batches)
        del session
        quantization.quantize_static(
            prepared, int8_path, reader, quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, per_channel=True,
            calibrate_method=quantization.CalibrationMethod.MinMax)
    return int8_path


def compare_sessions(float_session, int8_session, batches, rounds=3):
    """Accuracy, top-1 agreement and speed of two ONNX Runtime sessions on labelled images.

    Parameters
    ----------
    float_session, int8_session : onnxruntime.InferenceSession
    batches : list of (ndarray, ndarray)
        float32 images (preprocessed) and their integer labels.
    rounds : int, default 3
        Timed passes over all batches per session, alternating; the best counts (load
        on the machine only slows a pass down).

    Returns
    -------
    dict
        ``images``; ``float32`` and ``int8``, each ``top1_acc`` and ``images_per_sec``;
        ``top1_agreement`` (fraction of images both rank first alike), ``accuracy_drop``
        (float32 top-1 accuracy minus INT8's) and ``speedup`` (INT8 over float32 images/s).
    """
    sessions = (float_session, int8_session)
    feeds = [[{s.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)}
              for x, _ in batches] for s in sessions]
    labels = np.concatenate([np.asarray(y).astype(np.int64).ravel() for _, y in batches])
    top1 = [np.concatenate([s.run(None, f)[0].argmax(axis=1) for f in fs])
            for s, fs in zip(sessions, feeds)]
    best = [0.0, 0.0]
    for _ in range(rounds):
        for k, (session, fs) in enumerate(zip(sessions, feeds)):
            tic = time.perf_counter()
            for feed in fs:
                session.run(None, feed)
            best[k] = max(best[k], len(labels) / (time.perf_counter() - tic))
    acc = [float((t == labels).mean()) for t in top1]
    return {'images': int(len(labels)),
            'float32': {'top1_acc': acc[0], 'images_per_sec': best[0]},
            'int8': {'top1_acc': acc[1], 'images_per_sec': best[1]},
            'top1_agreement': float((top1[0] == top1[1]).mean()),
            'accuracy_drop': acc[0] - acc[1], 'speedup': best[1] / best[0]}
