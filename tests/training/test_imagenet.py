"""train_imagenet.py: the published command, both data layouts, resuming, the recipe."""
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_atac.training import imagenet as train
from gluon_atac.training.engine import distributed
from gluon_atac.training.engine.losses import build_teacher
from gluon_atac.training.engine.metrics import read_metrics
from gluon_atac.training.engine.schedule import build_lr_scheduler
from gluon_atac.training.imagenet import parse_args

PUBLISHED = ('--mode hybrid --lr 0.075 --lr-mode cosine --num-epochs 160 --batch-size 128 '
             '--num-gpus 2 -j 48 --warmup-epochs 5 --dtype float16 --use-rec --last-gamma '
             '--no-wd --label-smoothing --save-dir params_resnet50_v1b_ChaATAC_2 '
             '--logging-file resnet50_v1b_ChaATAC_2.log --r 2 --act-layers 2').split()
# A small ATAC host (stages 3-4) on 32x32 crops keeps a training epoch to seconds.
SMALL = ['--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32', '--batch-size',
         '8', '-j', '0', '--no-progress', '--log-interval', '0', '--mode', 'hybrid']


def rec_flags(root):
    return ['--rec-train', os.path.join(root, 'train.rec'),
            '--rec-train-idx', os.path.join(root, 'train.idx'),
            '--rec-val', os.path.join(root, 'val.rec'), '--rec-val-idx',
            os.path.join(root, 'val.idx')]


def out_flags(directory):
    return ['--save-dir', str(directory), '--logging-file', str(directory / 'train.log')]


def test_published_command_parses_verbatim():
    args = parse_args(PUBLISHED)
    assert (args.mode, args.lr, args.lr_mode, args.num_epochs) == ('hybrid', 0.075, 'cosine',
                                                                   160)
    assert (args.batch_size, args.num_gpus, args.num_workers, args.warmup_epochs) == (128, 2,
                                                                                      48, 5)
    assert args.dtype == 'float16' and args.use_rec and args.last_gamma and args.no_wd
    assert args.label_smoothing and (args.r, args.act_layers) == (2, 2)
    assert args.save_dir == 'params_resnet50_v1b_ChaATAC_2'
    assert args.logging_file == 'resnet50_v1b_ChaATAC_2.log'
    assert (args.model, args.act_type) == ('resnet50_v1b', 'ChaATAC')


def test_float16_on_cpu_is_a_clean_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        train.main(PUBLISHED)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --dtype float16 needs a GPU (float16 multi-precision training is '
                   'GPU-only in MXNet) and none is visible; use --dtype float32']
    assert os.listdir(tmp_path) == []


def test_published_command_runs_on_a_record_file(tiny_imagenet, tmp_path):
    # The published line verbatim; later flags override only what a CPU smoke run needs.
    # Its batch of 2 x 128 exceeds the 24 images and is lowered to 2 x 12 (one step).
    result = train.run(parse_args(PUBLISHED + rec_flags(tiny_imagenet) + out_flags(tmp_path) + [
        '--dtype', 'float32', '--num-epochs', '1', '--warmup-epochs', '0', '--input-size',
        '32', '-j', '2', '--classes', '4', '--no-progress']))
    records = read_metrics(str(tmp_path / 'metrics.jsonl'))
    assert [r['epoch'] for r in records] == [1]
    for key in ('train_loss', 'val_top1_err', 'val_top5_err', 'lr', 'seconds',
                'samples_per_sec'):
        assert np.isfinite(records[0][key])
    best = '%.4f-imagenet-ResNet50_v1b_ChaATAC-0-best' % result['best_err']
    files = set(os.listdir(tmp_path))
    assert {best + '.params', best + '.states', 'imagenet-ResNet50_v1b_ChaATAC-0.params',
            'checkpoint.ckpt'} <= files
    assert not [f for f in files if f.startswith('.')], 'temporary files left behind'
    log = (tmp_path / 'train.log').read_text()
    assert 'batch size per device lowered from 128 to 12' in log


class _Interrupt(Exception):
    pass


def test_folder_training_resumes_like_an_uninterrupted_run(tiny_imagenet, tmp_path, monkeypatch):
    flags = SMALL + ['--data-dir', tiny_imagenet, '--num-epochs', '2', '--lr', '0.05']
    whole = train.run(parse_args(flags + out_flags(tmp_path / 'whole')))

    real_seed = train.seed_everything

    def crash_in_epoch_1(seed, epoch=0):
        if epoch == 1:
            raise _Interrupt()
        return real_seed(seed, epoch)
    monkeypatch.setattr(train, 'seed_everything', crash_in_epoch_1)
    with pytest.raises(_Interrupt):
        train.run(parse_args(flags + out_flags(tmp_path / 'cut')))
    monkeypatch.setattr(train, 'seed_everything', real_seed)
    resumed = train.run(parse_args(flags + out_flags(tmp_path / 'cut') + [
        '--resume', str(tmp_path / 'cut' / 'checkpoint.ckpt')]))

    assert [r['epoch'] for r in resumed['records']] == [1, 2]
    for a, b in zip(whole['records'], resumed['records']):
        assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-4)
    final = 'imagenet-ResNet18_v1b_ChaATAC-1.params'
    one = mx.nd.load(str(tmp_path / 'whole' / final))
    two = mx.nd.load(str(tmp_path / 'cut' / final))
    for name in one:
        np.testing.assert_allclose(one[name].asnumpy(), two[name].asnumpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_original_resume_flags_restore_schedule_on_record_files(tiny_imagenet, tmp_path):
    first = tmp_path / 'first'
    flags = SMALL + rec_flags(tiny_imagenet) + ['--use-rec', '--num-epochs', '2', '--lr-mode',
                                       'cosine', '--warmup-epochs', '1']
    train.run(parse_args(flags + out_flags(first)))
    stem = str(first / 'imagenet-ResNet18_v1b_ChaATAC-1')
    # Continue epoch 1 from the states of epoch 1's end: the cosine schedule is over, so a
    # restored schedule gives lr 0, while a restarted one would still be warming up.
    second = tmp_path / 'second'
    result = train.run(parse_args(flags + out_flags(second) + [
        '--resume-epoch', '1', '--resume-params', stem + '.params', '--resume-states',
        stem + '.states', '--mixup', '--label-smoothing', '--teacher', 'resnet18_v1b',
        '--teacher-params', stem + '.params']))
    assert [r['epoch'] for r in result['records']] == [2]
    assert result['records'][0]['lr'] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(result['records'][0]['train_loss'])


def test_no_wd_and_last_gamma():
    import logging
    args = parse_args(SMALL + ['--no-wd', '--last-gamma'])
    net = train._build_net(args, [mx.cpu()], logging.getLogger('test'))
    params = net.collect_params()
    for name, param in params.items():
        no_decay = name.endswith(('gamma', 'beta', 'bias'))
        assert param.wd_mult == (0.0 if no_decay else 1.0), name
    assert not net.layer4[-1].bn2.gamma.data().asnumpy().any()
    assert net.layer4[-1].bn1.gamma.data().asnumpy().all()


def test_lr_schedule_warms_up_then_follows_the_mode():
    args = parse_args(['--lr', '0.4', '--num-epochs', '4', '--warmup-epochs', '1',
                       '--lr-mode', 'step', '--lr-decay-epoch', '2,3'])
    schedule = build_lr_scheduler(args, steps=10)
    assert schedule(0) == pytest.approx(0.0)
    assert 0.0 < schedule(5) < 0.4
    assert schedule(10) == pytest.approx(0.4) and schedule(15) == pytest.approx(0.4)
    assert schedule(25) == pytest.approx(0.04)
    assert schedule(35) == pytest.approx(0.004)
    args = parse_args(['--lr', '0.4', '--num-epochs', '3', '--lr-mode', 'cosine'])
    cosine = build_lr_scheduler(args, steps=10)
    assert cosine(0) == pytest.approx(0.4) and cosine(30) == pytest.approx(0.0)
    assert 0.0 < cosine(15) < 0.4


def test_checkpoint_tag_spells_the_published_name():
    assert train.checkpoint_tag('resnet50_v1b', 'atac') == 'ResNet50_v1b_ChaATAC'
    assert train.checkpoint_tag('resnet101_v1d', 'relu') == 'ResNet101_v1d_relu'


@pytest.mark.parametrize('flags, message', [
    (['--kv-store', 'dist_sync'], 'needs the DMLC environment'),
    (['--model', 'cifar_resnet20_v2'], '--model must be a ResNet v1b'),
    (['--teacher', 'resnet18_v1b'], '--teacher needs --teacher-params'),
    (['--warmup-epochs', '3'], '--warmup-epochs must be in'),
])
def test_bad_arguments_exit_2_with_one_line(flags, message, tiny_imagenet, tmp_path, monkeypatch,
                                            capsys):
    monkeypatch.delenv('DMLC_ROLE', raising=False)
    with pytest.raises(SystemExit) as stop:
        train.main(SMALL + ['--data-dir', tiny_imagenet] + out_flags(tmp_path) + flags)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


class _HardExit(Exception):
    pass


def test_a_failing_dist_worker_exits_hard(monkeypatch, capsys):
    # A plain exit would wait in MXNet's kvstore shutdown barrier for the other workers.
    codes = []

    def record(code):
        codes.append(code)
        raise _HardExit()
    monkeypatch.setenv('DMLC_ROLE', 'worker')
    monkeypatch.setattr(distributed.os, '_exit', record)
    with pytest.raises(_HardExit):
        train.main(['--model', 'nope'])
    assert codes == [2]
    assert capsys.readouterr().err.startswith('error: --model must be')


@pytest.mark.parametrize('mode', ['cosine', 'poly', 'step'])
def test_server_side_schedule_matches_gluoncv(mode):
    # dist_async unpickles the optimizer on the servers, which cannot import GluonCV.
    args = parse_args(['--lr', '0.4', '--num-epochs', '4', '--warmup-epochs', '1',
                       '--lr-mode', mode, '--lr-decay-epoch', '2,3'])
    gluoncv, native = (build_lr_scheduler(args, 10, native=n) for n in (False, True))
    assert type(native).__module__.startswith('mxnet.')
    # The two count warm-up updates one apart: at most lr / steps between them.
    for update in range(0, 40, 3):
        assert native(update) == pytest.approx(gluoncv(update), abs=0.04 + 1e-6), update


@pytest.mark.parametrize('name, gluoncv_name', [('resnet18_v1', 'resnet18_v1'),
                                                ('gluoncv:resnet18_v1b', 'resnet18_v1b')])
def test_teacher_from_gluoncv_zoo(name, gluoncv_name, tmp_path):
    import gluoncv
    source = gluoncv.model_zoo.get_model(gluoncv_name, classes=4)
    source.initialize()
    source(mx.nd.zeros((1, 3, 32, 32)))
    source.save_parameters(str(tmp_path / 't.params'))
    teacher = build_teacher(name, str(tmp_path / 't.params'), 4, [mx.cpu()])
    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))
    np.testing.assert_allclose(teacher(x).asnumpy(), source(x).asnumpy(), rtol=1e-4,
                               atol=1e-5)
