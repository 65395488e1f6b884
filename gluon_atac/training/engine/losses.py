"""Training targets and losses: label smoothing, mixup and distillation from a teacher."""
from mxnet import gluon

from ...errors import UsageError
from ...model_zoo import get_model, get_model_list, load_parameters

__all__ = ['SMOOTHING', 'smooth_labels', 'mixup_lambda', 'training_targets', 'build_loss',
           'build_teacher']

# GluonCV's eta: the smoothed target puts 1 - eta + eta/K on the class.
SMOOTHING = 0.1


def smooth_labels(label, classes, eta):
    """One-hot targets with ``eta`` of the mass spread evenly over all classes.

    Parameters
    ----------
    label : NDArray
        Class indices, shape ``(N,)``.
    classes : int
    eta : float

    Returns
    -------
    NDArray
        Shape ``(N, classes)``: ``1 - eta + eta/classes`` on the class, ``eta/classes``
        elsewhere.
    """
    return label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)


def mixup_lambda(rng, alpha, epoch, num_epochs, off_epochs):
    """The mixing weight of one batch: Beta(alpha, alpha), or 1 in the last ``off_epochs``.

    Parameters
    ----------
    rng : numpy.random.RandomState
    alpha : float
    epoch : int
        0-based epoch index.
    num_epochs, off_epochs : int
    """
    if epoch >= num_epochs - off_epochs:
        return 1.0
    return float(rng.beta(alpha, alpha))


def training_targets(label, classes, eta=0.0, lam=None):
    """Targets of a batch, smoothed by ``eta`` and, under mixup, mixed with ``lam``.

    Parameters
    ----------
    label : NDArray
        Class indices.
    classes : int
    eta : float, default 0
        Label smoothing.
    lam : float, optional
        Mixup weight of a batch mixed as ``lam * batch + (1 - lam) * reversed batch``;
        ``None`` without mixup.

    Returns
    -------
    NDArray
        ``label`` itself (a sparse target) with neither smoothing nor mixup, otherwise
        dense targets of shape ``(N, classes)``.
    """
    if lam is None and not eta:
        return label
    target = smooth_labels(label, classes, eta)
    if lam is None or lam == 1.0:
        return target
    return lam * target + (1 - lam) * smooth_labels(label[::-1], classes, eta)


def build_loss(sparse, teacher=False, temperature=20.0, hard_weight=0.5):
    """Softmax cross-entropy, or GluonCV's distillation loss when a teacher is used.

    Parameters
    ----------
    sparse : bool
        Targets are class indices (no smoothing, no mixup).
    teacher : bool, default False
    temperature, hard_weight : float
        Distillation: the softmax temperature of both networks, and the weight of the
        hard-label term.
    """
    if teacher:
        from gluoncv.loss import DistillationSoftmaxCrossEntropyLoss
        return DistillationSoftmaxCrossEntropyLoss(temperature=temperature,
                                                   hard_weight=hard_weight,
                                                   sparse_label=sparse)
    return gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)


def build_teacher(name, params, classes, ctx, dtype='float32'):
    """A frozen teacher from a gluon_atac or GluonCV model name and a ``.params`` file.

    A name gluon_atac registers builds its default (the paper's ATAC) network; other
    names, and any name written ``gluoncv:NAME``, come from GluonCV's zoo (e.g.
    ``gluoncv:resnet152_v1d`` for GluonCV's ReLU network). The file is loaded with names
    and shapes checked.

    Raises
    ------
    UsageError
        An unknown zoo or model name.
    """
    zoo, _, bare = name.rpartition(':')
    if zoo not in ('', 'gluoncv'):
        raise UsageError("--teacher: unknown zoo %r (write NAME or gluoncv:NAME)" % zoo)
    if not zoo and bare.lower() in get_model_list():
        teacher = get_model(bare, classes=classes)
    else:
        import gluoncv
        try:
            teacher = gluoncv.model_zoo.get_model(bare, classes=classes)
        except ValueError:
            raise UsageError('unknown teacher %r: not a gluon_atac or GluonCV model name'
                             % name) from None
    # Cast first, as the original: the file is read into the dtype the teacher runs in.
    teacher.cast(dtype)
    load_parameters(teacher, params, ctx=ctx)
    teacher.hybridize(static_alloc=True, static_shape=True)
    return teacher
