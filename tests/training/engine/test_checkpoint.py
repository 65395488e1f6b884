"""Checkpoint contents are checked before anything acts on them: member compression and
sizes, the run state's types and ranges, and the files a resumed run deletes."""
import json
import os
import resource
import time
import zipfile

import mxnet as mx
import pytest

from gluon_atac import get_model
from gluon_atac.errors import CheckpointError
from gluon_atac.training import cifar as train_cifar
from gluon_atac.training.engine.checkpoint import (MAX_EPOCHS, check_state, count,
                                                   load_checkpoint, number, optional,
                                                   save_checkpoint)
from support import write_cifar


def _net():
    net = get_model('cifar_resnet8_v2', classes=10, act_type='relu')
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    return net


def test_a_member_inflating_to_a_gibibyte_is_refused_unread(tmp_path):
    # 1 GiB of JSON whitespace before a valid header: json.loads would accept it after
    # inflating all of it (2.5 GB resident in issue 18's probe).
    path = str(tmp_path / 'bomb.ckpt')
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open('state.json', 'w', force_zip64=True) as member:
            chunk = b' ' * (1 << 20)
            for _ in range(1024):
                member.write(chunk)
            member.write(json.dumps({'format': 'gluon_atac.checkpoint/2', 'state': {},
                                     'trainer': None}).encode())
        archive.writestr('params.nd', b'')
        archive.writestr('trainer.nd', b'')
    assert os.path.getsize(path) < 8 << 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, _net())
    assert str(err.value) == ('checkpoint %s is not usable: member state.json is compressed '
                              '(method 8); gluon_atac checkpoints store members '
                              'uncompressed' % path)
    assert time.perf_counter() - started < 5
    # ru_maxrss is in kB: the refusal read nothing like the gibibyte.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200 << 10


def test_a_stored_member_larger_than_the_file_is_refused(tmp_path):
    path = tmp_path / 'big.ckpt'
    save_checkpoint(str(path), _net(), None, {'epoch': 1})
    blob = bytearray(path.read_bytes())
    # The central directory's sizes of state.json (the first member) claim 3 GB.
    start = blob.find(b'PK\x01\x02')
    blob[start + 20:start + 28] = (3 << 30).to_bytes(4, 'little') * 2
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match='is truncated or corrupt \\(member state.json '
                                              'declares 3221225472 bytes\\)'):
        load_checkpoint(str(path), _net())


@pytest.mark.parametrize('value,reason', [
    (3, None), (0, None), (MAX_EPOCHS, None),
    ('2', 'a whole number in 0..1000000'), (-5, 'a whole number in 0..1000000'),
    (1e22, 'a whole number in 0..1000000'), (2.0, 'a whole number in 0..1000000'),
    (True, 'a whole number in 0..1000000'), (MAX_EPOCHS + 1, 'a whole number in 0..1000000'),
])
def test_counts_are_whole_numbers_in_range(value, reason):
    assert count()(value) == reason


SCORE = 'a finite number in -1..1 or null'


@pytest.mark.parametrize('value,reason', [
    (0.5, None), (-1, None), (None, None), (float('nan'), SCORE), (float('inf'), SCORE),
    ('0.5', SCORE), (1.5, SCORE),
])
def test_scores_are_finite_numbers_in_range(value, reason):
    assert optional(number(-1, 1))(value) == reason


def test_check_state_names_missing_fields_then_the_first_bad_one():
    checks = {'epoch': count(), 'best': number(0, 1)}
    with pytest.raises(CheckpointError, match='^checkpoint c.ckpt lacks the run state '
                                              'field\\(s\\) epoch, best$'):
        check_state({}, checks, 'c.ckpt')
    with pytest.raises(CheckpointError, match='^checkpoint c.ckpt is not usable: its best is '
                                              '"x", not a finite number in 0..1$'):
        check_state({'epoch': 1, 'best': 'x'}, checks, 'c.ckpt')
    assert check_state({'epoch': 1, 'best': 1}, checks, 'c.ckpt') == {'epoch': 1, 'best': 1}


def test_a_checkpoint_naming_another_file_as_best_deletes_nothing(tmp_path, monkeypatch):
    # The probe of issue 18: best_file = another file of the save folder and
    # best_val_acc -1, so the first epoch's new best made the run delete that file.
    monkeypatch.setenv('GLUON_ATAC_OFFLINE', '1')
    write_cifar(str(tmp_path / 'data'), 'cifar10', 'bin', n_train=16, n_test=8)
    run = tmp_path / 'run'
    run.mkdir()
    victim = run / 'notes.txt'
    victim.write_text('keep me')
    path = str(tmp_path / 'hostile.ckpt')
    save_checkpoint(path, _net(), None, {'epoch': 0, 'lr_decay_count': 0, 'best_val_acc': -1,
                                         'best_epoch': None, 'best_file': str(victim),
                                         'args': {}})
    result = train_cifar.main(['--data-dir', str(tmp_path / 'data'), '--resume-from', path,
                               '--save-dir', str(run), '--num-epochs', '1', '--blocks', '1',
                               '--act-type', 'relu', '--no-progress', '--batch-size', '8'])
    assert victim.read_text() == 'keep me'
    assert result['best_epoch'] == 1
    assert result['best_file'] == str(run / ('%.4f-cifar-cifar_resnet8_v2_relu-1-best.params'
                                             % result['best_val_acc']))
    assert os.path.isfile(result['best_file'])
