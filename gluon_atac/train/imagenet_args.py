"""Command line of ``train_imagenet.py``: the original script's flags plus ours."""
import argparse
import os
import re

from ..cli import UsageError
from ..model_zoo import get_model_list

__all__ = ['build_parser', 'parse_args', 'KV_STORES']

KV_STORES = ('local', 'device', 'dist_sync', 'dist_device_sync', 'dist_async')
_V1B_FAMILY = re.compile(r'^resnet\d+_v1[bcd]$')
_REC = os.path.join('~', '.mxnet', 'datasets', 'imagenet', 'rec')


class _OneLineParser(argparse.ArgumentParser):
    """Parse errors become ``UsageError`` so ``cli_main`` prints one ``error:`` line."""

    def error(self, message):
        raise UsageError(message)


def _add_original(p):
    """Flags of the original script, with GluonCV's ``train_imagenet.py`` defaults."""
    data = p.add_argument_group('data (original flags)')
    data.add_argument('--data-dir', default='~/.mxnet/datasets/imagenet',
                      help='folder with train/<class>/*.jpg and val/<class>/*.jpg')
    data.add_argument('--rec-train', default=os.path.join(_REC, 'train.rec'))
    data.add_argument('--rec-train-idx', default=os.path.join(_REC, 'train.idx'))
    data.add_argument('--rec-val', default=os.path.join(_REC, 'val.rec'))
    data.add_argument('--rec-val-idx', default=os.path.join(_REC, 'val.idx'))
    data.add_argument('--use-rec', action='store_true',
                      help='read the record files instead of --data-dir')
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4,
                      help='decoding threads (record files) or loader processes')
    data.add_argument('--input-size', type=int, default=224)
    data.add_argument('--crop-ratio', type=float, default=0.875,
                      help='validation resize is ceil(input-size / crop-ratio)')

    model = p.add_argument_group('model (original flags)')
    model.add_argument('--model', default='resnet50_v1b',
                       help='a ResNet v1b/v1c/v1d of gluon_atac.get_model_list()')
    model.add_argument('--r', type=int, default=2, help='ATAC reduction ratio')
    model.add_argument('--act-layers', type=int, default=2,
                       help='stages (from the deepest) using --act-type; 2 = stages 3-4')
    model.add_argument('--use-pretrained', action='store_true',
                       help="start from GluonCV's pretrained ReLU weights (needs them in "
                            "~/.mxnet/models or a download)")
    model.add_argument('--use-gn', action='store_true', help='GroupNorm instead of BN')
    model.add_argument('--last-gamma', action='store_true',
                       help='zero-init the gamma of the last BN of each block')
    model.add_argument('--summary', action='store_true', help='print the model summary')
    model.add_argument('--dtype', default='float32', choices=('float32', 'float16'),
                       help='float16 trains with multi-precision (GPU only)')
    model.add_argument('--mode', default='imperative',
                       choices=('imperative', 'hybrid', 'symbolic'),
                       help='hybrid (= symbolic) compiles the network')

    train = p.add_argument_group('optimization (original flags)')
    train.add_argument('--batch-size', type=int, default=32, help='per device')
    train.add_argument('--num-gpus', type=int, default=0)
    train.add_argument('--num-epochs', type=int, default=3)
    train.add_argument('--lr', type=float, default=0.1)
    train.add_argument('--momentum', type=float, default=0.9)
    train.add_argument('--wd', type=float, default=0.0001)
    train.add_argument('--lr-mode', default='step', choices=('step', 'cosine', 'poly'))
    train.add_argument('--lr-decay', type=float, default=0.1)
    train.add_argument('--lr-decay-period', type=int, default=0,
                       help='step mode: decay every N epochs (overrides --lr-decay-epoch)')
    train.add_argument('--lr-decay-epoch', default='40,60',
                       help='step mode: epochs at which lr decays')
    train.add_argument('--warmup-lr', type=float, default=0.0)
    train.add_argument('--warmup-epochs', type=int, default=0)
    train.add_argument('--no-wd', action='store_true',
                       help='no weight decay on BN parameters and biases')
    train.add_argument('--label-smoothing', action='store_true', help='smoothing 0.1')
    train.add_argument('--mixup', action='store_true')
    train.add_argument('--mixup-alpha', type=float, default=0.2)
    train.add_argument('--mixup-off-epoch', type=int, default=0,
                       help='train the last N epochs without mixup')
    train.add_argument('--teacher', default=None,
                       help='distil from this gluon_atac model or GluonCV model '
                            '(gluoncv:NAME forces GluonCV), loaded from --teacher-params')
    train.add_argument('--temperature', type=float, default=20)
    train.add_argument('--hard-weight', type=float, default=0.5)

    out = p.add_argument_group('outputs and resuming (original flags)')
    out.add_argument('--save-frequency', type=int, default=10,
                     help='write imagenet-<model>-<epoch>.params every N epochs')
    out.add_argument('--save-dir', default='params')
    out.add_argument('--resume-epoch', type=int, default=0, help='first epoch to run')
    out.add_argument('--resume-params', default='', help='.params to start from')
    out.add_argument('--resume-states', default='', help='.states of the trainer')
    out.add_argument('--log-interval', type=int, default=50, help='batches between logs')
    out.add_argument('--logging-file', default=None,
                     help='log file (default: <save-dir>/train_imagenet.log)')


def _add_ours(p):
    ours = p.add_argument_group('gluon_atac additions')
    ours.add_argument('--gpus', default='',
                      help="GPU ids like '0,1' (overrides --num-gpus)")
    ours.add_argument('--act-type', default='ChaATAC',
                      help='activation of the ATAC stages: ChaATAC, relu, swish, ...')
    ours.add_argument('--use-global', '--useGlobal', dest='use_global', action='store_true',
                      help='ATAC with global (pooled) context')
    ours.add_argument('--no-relu', action='store_true', help='ATAC without its inner ReLU')
    ours.add_argument('--attention', default=None,
                      help='attention module on the residual branch (se, ge), as compared '
                           'in the paper\'s ImageNet table')
    ours.add_argument('--classes', type=int, default=1000)
    ours.add_argument('--teacher-params', default=None,
                      help='.params of --teacher (nothing is downloaded)')
    ours.add_argument('--kv-store', '--kvstore', dest='kv_store', default='device',
                      choices=KV_STORES,
                      help='dist_* kvstores need the DMLC environment (gluon_atac.launch)')
    ours.add_argument('--seed', type=int, default=0)
    ours.add_argument('--no-progress', action='store_true', help='no progress bar')
    ours.add_argument('--resume', default=None, metavar='CKPT',
                      help='continue from <save-dir>/checkpoint.ckpt (net, trainer states, '
                           'epoch, schedule, best score)')
    ours.add_argument('--worker-report', default=None, metavar='DIR',
                      help='every worker writes its final parameters and the folder images '
                           'it read in the last epoch to DIR/rank<k>.params/.json (checks '
                           'distributed runs)')


def build_parser():
    """The ``train_imagenet.py`` argument parser."""
    p = _OneLineParser(description='Train a ResNet v1b with attentional activations on '
                                   'ImageNet (flags of the original open-atac script).')
    _add_original(p)
    _add_ours(p)
    return p


def parse_args(argv=None):
    """Parse and check ``argv``; paths get ``~`` expanded.

    Raises
    ------
    UsageError
        For values no run could use.
    """
    args = build_parser().parse_args(argv)
    for name in ('data_dir', 'rec_train', 'rec_train_idx', 'rec_val', 'rec_val_idx'):
        setattr(args, name, os.path.expanduser(getattr(args, name)))
    for name in ('batch_size', 'num_epochs', 'input_size', 'classes'):
        if getattr(args, name) < 1:
            raise UsageError('--%s must be >= 1' % name.replace('_', '-'))
    if not 0 <= args.warmup_epochs < args.num_epochs:
        raise UsageError('--warmup-epochs must be in [0, --num-epochs)')
    if not 0 <= args.resume_epoch < args.num_epochs:
        raise UsageError('--resume-epoch must be in [0, --num-epochs)')
    if args.teacher and not args.teacher_params:
        raise UsageError('--teacher needs --teacher-params FILE (nothing is downloaded)')
    if args.resume and (args.resume_params or args.resume_states or args.resume_epoch):
        raise UsageError('--resume restores everything; drop --resume-params/-states/-epoch')
    hosts = [n for n in get_model_list() if _V1B_FAMILY.match(n)]
    if args.model.lower() not in hosts:
        raise UsageError('--model must be a ResNet v1b/v1c/v1d: %s' % ', '.join(hosts))
    args.mode = 'hybrid' if args.mode == 'symbolic' else args.mode
    # The original wrote train_imagenet.log into the working directory; runs that do not
    # name a log keep it with their other files instead.
    args.logging_file = args.logging_file or os.path.join(args.save_dir, 'train_imagenet.log')
    return args
