"""How one image file becomes a network input, described as data.

A preprocessing is a dict (stored in model cards and ONNX metadata)::

    {"input_size": 224,          # side of the square network input
     "resize": "short",          # "short": short side to resize_to, aspect kept;
                                 # "exact": both sides to resize_to
     "resize_to": 256,
     "crop": 224,                # centre crop of this side after the resize
     "pad": 0,                   # zero border added after the crop (mnist5k: 2)
     "grayscale": false,         # average to one channel, repeated three times
     "mean": [0.485, ...],       # per RGB channel, images scaled to 0..1
     "std": [0.229, ...],
     "crop_ratio": 0.875}        # ImageNet only: crop / resize of validation

:func:`preprocessing_for` gives the one each data set is trained and validated with, and
:func:`prepare_image` applies one.
"""
import os

import mxnet as mx
import numpy as np
from mxnet.gluon.data.vision import transforms

from ..errors import DataError
from .imagenet import MEAN_RGB, STD_RGB, class_images, val_batches, val_resize
from .integrity import decode_image_file
from .loader import CIFAR_MEAN, CIFAR_STD, MNIST_MEAN, MNIST_STD
from .transforms import normalize

__all__ = ['PREPROCESSED_DATASETS', 'preprocessing_for', 'describe', 'prepare_image',
           'image_batches']

PREPROCESSED_DATASETS = ('imagenet', 'cifar10', 'cifar100', 'cifar', 'mnist5k')
# mnist5k digits are 28x28, padded by 2 to CIFAR's 32x32 (gluon_atac.data.mnist5k).
_MNIST_SIDE, _MNIST_PAD = 28, 2


def preprocessing_for(dataset, input_size=None, crop_ratio=0.875):
    """The validation preprocessing of ``dataset``.

    Parameters
    ----------
    dataset : {'imagenet', 'cifar10', 'cifar100', 'cifar', 'mnist5k'}
    input_size : int, optional
        Network input side; default 224 for ImageNet, 32 otherwise.
    crop_ratio : float, default 0.875
        ImageNet: images are resized to ``ceil(input_size / crop_ratio)`` and
        centre-cropped.

    Returns
    -------
    dict
        See the module docstring.
    """
    if dataset not in PREPROCESSED_DATASETS:
        raise ValueError('unknown dataset %r for preprocessing; choose from %s'
                         % (dataset, ', '.join(PREPROCESSED_DATASETS)))
    if dataset == 'imagenet':
        size = int(input_size or 224)
        return dict(input_size=size, resize='short', resize_to=val_resize(size, crop_ratio),
                    crop=size, pad=0, grayscale=False,
                    mean=[m / 255 for m in MEAN_RGB], std=[s / 255 for s in STD_RGB],
                    crop_ratio=crop_ratio)
    size = int(input_size or 32)
    if dataset == 'mnist5k':
        side = size * _MNIST_SIDE // (_MNIST_SIDE + 2 * _MNIST_PAD)
        return dict(input_size=size, resize='exact', resize_to=side, crop=side,
                    pad=(size - side) // 2, grayscale=True, mean=list(MNIST_MEAN),
                    std=list(MNIST_STD))
    return dict(input_size=size, resize='exact', resize_to=size, crop=size, pad=0,
                grayscale=False, mean=list(CIFAR_MEAN), std=list(CIFAR_STD))


def describe(spec):
    """One line saying what ``spec`` does to an image, e.g. for ONNX metadata."""
    side = spec['resize_to']
    steps = ['resize short side to %d' % side if spec['resize'] == 'short'
             else 'resize to %dx%d' % (side, side)]
    if spec['crop'] != spec['resize_to'] or spec['resize'] == 'short':
        steps.append('centre crop %d' % spec['crop'])
    if spec['grayscale']:
        steps.append('gray, repeated to 3 channels')
    if spec['pad']:
        steps.append('pad %d zero pixels per side' % spec['pad'])
    steps.append('RGB / 255, minus mean, over std (per channel), NCHW float32')
    return ', '.join(steps)


def prepare_image(path, spec):
    """Read an image file and apply ``spec``.

    Parameters
    ----------
    path : str
    spec : dict
        A preprocessing (module docstring).

    Returns
    -------
    (ndarray, ndarray)
        The uint8 ``S x S x 3`` image the network sees (before normalization) and the
        float32 ``1 x 3 x S x S`` input.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        ``path`` is damaged, not a JPEG or PNG, or larger than the pixel limit (see
        :func:`~gluon_atac.data.integrity.decode_image_file`).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('image not found: %s' % path)
    # The checks training and evaluate run: damage, and a size bound before decoding.
    image = _resized(decode_image_file(path), spec)
    return image, normalize(image[None], spec['mean'], spec['std'])


def _resized(image, spec):
    """uint8 ``H x W x 3`` NDArray -> the uint8 ``S x S x 3`` array ``spec`` makes of it."""
    side, crop = int(spec['resize_to']), int(spec['crop'])
    # Gluon's transforms, as the validation pipeline of folders resizes and crops.
    image = transforms.CenterCrop(crop)(
        transforms.Resize(side, keep_ratio=spec['resize'] == 'short')(image)).asnumpy()
    if spec['grayscale']:
        gray = np.round(image.astype(np.float32).mean(axis=2)).astype(np.uint8)
        image = np.repeat(gray[..., None], 3, axis=2)
    pad = int(spec['pad'])
    return np.pad(image, ((pad, pad), (pad, pad), (0, 0)))


def image_batches(path, spec, batch_size, num_workers=0, idx=None):
    """The images of a ``.rec`` file or ``<class>/*`` folder, preprocessed by ``spec``.

    ImageNet's preprocessing runs the validation readers (:func:`val_batches`, which check
    every image); the others (CIFAR, mnist5k: resize to the input, grey, pad) read a class
    folder in this process, each image checked before it is decoded.

    Parameters
    ----------
    path : str
    spec : dict
        A preprocessing (module docstring), e.g. a model card's.
    batch_size : int
    num_workers : int, default 0
    idx : str, optional
        ``.idx`` of a ``.rec`` file.

    Yields
    ------
    (NDArray, NDArray)
        float32 images ``N x 3 x S x S`` and labels (class-folder positions).

    Raises
    ------
    DataError
        A record file with non-ImageNet preprocessing, or a damaged image.
    """
    if spec['resize'] == 'short':
        yield from val_batches(path, batch_size, spec['input_size'], spec['crop_ratio'],
                               num_workers, idx)
        return
    if not os.path.isdir(path):
        raise DataError('%s: images preprocessed as %s are read from a <class>/* folder of '
                        'image files' % (path, describe(spec)))
    items = list(class_images(path))
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        images = [_resized(decode_image_file(file, where='class folder %s' % path), spec)
                  for _, file in chunk]
        yield (mx.nd.array(normalize(np.stack(images), spec['mean'], spec['std'])),
               mx.nd.array([label for label, _ in chunk]))
