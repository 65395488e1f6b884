"""Registered defaults of each model name, kept beside its builder (as timm's per-model
configs): the classes, input size, data set and normalization it is trained with.

Commands fill in what neither a flag nor a model card says from these
(:mod:`gluon_atac.trained`); nothing guesses from a name's prefix.
"""
import dataclasses

from ..registry import Registry

__all__ = ['CIFAR_MEAN', 'CIFAR_STD', 'IMAGENET_MEAN_RGB', 'IMAGENET_STD_RGB', 'ModelConfig',
           'CIFAR_CONFIG', 'IMAGENET_CONFIG', 'MODELS']

# Per RGB channel of images scaled to 0..1: the original CIFAR training script's values.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
# Per RGB channel of 0..255 images, as GluonCV's ImageNet recipes (ImageRecordIter's
# mean_r/std_r take this scale).
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
IMAGENET_STD_RGB = (58.393, 57.12, 57.375)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What a model name is built and fed with unless told otherwise.

    Attributes
    ----------
    classes : int
        Width of the classifier.
    input_size : int
        Side of the square input.
    dataset : str
        Data set whose preprocessing the model expects (``'cifar10'``, ``'imagenet'`` ...).
    mean, std : tuple of float
        Per RGB channel, images scaled to 0..1.
    act_layers : int
        Places of the host that use the requested activation (see the host).
    crop_ratio : float or None
        ImageNet validation: resize to ``ceil(input_size / crop_ratio)``, centre crop;
        ``None`` where images are resized to the input size (CIFAR).
    """

    classes: int
    input_size: int
    dataset: str
    mean: tuple
    std: tuple
    act_layers: int
    crop_ratio: float = None


# train_cifar.py's defaults; every CIFAR depth shares them.
CIFAR_CONFIG = ModelConfig(classes=10, input_size=32, dataset='cifar10', mean=CIFAR_MEAN,
                           std=CIFAR_STD, act_layers=4)
# train_imagenet.py's defaults: 224 crops of a 256 resize, ATAC in stages 3 and 4.
IMAGENET_CONFIG = ModelConfig(classes=1000, input_size=224, dataset='imagenet',
                              mean=tuple(m / 255 for m in IMAGENET_MEAN_RGB),
                              std=tuple(s / 255 for s in IMAGENET_STD_RGB), act_layers=2,
                              crop_ratio=0.875)

MODELS = Registry('model')
