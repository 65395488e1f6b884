"""Learning-rate schedules: the CIFAR recipe's per-epoch steps and the ImageNet recipe's
per-iteration warm-up followed by step, cosine or poly decay."""
import mxnet as mx

__all__ = ['step_lr', 'build_lr_scheduler']


def step_lr(epoch, base_lr, decay, decay_epochs):
    """Learning rate of 0-based ``epoch``: ``base_lr`` decayed once per passed decay epoch.

    As in the original, a decay epoch ``d`` lowers the rate from epoch ``d`` on.
    """
    return base_lr * decay ** sum(1 for d in decay_epochs if d <= epoch)


def build_lr_scheduler(args, steps, native=False):
    """Linear warm-up, then ``args.lr_mode`` down to 0, updated per iteration.

    Parameters
    ----------
    args : argparse.Namespace
        ``lr``, ``warmup_lr``, ``warmup_epochs``, ``num_epochs``, ``lr_mode``
        ('step', 'cosine' or 'poly'), ``lr_decay`` and ``decay_epochs``.
    steps : int
        Optimizer updates per epoch (one per global batch; per worker push under
        dist_async).
    native : bool, default False
        Build the same schedule from ``mxnet.lr_scheduler`` classes instead of GluonCV's.
        Needed where the optimizer is unpickled on kvstore servers (dist_async): they
        serve from inside ``import mxnet`` and cannot import GluonCV.

    Returns
    -------
    gluoncv.utils.LRSequential or mxnet.lr_scheduler.LRScheduler
    """
    if native:
        warmup = dict(base_lr=args.lr, warmup_steps=args.warmup_epochs * steps,
                      warmup_begin_lr=args.warmup_lr, warmup_mode='linear')
        total = args.num_epochs * steps
        if args.lr_mode == 'cosine':
            return mx.lr_scheduler.CosineScheduler(total, final_lr=0, **warmup)
        if args.lr_mode == 'poly':
            return mx.lr_scheduler.PolyScheduler(total, pwr=2, final_lr=0, **warmup)
        # MultiFactorScheduler wants increasing update counts >= 1 that come after warm-up.
        marks = sorted({e * steps for e in args.decay_epochs if e > args.warmup_epochs}) or \
            [total + 1]
        return mx.lr_scheduler.MultiFactorScheduler(marks, factor=args.lr_decay, **warmup)
    from gluoncv.utils import LRScheduler, LRSequential

    def phase(mode, epochs, **kwargs):
        # GluonCV divides by (iterations - 1); a one-iteration phase is its first value.
        mode = 'constant' if epochs * steps == 1 else mode
        return LRScheduler(mode, nepochs=epochs, iters_per_epoch=steps, **kwargs)
    return LRSequential([
        phase('linear', args.warmup_epochs, base_lr=args.warmup_lr, target_lr=args.lr),
        phase(args.lr_mode, args.num_epochs - args.warmup_epochs, base_lr=args.lr,
              target_lr=0, step_epoch=[e - args.warmup_epochs for e in args.decay_epochs],
              step_factor=args.lr_decay, power=2)])
