"""``python -m gluon_atac.export MODEL --params FILE --out PREFIX``: deployable files.

Writes ``PREFIX-symbol.json`` and ``PREFIX-0000.params`` of the hybridized network (load
them with ``mx.gluon.SymbolBlock.imports``), or with ``--format onnx`` ``PREFIX.onnx``
(weights as initializers, the model card in ``metadata_props``), checked at once: ONNX
Runtime and MXNet run a fixed random batch (and the first of ``--calib-data``), and each
logit difference must stay within ``--tolerance`` times the network's own float32
sensitivity; ``PREFIX-report.json`` gets, per batch, the largest logit difference, the
sensitivity, the tolerance, the top-1 agreement and both runtimes' images/s. Either
format gets ``PREFIX-model.json``, the model card. With ``--quantize int8`` the written model
is INT8, made by ``mxnet.contrib.quantization.quantize_net_v2`` with naive calibration (min/max
of every layer's output) on the first ``--calib-batches`` batches of ``--calib-data``; the
accuracy change and the speed-up (against the float network on MXNet's oneDNN backend)
are measured on all of ``--calib-data`` and written to ``PREFIX-report.json``. With
``--format onnx --quantize int8`` the checked float model is quantized by ONNX Runtime
(static QDQ, calibrated on the first ``--calib-batches`` batches) into ``PREFIX-int8.onnx``;
top-1 accuracy, agreement with float32 and the speed-up, both in ONNX Runtime on all of
``--calib-data``, go to ``PREFIX-report.json`` under ``int8``, and an accuracy drop above
``--max-drop`` refuses the INT8 model (it is removed) in one line.
"""
import json
import os
import time

import mxnet as mx
import numpy as np

from ..data.preprocessing import describe, image_batches
from ..errors import UsageError, cli_main
from ..data.integrity import add_pixel_limit_flag, set_max_pixels
from ..utils.argv import command_parser
from ..nn import gluon_graph
from ..trained import add_model_flags, resolve
from ..training.engine.checkpoint import atomic_write
from ..training.engine.evaluation import evaluate as topk_errors
from ..utils.export import export
from ..utils.model_card import card_to_metadata, write_card
from ..utils.onnx_export import (DEFAULT_FACTOR, DEFAULT_OPSET, OPSETS, check_conversion,
                                 export_onnx, onnx_session, require_onnx)
from ..utils.onnx_quantize import compare_sessions, quantize_static_int8, require_quantization

__all__ = ['quantize_int8', 'compare', 'export_onnx_checked', 'quantize_onnx_checked', 'main']


def _batch_iter(batches):
    data = mx.nd.concat(*[d for d, _ in batches], dim=0)
    return mx.io.NDArrayIter(data=data, batch_size=batches[0][0].shape[0])


def _report_path(args):
    return args.out + '-report.json'


def _write_report(args, report):
    """``PREFIX-report.json``, written whole or not at all."""
    atomic_write(_report_path(args),
                 lambda p: open(p, 'w').write(json.dumps(report, indent=2) + '\n'))


def quantize_int8(net, calib_batches):
    """INT8 copy of ``net`` calibrated (naive min/max) on ``calib_batches``.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Float32 network on the CPU.
    calib_batches : list of (NDArray, NDArray)
        Real, preprocessed images (labels unused); all of the same batch size.

    Returns
    -------
    mxnet.gluon.SymbolBlock
    """
    from mxnet.contrib.quantization import quantize_net_v2

    calib = _batch_iter(calib_batches)
    # Quantization cannot see inside the fused gate: the Gluon graph shows its layers.
    with gluon_graph(net):
        int8 = quantize_net_v2(net, quantized_dtype='auto', calib_mode='naive',
                               calib_data=calib, num_calib_examples=calib.num_data,
                               ctx=mx.cpu())
    int8.hybridize(static_alloc=True, static_shape=True)
    return int8


def _speeds(nets, batches, rounds=3):
    """Best images/s of each net over ``rounds`` interleaved passes over ``batches``.

    Interleaving and the best round keep other load on the machine from favouring
    whichever network happened to run in a quiet moment.
    """
    for net in nets:
        net(batches[0][0]).wait_to_read()
    best = [0.0] * len(nets)
    for _ in range(rounds):
        for k, net in enumerate(nets):
            tic = time.time()
            for data, _ in batches:
                net(data).wait_to_read()
            best[k] = max(best[k], sum(d.shape[0] for d, _ in batches) / (time.time() - tic))
    return best


def compare(fp32, int8, batches):
    """Errors, top-1 agreement and speed of ``fp32`` and ``int8`` on ``batches``.

    Parameters
    ----------
    fp32 : mxnet.gluon.HybridBlock
        Timed as deployed on a CPU: it is first optimized for MXNet's oneDNN (MKLDNN)
        backend, which fuses convolutions with BN and ReLU as the INT8 graph does.
    int8 : mxnet.gluon.SymbolBlock
    batches : list of (NDArray, NDArray)

    Returns
    -------
    dict
        ``fp32``/``int8`` (``top1_err``, ``top5_err``, ``images``, ``images_per_sec``),
        ``top1_agreement`` (fraction of images both rank first alike), ``max_abs_diff``
        of the logits and ``max_abs_logit`` (its scale), ``speedup``.
    """
    fp32.optimize_for(batches[0][0], backend='MKLDNN', static_alloc=True, static_shape=True)
    report = {name: topk_errors(net, batches, mx.cpu())
              for name, net in (('fp32', fp32), ('int8', int8))}
    speeds = _speeds([fp32, int8], batches)
    report['fp32']['images_per_sec'], report['int8']['images_per_sec'] = speeds
    agree = diff = scale = 0.0
    for data, _ in batches:
        a, b = fp32(data), int8(data)
        agree += (a.argmax(axis=1) == b.argmax(axis=1)).sum().asscalar()
        diff = max(diff, (a - b).abs().max().asscalar())
        scale = max(scale, a.abs().max().asscalar())
    report['top1_agreement'] = agree / report['fp32']['images']
    report['max_abs_diff'], report['max_abs_logit'] = float(diff), float(scale)
    report['speedup'] = speeds[1] / speeds[0]
    return report


def _format(report):
    lines = ['%-6s %10s %10s %10s' % ('', 'top-1 err', 'top-5 err', 'img/s')]
    for name in ('fp32', 'int8'):
        row = report[name]
        lines.append('%-6s %10.4f %10.4f %10.1f' % (name, row['top1_err'], row['top5_err'],
                                                    row['images_per_sec']))
    lines.append('top-1 agreement %.4f, accuracy change %+.4f, speed-up %.2fx on %d images'
                 % (report['top1_agreement'],
                    report['fp32']['top1_err'] - report['int8']['top1_err'],
                    report['speedup'], report['fp32']['images']))
    return '\n'.join(lines)


def _check_batch(args, shape, real):
    """One batch ONNX Runtime and MXNet are compared on, and where it comes from.

    ``real``: the first batch of ``--calib-data`` (with the model card's preprocessing);
    else a fixed random batch.
    """
    if real:
        data, _ = next(iter(image_batches(args.calib_data, args.trained.preprocessing,
                                          args.batch_size, args.num_workers,
                                          args.calib_data_idx)))
        return data.asnumpy(), args.calib_data
    # Normalized images are about standard normal; a fixed seed makes reruns comparable.
    rng = np.random.RandomState(0)
    return rng.standard_normal((args.batch_size,) + shape[1:]).astype(np.float32), 'random'


def export_onnx_checked(args, net, shape, card):
    """Write ``PREFIX.onnx``, judge ONNX Runtime against MXNet, write the report.

    The check runs on a fixed random batch and, with ``--calib-data``, on its first batch
    of real images too; each allows ``--tolerance`` times the network's float32
    sensitivity on that batch (:func:`~gluon_atac.utils.onnx_export.check_conversion`).

    Returns
    -------
    dict
        The report: ``random`` (and ``real``), each with ``max_abs_diff``,
        ``sensitivity``, ``tolerance``, ``top1_agreement`` and ``passed``; ``passed``
        whether all checks passed.

    Raises
    ------
    UsageError
        A check failed (after the report is written), or ``--calib-data`` has fewer
        images than a fixed batch.
    """
    if not args.tolerance >= 0:
        raise UsageError('--tolerance must be a number >= 0, not %g' % args.tolerance)
    metadata = card_to_metadata(card)
    metadata['description'] = json.dumps(describe(card['preprocessing']))
    if not args.dynamic_batch:
        # A fixed batch axis is fixed at --batch-size, the size the check runs.
        shape = (args.batch_size,) + shape[1:]
    path = export_onnx(net, args.out + '.onnx', shape, dynamic_batch=args.dynamic_batch,
                       opset=args.opset, metadata=metadata)
    session = onnx_session(path)
    report = dict(onnx=path, opset=args.opset, dynamic_batch=args.dynamic_batch,
                  tolerance_factor=args.tolerance)
    for name in ('random', 'real') if args.calib_data else ('random',):
        batch, source = _check_batch(args, shape, name == 'real')
        if len(batch) != shape[0] and not args.dynamic_batch:
            raise UsageError('--calib-data has %d images, fewer than the fixed batch of %d '
                             '(--batch-size)' % (len(batch), shape[0]))
        check = check_conversion(net, session, batch, factor=args.tolerance)
        report[name] = dict(check, checked_on=source)
        line = ('ONNX Runtime vs MXNet on %d images (%s): max |logit diff| %.3g, float32 '
                'sensitivity %.3g, tolerance %.3g, top-1 agreement %.4f, %.1f vs %.1f img/s: '
                '%s' % (check['images'], source, check['max_abs_diff'], check['sensitivity'],
                        check['tolerance'], check['top1_agreement'],
                        check['onnxruntime_images_per_sec'], check['mxnet_images_per_sec'],
                        'passed' if check['passed'] else 'FAILED'))
        if check['tolerance'] >= check['max_abs_logit']:
            # float32 noise alone moves these logits by their whole scale, so no wrong
            # conversion could show on this batch: say so rather than pass in silence.
            line += (' (the tolerance reaches the logit scale %.3g: these images cannot show '
                     'a wrong conversion)' % check['max_abs_logit'])
        print(line)
    checks = [report[name] for name in ('random', 'real') if name in report]
    report['passed'] = all(check['passed'] for check in checks)
    _write_report(args, report)
    for check in checks:
        if not check['passed']:
            raise UsageError('ONNX Runtime logits differ from MXNet by %.3g on %s images, '
                             'more than the tolerance %.3g (--tolerance %g x the float32 '
                             'sensitivity %.3g, at least %.3g); see %s'
                             % (check['max_abs_diff'], check['checked_on'], check['tolerance'],
                                args.tolerance, check['sensitivity'],
                                check['sensitivity_floor'], _report_path(args)))
    return report


def _real_batches(args):
    """Every batch of ``--calib-data`` under the model card's preprocessing (the last one
    may be smaller)."""
    return list(image_batches(args.calib_data, args.trained.preprocessing, args.batch_size,
                              args.num_workers, args.calib_data_idx))


def _calib_batches(batches, args):
    """The batches of ``--batch-size`` images among ``batches``."""
    # Equal batch sizes keep the calibration iterator and the static shapes simple.
    equal = [b for b in batches if b[0].shape[0] == args.batch_size]
    if not equal:
        raise UsageError('--calib-data has fewer images than --batch-size %d'
                         % args.batch_size)
    return equal


def quantize_onnx_checked(args, report):
    """Quantize the checked ``PREFIX.onnx`` to ``PREFIX-int8.onnx`` and judge it.

    Parameters
    ----------
    args : argparse.Namespace
        The command's arguments (``out``, ``calib_*``, ``batch_size``, ``max_drop``).
    report : dict
        :func:`export_onnx_checked`'s report; gets ``int8``
        (:func:`~gluon_atac.utils.onnx_quantize.compare_sessions`'s figures, ``onnx``,
        ``calibration_images``, ``max_drop``, ``passed``) and is written again.

    Returns
    -------
    str
        The INT8 model's path.

    Raises
    ------
    UsageError
        The top-1 accuracy drops by more than ``--max-drop`` (the INT8 file is removed,
        the report kept).
    """
    batches = _real_batches(args)
    whole = _calib_batches(batches, args)
    calib = whole[:args.calib_batches]
    path = quantize_static_int8(report['onnx'], args.out + '-int8.onnx',
                                [x.asnumpy() for x, _ in calib])
    # A model with a fixed batch axis runs whole batches only; a dynamic one scores every
    # image, the last short batch included.
    scored = batches if args.dynamic_batch else whole
    figures = compare_sessions(onnx_session(report['onnx']), onnx_session(path),
                               [(x.asnumpy(), y.asnumpy()) for x, y in scored])
    figures.update(onnx=path, calibration_images=args.batch_size * len(calib),
                   max_drop=args.max_drop, passed=figures['accuracy_drop'] <= args.max_drop)
    report['int8'] = figures
    _write_report(args, report)
    print('ONNX Runtime INT8 vs float32 on %d images: top-1 %.4f vs %.4f (drop %+.4f), '
          'agreement %.4f, %.1f vs %.1f img/s (%.2fx)'
          % (figures['images'], figures['int8']['top1_acc'], figures['float32']['top1_acc'],
             figures['accuracy_drop'], figures['top1_agreement'],
             figures['int8']['images_per_sec'], figures['float32']['images_per_sec'],
             figures['speedup']))
    if not figures['passed']:
        os.remove(path)
        raise UsageError('INT8 refused: top-1 accuracy drops by %.4f on %d images of %s, '
                         'more than --max-drop %g; see %s'
                         % (figures['accuracy_drop'], figures['images'], args.calib_data,
                            args.max_drop, _report_path(args)))
    return path


def _write_int8(args, net, shape):
    batches = _calib_batches(_real_batches(args), args)
    int8 = quantize_int8(net, batches[:args.calib_batches])
    report = compare(net, int8, batches)
    report['calibration_images'] = args.batch_size * len(batches[:args.calib_batches])
    print(_format(report))
    paths = export(int8, args.out, input_shape=shape)
    _write_report(args, report)
    return report, paths + (_report_path(args),)


@cli_main
def main(argv=None):
    """Export a parameter file as ONNX or MXNet symbol + params (optionally INT8)."""
    parser = command_parser('export', __doc__.split('\n\n')[0])
    add_model_flags(parser)
    parser.add_argument('--out', required=True, help='prefix of the written files')
    parser.add_argument('--format', choices=('mxnet', 'onnx'), default='mxnet',
                        help='mxnet: PREFIX-symbol.json + PREFIX-0000.params; onnx: '
                             'PREFIX.onnx, checked against MXNet in ONNX Runtime')
    parser.add_argument('--dynamic-batch', choices=('yes', 'no'), default='yes',
                        help='onnx: symbolic batch axis (default yes); no: fixed at '
                             '--batch-size')
    parser.add_argument('--opset', type=int, choices=OPSETS, default=DEFAULT_OPSET,
                        help='onnx: operator set (default %(default)s)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_FACTOR, metavar='FACTOR',
                        help='onnx: largest logit difference allowed between ONNX Runtime '
                             'and MXNet, as a multiple of the float32 sensitivity: how far '
                             'MXNet\'s own logits move when the input is perturbed by 1e-7 '
                             'relative noise (largest of 3 seeded perturbations, at least '
                             '1e-6 x max(1, largest |logit|)), measured on each checked '
                             'batch: a random one and the first of --calib-data; 0 demands '
                             'equal logits (default %(default)g)')
    parser.add_argument('--quantize', choices=('int8',), default=None,
                        help='INT8: by MXNet quantization (mxnet format) or ONNX Runtime '
                             'static QDQ quantization (onnx format, PREFIX-int8.onnx), '
                             'calibrated on --calib-data')
    parser.add_argument('--max-drop', type=float, default=0.01,
                        help='onnx INT8: largest top-1 accuracy drop (a fraction) on '
                             '--calib-data before the INT8 model is refused '
                             '(default %(default)g)')
    parser.add_argument('--calib-data', default=None,
                        help='.rec file or <class>/*.jpg folder (validation preprocessing): '
                             'INT8 calibration, and the images the ONNX check runs on')
    parser.add_argument('--calib-data-idx', default=None)
    parser.add_argument('--calib-batches', type=int, default=10,
                        help='batches used for calibration')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=2)
    add_pixel_limit_flag(parser)
    args = parser.parse_args(argv)
    set_max_pixels(args.max_pixels)
    args.dynamic_batch = args.dynamic_batch == 'yes'
    if args.format == 'onnx':
        require_onnx()
        if args.quantize:
            require_quantization()
    # Both formats' INT8 need real images; refused before anything is built or written.
    if args.quantize and not args.calib_data:
        raise UsageError('--quantize int8 needs --calib-data (real images to calibrate on)')
    if args.quantize and args.calib_batches < 1:
        raise UsageError('--calib-batches must be >= 1')
    # Every later step reads the resolved network.
    args.trained = resolve(args)
    net = args.trained.load(mx.cpu())
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    shape = (1, 3, args.trained.input_size, args.trained.input_size)
    card = args.trained.to_card()
    if args.format == 'onnx':
        report = export_onnx_checked(args, net, shape, card)
        paths = (report['onnx'],)
        if args.quantize:
            paths += (quantize_onnx_checked(args, report),)
        paths += (_report_path(args),)
    elif args.quantize:
        report, paths = _write_int8(args, net, shape)
    else:
        report, paths = None, export(net, args.out, input_shape=shape)
    paths += (write_card(args.out + '-model.json', card),)
    for path in paths:
        print('wrote %s' % path)
    return report
