"""Named experiment grids: one preset per table or ablation of the paper.

A preset is a list of *variants* (the knobs that differ between runs: act type, depth,
r ...) on top of the paper's recipe, as the original open-atac code publishes it.
:func:`expand` turns a preset into :class:`Run` objects, one per variant and seed, each
knowing its command line.
"""
import collections
import fnmatch
import os
import sys

from ..errors import UsageError

__all__ = ['Preset', 'Run', 'PRESETS', 'BUDGETS', 'get_preset', 'expand', 'variant_label',
           'cifar_model_name', 'ACT_LABELS', 'CIFAR_ACTS']

# The activations of the paper's CIFAR figure, as train_cifar.py spells them.
CIFAR_ACTS = ('relu', 'prelu', 'elu', 'selu', 'gelu', 'swish', 'xunit', 'ChaATAC')
ACT_LABELS = {'relu': 'ReLU', 'prelu': 'PReLU', 'elu': 'ELU', 'selu': 'SELU',
              'gelu': 'GELU', 'swish': 'Swish', 'xunit': 'xUnit', 'chaatac': 'ATAC'}

# The original code's published CIFAR recipe; per-run knobs and the budget are added to it.
CIFAR_RECIPE = collections.OrderedDict([
    ('--model', 'atac'), ('--mode', 'hybrid'), ('-j', '32'), ('--batch-size', '128'),
    ('--num-epochs', '400'), ('--lr', '0.2'), ('--momentum', '0.9'), ('--wd', '0.0001'),
    ('--lr-decay', '0.1'), ('--lr-decay-epoch', '300,350'), ('--save-period', '1')])
# The original code's published ImageNet command, 2 GPUs a run.
IMAGENET_RECIPE = collections.OrderedDict([
    ('--mode', 'hybrid'), ('--lr', '0.075'), ('--lr-mode', 'cosine'), ('--num-epochs', '160'),
    ('--batch-size', '128'), ('-j', '48'), ('--warmup-epochs', '5'), ('--dtype', 'float16'),
    ('--use-rec', None), ('--last-gamma', None), ('--no-wd', None),
    ('--label-smoothing', None), ('--save-frequency', '1')])

# What a budget changes in the recipe. 'smoke' also shrinks the data (see runner): small
# batches so tiny sets give several steps, a learning rate lowered with the batch, no
# loader processes (their start-up would dominate), float32 since CPUs have no float16.
BUDGETS = {
    'paper': {'cifar': {}, 'imagenet': {}},
    'smoke': {
        'cifar': {'--num-epochs': '2', '--lr-decay-epoch': '1', '--batch-size': '16',
                  '-j': '0', '--lr': '0.05'},
        'imagenet': {'--num-epochs': '1', '--warmup-epochs': '0', '--batch-size': '4',
                     '-j': '1', '--dtype': 'float32', '--input-size': '64'},
    },
}

# The paper's CIFAR-100 accuracy (the original code read the COARSE 20-class labels),
# r=2, by depth; act types spelled as in CIFAR_ACTS, since they key the table rows.
_PAPER_DEPTHS = (8, 14, 20, 26, 32)
_PAPER_CIFAR = {
    'relu': (.737, .785, .799, .806, .814),
    'selu': (.729, .780, .795, .801, .804),
    'swish': (.740, .788, .804, .810, .817),
    'xunit': (.737, .775, .795, .800, .805),
    'ChaATAC': (.764, .796, .812, .821, None),
}
PAPER_CIFAR_NOTE = ('paper: CIFAR-100 with the original code, which trained on the 20 '
                    'COARSE labels; compare with runs made with --coarse-labels')


class Preset(object):
    """A named grid of runs.

    Parameters
    ----------
    name : str
    title : str
        One line naming the paper's table or ablation.
    script : {'train_cifar.py', 'train_imagenet.py'}
    variants : list of dict
        Knobs of each run (``act_type``, ``blocks``, ``r``, ``act_layers``,
        ``use_global``, ``use_relu``, ``attention``; ``model`` for ImageNet).
    columns : list of str
        Knobs that tell the variants apart, shown as table columns.
    published : dict, optional
        Maps a tuple of ``columns`` values to the paper's metric (accuracy, 0-1).
    published_params : dict, optional
        Maps a tuple of ``columns`` values to the paper's parameter count.
    note : str, optional
        Caveat printed under the table (e.g. coarse labels).
    figure : bool, default False
        Draw accuracy against depth and parameters per act type.
    """

    def __init__(self, name, title, script, variants, columns, published=None,
                 published_params=None, note='', figure=False):
        self.name, self.title, self.script = name, title, script
        self.variants, self.columns = variants, columns
        self.published = published or {}
        self.published_params = published_params or {}
        self.note, self.figure = note, figure

    @property
    def family(self):
        """``'cifar'`` or ``'imagenet'``: which recipe and budget apply."""
        return 'imagenet' if self.script == 'train_imagenet.py' else 'cifar'

    @property
    def resume_flag(self):
        """The script's flag that continues from ``checkpoint.ckpt``."""
        return '--resume' if self.family == 'imagenet' else '--resume-from'

    def key(self, knobs):
        """The variant's ``columns`` values, the key of the published dicts."""
        return tuple(knobs.get(c) for c in self.columns)


def _cifar(act_type='ChaATAC', blocks=3, **knobs):
    base = {'act_type': act_type, 'blocks': blocks, 'r': 2, 'act_layers': 4,
            'use_relu': True, 'use_global': False, 'attention': None}
    base.update(knobs)
    return base


def _paper_cifar():
    return {(act, depth): acc for act, accs in _PAPER_CIFAR.items()
            for depth, acc in zip(_PAPER_DEPTHS, accs) if acc is not None}


def _presets():
    act_rows = [_cifar(act, b) for act in CIFAR_ACTS for b in range(1, 6)]
    r50 = {'model': 'resnet50_v1b', 'act_type': 'ChaATAC', 'r': 2, 'act_layers': 2,
           'attention': None}
    presets = [
        Preset('activations', 'ATAC against activation functions, ResNet depth 8-32 '
               '(the paper\'s CIFAR figure)', 'train_cifar.py', act_rows,
               ['act_type', 'depth'], published=_paper_cifar(), note=PAPER_CIFAR_NOTE,
               figure=True),
        Preset('attention', 'ATAC against attention modules in the same CIFAR ResNet-20 '
               '(SE and GE-theta+ on each residual branch, ReLU activations)',
               'train_cifar.py',
               [_cifar('relu'), _cifar('relu', attention='se'), _cifar('relu', attention='ge'),
                _cifar('ChaATAC')], ['act_type', 'attention']),
        Preset('context', 'Global vs local context in the ATAC gate, ResNet-20',
               'train_cifar.py', [_cifar(use_global=False), _cifar(use_global=True)],
               ['use_global']),
        Preset('inner_relu', 'Inner ReLU of the ATAC bottleneck on/off, ResNet-20',
               'train_cifar.py', [_cifar(use_relu=True), _cifar(use_relu=False)],
               ['use_relu']),
        Preset('reduction', 'ATAC reduction ratio r, ResNet-20', 'train_cifar.py',
               [_cifar(r=r) for r in (1, 2, 4, 8, 16)], ['r']),
        Preset('act_layers', 'How many places use ATAC (0 = none, 1 = head only, '
               '4 = everywhere), ResNet-20', 'train_cifar.py',
               [_cifar(act_layers=n) for n in range(5)], ['act_layers']),
        Preset('imagenet', 'ATAC-ResNet-50 on ImageNet (the published command)',
               'train_imagenet.py', [r50], ['model', 'act_type'],
               published={('resnet50_v1b', 'ChaATAC'): 1 - 0.2141},
               published_params={('resnet50_v1b', 'ChaATAC'): 28.0e6},
               note='paper: top-1 error 21.41, top-5 6.02 (best of 160 epochs), 4.4 GMACs; '
                    'accuracy here is top-1'),
        Preset('imagenet_attention', 'ResNet-50 with SE, GE-theta+, AA, FA and ATAC on '
               'ImageNet, the same v1b host and recipe', 'train_imagenet.py',
               [dict(r50, act_type='relu'), dict(r50, act_type='relu', attention='se'),
                dict(r50, act_type='relu', attention='ge'),
                dict(r50, model='resnet50_v1b_aa', act_type='relu'),
                dict(r50, model='resnet50_v1b_fa', act_type='relu'), r50],
               ['model', 'act_type', 'attention'],
               published={('resnet50_v1b', 'ChaATAC', None): 1 - 0.2141,
                          ('resnet50_v1b_aa', 'relu', None): 1 - 0.2230,
                          ('resnet50_v1b_fa', 'relu', None): 1 - 0.2240},
               published_params={('resnet50_v1b', 'relu', None): 25.6e6,
                                 ('resnet50_v1b', 'relu', 'se'): 28.1e6,
                                 ('resnet50_v1b', 'relu', 'ge'): 33.7e6,
                                 ('resnet50_v1b_aa', 'relu', None): 25.8e6,
                                 ('resnet50_v1b_fa', 'relu', None): 18.0e6,
                                 ('resnet50_v1b', 'ChaATAC', None): 28.0e6},
               note='paper params: ResNet-50 25.6M, SE 28.1M, GE-theta+ 33.7M, AA 25.8M, '
                    'FA 18.0M, ATAC 28.0M (AA and FA count trainable arrays only, 53k '
                    'fewer than the saved arrays here); the AA and FA rows of the paper '
                    'are their own papers\' (top-1 error 22.30 and 22.40; FA\'s is their '
                    'attention-stem network, ours has the conv stem), its 3.86 GMACs '
                    'baseline is ResNet-50 v1, ours is v1b (4.09G); AA and FA papers count '
                    '2 FLOPs per multiply-add (8.3 and 7.2 GFLOPs)'),
    ]
    for preset in presets:
        for knobs in preset.variants:
            if 'blocks' in knobs:
                knobs['depth'] = 6 * knobs['blocks'] + 2
    return collections.OrderedDict((p.name, p) for p in presets)


PRESETS = _presets()


def get_preset(name):
    """The preset called ``name``.

    Raises
    ------
    UsageError
        For an unknown name; the message lists the presets.
    """
    if name not in PRESETS:
        raise UsageError('unknown preset %r; presets: %s' % (name, ', '.join(PRESETS)))
    return PRESETS[name]


def cifar_model_name(knobs):
    """``gluon_atac.get_model`` name of a CIFAR variant (depth ``6b + 2``)."""
    return 'cifar_resnet%d_v2' % (6 * knobs['blocks'] + 2)


def variant_label(knobs):
    """Short, path-safe name of a variant, e.g. ``relu-b3`` or ``atac-b3-r4-global``."""
    act = ACT_LABELS.get(knobs['act_type'].lower(), knobs['act_type']).lower()
    parts = [knobs.get('model', '').replace('_', '') or None, act,
             'b%d' % knobs['blocks'] if 'blocks' in knobs else None]
    if knobs.get('attention'):
        parts.append(knobs['attention'])
    if act == 'atac':
        if knobs.get('r', 2) != 2:
            parts.append('r%d' % knobs['r'])
        if knobs.get('use_global'):
            parts.append('global')
        if not knobs.get('use_relu', True):
            parts.append('norelu')
    if knobs.get('act_layers', 4) != 4 and 'blocks' in knobs:
        parts.append('al%d' % knobs['act_layers'])
    return '-'.join(p for p in parts if p)


class Run(object):
    """One training run of a preset: a variant with a seed, its directory and command.

    Parameters
    ----------
    preset : Preset
    knobs : dict
    seed : int
    root : str
        Output root; the run lives in ``root/<preset>/<variant>-s<seed>``.
    args : list of str
        Command-line arguments of the training script, without the device flag, the
        save directory and the resume flag, which the runner adds.
    num_epochs : int
    """

    def __init__(self, preset, knobs, seed, root, args, num_epochs):
        self.preset, self.knobs, self.seed = preset, knobs, seed
        self.name = '%s-s%d' % (variant_label(knobs), seed)
        self.dir = os.path.join(root, preset.name, self.name)
        self.args, self.num_epochs = args, num_epochs

    def command(self, script_dir, devices=(), resume_from=None):
        """Full argv: interpreter, script, recipe, devices, save dir (and log), resume."""
        argv = [sys.executable, os.path.join(script_dir, self.preset.script)] + self.args
        if devices:
            argv += ['--gpus', ','.join(str(d) for d in devices)]
        argv += ['--save-dir', self.dir]
        if self.preset.family == 'imagenet':
            # The original writes its log to the working directory unless told.
            argv += ['--logging-file', os.path.join(self.dir, 'train.log')]
        if resume_from:
            argv += [self.preset.resume_flag, resume_from]
        return argv

    def __repr__(self):
        return 'Run(%s/%s)' % (self.preset.name, self.name)


def _recipe_args(recipe):
    args = []
    for flag, value in recipe.items():
        args += [flag] if value is None else [flag, value]
    return args


def _cifar_knob_args(knobs):
    args = ['--act-type', knobs['act_type'], '--blocks', str(knobs['blocks']),
            '--r', str(knobs['r']), '--act-layers', str(knobs['act_layers'])]
    if knobs['use_relu']:
        args.append('--useReLU')
    if knobs['use_global']:
        args.append('--useGlobal')
    if knobs['attention']:
        args += ['--attention', knobs['attention']]
    return args


def _imagenet_knob_args(knobs):
    args = ['--model', knobs['model'], '--act-type', knobs['act_type'], '--r', str(knobs['r']),
            '--act-layers', str(knobs['act_layers'])]
    if knobs['attention']:
        args += ['--attention', knobs['attention']]
    return args


def expand(preset, root, seeds=1, budget='paper', dataset='cifar100', coarse_labels=False,
           data_dir=None, only=None, epochs=None):
    """The runs of ``preset``: every variant with seeds ``0..seeds-1``.

    Parameters
    ----------
    preset : Preset or str
    root : str
        Output root.
    seeds : int, default 1
    budget : {'paper', 'smoke'}, default 'paper'
        ``'smoke'`` shrinks epochs, batch and workers (and the runner the data).
    dataset : {'cifar10', 'cifar100', 'mnist5k'}, default 'cifar100'
        CIFAR presets only.
    coarse_labels : bool, default False
        Train CIFAR-100 on the 20 coarse labels, as the paper's figure did.
    data_dir : str, optional
        Passed to the script as ``--data-dir`` (ImageNet: the folder of ``train.rec``,
        ``train.idx``, ``val.rec``, ``val.idx``).
    only : list of str, optional
        Shell patterns; keep runs whose name matches one (e.g. ``relu-b1-*``).
    epochs : int, optional
        Train this many epochs instead of the budget's; the step-decay epochs (CIFAR) or
        the warm-up (ImageNet) scale in proportion.

    Returns
    -------
    list of Run
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if budget not in BUDGETS:
        raise UsageError('unknown budget %r; budgets: %s' % (budget, ', '.join(BUDGETS)))
    if not isinstance(seeds, int) or seeds < 1:
        raise UsageError('--seeds must be a positive integer, got %r' % (seeds,))
    recipe = IMAGENET_RECIPE if preset.family == 'imagenet' else CIFAR_RECIPE
    recipe = collections.OrderedDict(recipe, **BUDGETS[budget][preset.family])
    if epochs is not None:
        recipe = _rescale(recipe, epochs)
    common = _recipe_args(recipe)
    if preset.family == 'cifar':
        common += ['--dataset', dataset, '--no-progress']
        if coarse_labels:
            common.append('--coarse-labels')
        knob_args = _cifar_knob_args
    else:
        common.append('--no-progress')
        knob_args = _imagenet_knob_args
    if data_dir:
        common += _data_args(preset.family, data_dir)
    runs = []
    for knobs in preset.variants:
        for seed in range(seeds):
            args = common + knob_args(knobs) + ['--seed', str(seed)]
            runs.append(Run(preset, knobs, seed, root, args, int(recipe['--num-epochs'])))
    if only:
        runs = [run for run in runs if any(fnmatch.fnmatch(run.name, p) for p in only)]
        if not runs:
            raise UsageError('no run of preset %s matches %s' % (preset.name, ','.join(only)))
    return runs


def _rescale(recipe, epochs):
    """``recipe`` for ``epochs`` epochs, decay and warm-up epochs at the same fractions."""
    if not isinstance(epochs, int) or epochs < 1:
        raise UsageError('--epochs must be a positive integer, got %r' % (epochs,))
    old = int(recipe['--num-epochs'])
    recipe = collections.OrderedDict(recipe, **{'--num-epochs': str(epochs)})
    if '--lr-decay-epoch' in recipe:
        decays = [int(e) * epochs // old for e in recipe['--lr-decay-epoch'].split(',')]
        recipe['--lr-decay-epoch'] = ','.join(str(e) for e in decays)
    if '--warmup-epochs' in recipe:
        warmup = int(recipe['--warmup-epochs']) * epochs // old
        recipe['--warmup-epochs'] = str(min(warmup, epochs - 1))
    return recipe


def _data_args(family, data_dir):
    if family == 'cifar':
        return ['--data-dir', data_dir]
    return ['--data-dir', data_dir,
            '--rec-train', os.path.join(data_dir, 'train.rec'),
            '--rec-train-idx', os.path.join(data_dir, 'train.idx'),
            '--rec-val', os.path.join(data_dir, 'val.rec'),
            '--rec-val-idx', os.path.join(data_dir, 'val.idx')]
