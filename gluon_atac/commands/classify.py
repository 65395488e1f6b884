"""``python -m gluon_atac.classify MODEL_FILE IMAGE...``: top-5 classes of images.

``MODEL_FILE`` is an ONNX file written by ``python -m gluon_atac.export --format onnx`` (run
by ONNX Runtime; its metadata says how an image becomes the input) or an MXNet export
``PREFIX-symbol.json`` (run by MXNet with ``PREFIX-0000.params``; the preprocessing comes
from ``PREFIX-model.json``, which every export writes). ``--dataset``, ``--input-size``
and ``--crop-ratio`` override the file's preprocessing; a file without one and no
``--dataset`` is refused in one line, never guessed. An image that
cannot be read is reported in one line and the others still run; the exit code is then 2.
"""
import json
import os
import sys
import warnings

import mxnet as mx
import numpy as np

from ..errors import UsageError, cli_main
from ..data.integrity import add_pixel_limit_flag, set_max_pixels
from ..utils.argv import command_parser
from ..data.preprocessing import prepare_image
from ..trained import add_preprocessing_flags, resolve_preprocessing
from ..utils.model_card import card_from_metadata, find_model_card
from ..utils.onnx_export import onnx_session, read_metadata

__all__ = ['load_classifier', 'softmax', 'top_classes', 'main']

_SYMBOL_SUFFIX = '-symbol.json'


def load_classifier(path, params=None):
    """A function from a float32 NCHW batch to logits, and the model card it carries.

    Parameters
    ----------
    path : str
        ``.onnx`` file or ``PREFIX-symbol.json``.
    params : str, optional
        Parameters of an MXNet export; default ``PREFIX-0000.params``.

    Returns
    -------
    (callable, dict or None)
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('model file not found: %s' % path)
    if path.endswith('.onnx'):
        session = onnx_session(path)
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})[0],
                card_from_metadata(read_metadata(path), path))
    if path.endswith(_SYMBOL_SUFFIX):
        params = params or path[:-len(_SYMBOL_SUFFIX)] + '-0000.params'
        if not os.path.isfile(params):
            raise FileNotFoundError('parameters of the MXNet export not found: %s' % params)
        with warnings.catch_warnings():
            # "Cannot decide type for ... data": the input's type comes with the first call.
            warnings.simplefilter('ignore', UserWarning)
            net = mx.gluon.SymbolBlock.imports(path, ['data'], params)
        return lambda x: net(mx.nd.array(x)).asnumpy(), find_model_card(path)
    raise UsageError('MODEL_FILE must be a .onnx file or an MXNet export '
                     'PREFIX-symbol.json, got %s' % path)


def softmax(logits):
    """Probabilities of each row of ``logits``."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_classes(probabilities, k=5, labels=None):
    """The ``k`` most probable classes of one image as dicts, most probable first."""
    order = np.argsort(-probabilities, kind='stable')[:k]
    return [dict(class_id=int(i), probability=float(probabilities[i]),
                 **({'label': labels[i]} if labels else {})) for i in order]


def _labels(path):
    if path is None:
        return None
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


def _format(image, top):
    lines = [image]
    for row in top:
        lines.append('  %.4f  %5d  %s' % (row['probability'], row['class_id'],
                                          row.get('label', '')))
    return '\n'.join(line.rstrip() for line in lines)


@cli_main
def main(argv=None):
    """Print the top classes of every image; exit 2 if any image failed."""
    parser = command_parser('classify', __doc__.split('\n\n')[0])
    parser.add_argument('model_file', help='.onnx file or MXNet PREFIX-symbol.json')
    parser.add_argument('images', nargs='+', help='image files (jpg, png)')
    parser.add_argument('--params', default=None,
                        help='MXNet export: parameters (default PREFIX-0000.params)')
    parser.add_argument('--labels', default=None, help='text file, one class name a line')
    parser.add_argument('--json', action='store_true', help='print JSON instead of text')
    parser.add_argument('--top', type=int, default=5, help='classes shown per image')
    add_preprocessing_flags(parser)
    add_pixel_limit_flag(parser)
    args = parser.parse_args(argv)
    set_max_pixels(args.max_pixels)
    if args.top < 1:
        raise UsageError('--top must be >= 1')
    classify, card = load_classifier(args.model_file, args.params)
    _, spec = resolve_preprocessing(args, card, what=args.model_file)
    labels = _labels(args.labels)
    results, failed = [], 0
    for image in args.images:
        try:
            _, x = prepare_image(image, spec)
        except (OSError, ValueError) as err:
            print('error: %s' % err, file=sys.stderr)
            results.append({'image': image, 'error': str(err)})
            failed += 1
            continue
        probabilities = softmax(classify(x))[0]
        if labels and len(labels) < len(probabilities):
            raise UsageError('--labels %s names %d classes, the model has %d'
                             % (args.labels, len(labels), len(probabilities)))
        top = top_classes(probabilities, args.top, labels)
        results.append({'image': image, 'top': top})
        if not args.json:
            print(_format(image, top))
    if args.json:
        print(json.dumps(results, indent=2))
    if failed:
        sys.exit(2)
    return results


if __name__ == '__main__':
    main()
