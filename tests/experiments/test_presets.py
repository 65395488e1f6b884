"""Every preset expands to command lines the training scripts accept."""
import os

import pytest

from gluon_atac.errors import UsageError
from gluon_atac.experiments import BUDGETS, PRESETS, expand
from gluon_atac.experiments.presets import variant_label
from gluon_atac.training.cifar import parse_args

PUBLISHED_CIFAR = ('--gpus 0 --num-epochs 400 --mode hybrid -j 32 --batch-size 128 '
                   '--wd 0.0001 --lr 0.2 --lr-decay 0.1 --lr-decay-epoch 300,350 '
                   '--dataset cifar100 --model atac --act-type ChaATAC --useReLU --r 2 '
                   '--blocks 3')
PUBLISHED_IMAGENET = ('--mode hybrid --lr 0.075 --lr-mode cosine --num-epochs 160 '
                      '--batch-size 128 -j 48 --warmup-epochs 5 --dtype float16 --use-rec '
                      '--last-gamma --no-wd --label-smoothing --r 2 --act-layers 2')


def _pairs(args):
    """Flag -> value (None for switches) of an argument list."""
    out, i = {}, 0
    while i < len(args):
        has_value = i + 1 < len(args) and not args[i + 1].startswith('-')
        out[args[i]] = args[i + 1] if has_value else None
        i += 2 if has_value else 1
    return out


@pytest.mark.parametrize('budget', sorted(BUDGETS))
@pytest.mark.parametrize('name', list(PRESETS))
def test_every_preset_expands_to_valid_commands(tmp_path, name, budget):
    runs = expand(name, str(tmp_path), seeds=2, budget=budget, data_dir='/data')
    assert len(runs) == 2 * len(PRESETS[name].variants)
    assert len({run.dir for run in runs}) == len(runs), 'run folders must be distinct'
    for run in runs:
        argv = run.command('/repo', devices=(0,), resume_from='ck')
        assert argv[1] == os.path.join('/repo', PRESETS[name].script)
        flags = _pairs(argv[2:])
        assert flags['--seed'] == str(run.seed)
        assert flags['--save-dir'] == run.dir
        assert flags['--num-epochs'] == str(run.num_epochs)
        if PRESETS[name].family == 'cifar':
            args = parse_args(argv[2:])
            assert args.zoo_name == 'cifar_resnet%d_v2' % run.knobs['depth']
            assert (args.act_type, args.r, args.act_layers) == (
                run.knobs['act_type'], run.knobs['r'], run.knobs['act_layers'])
            assert (args.useReLU, args.useGlobal, args.attention) == (
                run.knobs['use_relu'], run.knobs['use_global'], run.knobs['attention'])


def test_imagenet_commands_parse(tmp_path):
    from gluon_atac.training.imagenet import parse_args as parse_imagenet
    for name in ('imagenet', 'imagenet_attention'):
        for run in expand(name, str(tmp_path), data_dir='/data'):
            args = parse_imagenet(run.command('/repo', devices=(0, 1), resume_from='ck')[2:])
            assert (args.model, args.gpus, args.resume) == (run.knobs['model'], '0,1', 'ck')
            assert (args.act_type, args.attention) == (run.knobs['act_type'],
                                                       run.knobs['attention'])
            assert args.rec_val == '/data/val.rec'
            assert args.logging_file == os.path.join(run.dir, 'train.log')


def test_paper_budget_keeps_the_published_commands(tmp_path):
    cifar = [r for r in expand('activations', str(tmp_path)) if r.name == 'atac-b3-s0'][0]
    ours = _pairs(cifar.command('/repo', devices=(0,)))
    for flag, value in _pairs(PUBLISHED_CIFAR.split()).items():
        assert ours[flag] == value, flag
    imagenet = expand('imagenet', str(tmp_path))[0]
    ours = _pairs(imagenet.command('/repo', devices=(0, 1)))
    for flag, value in _pairs(PUBLISHED_IMAGENET.split()).items():
        assert ours[flag] == value, flag
    assert ours['--gpus'] == '0,1'


def test_smoke_budget_shrinks_the_recipe_and_options_apply(tmp_path):
    runs = expand('reduction', str(tmp_path), seeds=3, budget='smoke', dataset='cifar10',
                  coarse_labels=False)
    assert [r.name for r in runs[:3]] == ['atac-b3-r1-s0', 'atac-b3-r1-s1', 'atac-b3-r1-s2']
    assert all(r.num_epochs == 2 for r in runs)
    coarse = expand('activations', str(tmp_path), coarse_labels=True, only=['relu-b2-*'])
    assert [r.name for r in coarse] == ['relu-b2-s0']
    assert '--coarse-labels' in coarse[0].args


def test_variant_names_say_what_differs():
    knobs = dict(act_type='ChaATAC', blocks=3, r=4, act_layers=2, use_relu=False,
                 use_global=True, attention=None)
    assert variant_label(knobs) == 'atac-b3-r4-global-norelu-al2'
    assert variant_label(dict(knobs, act_type='relu', attention='se')) == 'relu-b3-se-al2'


@pytest.mark.parametrize('kwargs, message', [
    (dict(preset='nope'), 'unknown preset'),
    (dict(preset='context', budget='huge'), 'unknown budget'),
    (dict(preset='context', seeds=0), 'seeds'),
    (dict(preset='context', only=['zzz*']), 'matches'),
])
def test_bad_grid_options_are_usage_errors(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        expand(kwargs.pop('preset'), str(tmp_path), **kwargs)
