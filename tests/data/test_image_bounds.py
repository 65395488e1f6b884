"""Images are bounded before decoding: tiny files whose headers promise gigabytes are
refused in one line by every reader, under a memory cap; classify and visualize run the
damage checks of training and evaluate, and classify goes on past a bad image."""
import os
import resource
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac import evaluate
from gluon_atac.commands.classify import main as classify
from gluon_atac.commands.export import main as export
from gluon_atac.commands.visualize import main as visualize
from gluon_atac.data.imagenet import val_batches
from gluon_atac.data.integrity import (DEFAULT_MAX_PIXELS, check_record_file, image_size,
                                       set_max_pixels)
from gluon_atac.data.preprocessing import preprocessing_for
from gluon_atac.errors import DataError
from gluon_atac.utils.model_card import write_model_card

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Address space of a capped command: several times what classify needs (about 0.5 GB
# resident), less than decoding either crafted image would take.
CAP = 2 * 1000 ** 3
BOMB = 'JPEG of 26000 x 26000 pixels, over the limit of %d pixels (--max-pixels raises it)' \
       % DEFAULT_MAX_PIXELS
STRIP = ('PNG of 1 x 10000 pixels, one side over 100 times the other (its resize would take '
         'far more memory than the image)')


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """A good JPEG, one with a damaged Huffman table, a JPEG whose frame header says
    26000 x 26000 (decoding it takes 2 GB) and a real 1 x 10000 PNG (its ImageNet resize
    to a 256 short side takes 2 GB)."""
    root = tmp_path_factory.mktemp('images')
    picture = np.random.RandomState(0).randint(0, 256, (40, 48, 3)).astype(np.uint8)
    good = cv2.imencode('.jpg', picture)[1].tobytes()
    huffman = bytearray(good)
    # Three 1-bit codes: no prefix code has them; MXNet's imread gives zeros, no error.
    huffman[huffman.find(b'\xff\xc4') + 5] = 3
    bomb = bytearray(cv2.imencode('.jpg', picture[:16, :16])[1].tobytes())
    frame = bomb.find(b'\xff\xc0')
    bomb[frame + 5:frame + 9] = (26000).to_bytes(2, 'big') * 2
    strip = cv2.imencode('.png', np.zeros((10000, 1, 3), np.uint8))[1].tobytes()
    paths = {}
    for name, data in (('good.jpg', good), ('huffman.jpg', bytes(huffman)),
                       ('bomb.jpg', bytes(bomb)), ('strip.png', strip)):
        paths[name] = str(root / name)
        with open(paths[name], 'wb') as handle:
            handle.write(data)
    assert len(bomb) < 1000 and len(strip) < 200
    return paths


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A ResNet-18 v1b with ATAC units and ImageNet preprocessing at 224: its folder
    (parameters and model card) and its MXNet export."""
    root = tmp_path_factory.mktemp('r18')
    options = dict(act_type='ChaATAC', r=2, act_layers=2)
    net = ga.get_model('resnet18_v1b', classes=4, **options)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 224, 224)))
    write_model_card(str(root / 'run'), 'resnet18_v1b', dict(options, classes=4), 4,
                     'imagenet', preprocessing_for('imagenet', 224))
    params = str(root / 'run' / 'best.params')
    net.save_parameters(params)
    prefix = str(root / 'export' / 'r18')
    export(['--params', params, '--out', prefix])
    return params, prefix + '-symbol.json'


def _capped(argv):
    """Run ``python -m gluon_atac.<argv>`` with its address space capped at CAP."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))
    return subprocess.run([sys.executable, '-m'] + ['gluon_atac.' + argv[0]] + argv[1:],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, preexec_fn=cap, cwd=ROOT, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_sizes_are_read_from_the_headers(images):
    assert image_size(images['bomb.jpg']) == (26000, 26000)
    assert image_size(images['strip.png']) == (1, 10000)
    assert image_size(images['good.jpg']) == (48, 40)


def test_classify_reports_each_bad_image_in_one_line_and_classifies_the_rest(images, model):
    order = ['good.jpg', 'bomb.jpg', 'huffman.jpg', 'strip.png', 'good.jpg']
    proc = _capped(['classify', model[1], '--top', '2'] + [images[n] for n in order])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        'error: refused image %s: %s' % (images['bomb.jpg'], BOMB),
        'error: damaged image %s: JPEG with a damaged Huffman table' % images['huffman.jpg'],
        'error: refused image %s: %s' % (images['strip.png'], STRIP)]
    lines = proc.stdout.splitlines()
    assert lines[0::3] == [images['good.jpg']] * 2 and len(lines) == 6
    # The same good image, classified before and after the bad ones, alike.
    assert lines[1:3] == lines[4:6]


def test_visualize_and_evaluate_refuse_in_one_line_under_the_cap(images, model, tmp_path):
    proc = _capped(['visualize', '--params', model[0], '--image', images['bomb.jpg'],
                    '--out', str(tmp_path)])
    assert (proc.returncode, proc.stderr.splitlines()) == (
        2, ['error: refused image %s: %s' % (images['bomb.jpg'], BOMB)])
    # A record file of the 1 x 10000 PNG, as im2rec would pack it.
    prefix = str(tmp_path / 'val')
    record = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    with open(images['strip.png'], 'rb') as handle:
        record.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 0, 0),
                                             handle.read()))
    record.close()
    proc = _capped(['evaluate', '--params', model[0], '--data', prefix + '.rec', '-j', '1'])
    assert (proc.returncode, proc.stderr.splitlines()) == (
        2, ['error: refused record 0 in %s: %s' % (prefix + '.rec', STRIP)])


def test_export_refuses_an_oversized_calibration_image_under_the_cap(images, model,
                                                                     tmp_path):
    folder = tmp_path / 'calib' / 'class00'
    folder.mkdir(parents=True)
    shutil.copy(images['good.jpg'], str(folder / 'a.jpg'))
    shutil.copy(images['bomb.jpg'], str(folder / 'b.jpg'))
    proc = _capped(['export', '--params', model[0], '--out', str(tmp_path / 'int8'),
                    '--quantize', 'int8', '--calib-data', str(tmp_path / 'calib'),
                    '--batch-size', '1', '-j', '0'])
    assert (proc.returncode, proc.stderr.splitlines()[-1:]) == (
        2, ['error: refused image %s (class folder %s): %s'
            % (folder / 'b.jpg', tmp_path / 'calib', BOMB)])
    assert [l for l in proc.stderr.splitlines() if l.startswith('error:')] == \
        proc.stderr.splitlines()[-1:]


def test_folder_and_record_readers_refuse_before_decoding(images, tiny_imagenet, tmp_path):
    data = shutil.copytree(tiny_imagenet, str(tmp_path / 'data'))
    path = os.path.join(data, 'val', 'class01', '001.jpg')
    shutil.copy(images['bomb.jpg'], path)
    with pytest.raises(DataError) as err:
        list(val_batches(os.path.join(data, 'val'), 2, 32, num_workers=0))
    assert str(err.value) == 'refused image %s (class folder %s): %s' % (
        path, os.path.join(data, 'val'), BOMB)
    # The limit is a setting: 40 x 40 images pass 1600 pixels and fail 1599, in record
    # files too (each limit is checked afresh).
    rec, idx = os.path.join(data, 'train.rec'), os.path.join(data, 'train.idx')
    previous = set_max_pixels(1599)
    try:
        with pytest.raises(DataError, match=r'^refused record 0 in %s: JPEG of 40 x 40 '
                                            r'pixels, over the limit of 1599 pixels'
                                            % rec.replace('.', r'\.')):
            check_record_file(rec, idx)
        set_max_pixels(1600)
        assert check_record_file(rec, idx) == 24
    finally:
        set_max_pixels(previous)


def test_max_pixels_flag_and_the_damage_checks_of_visualize(images, model, tmp_path,
                                                            capsys):
    with pytest.raises(SystemExit) as stop:
        classify([model[1], images['good.jpg'], '--max-pixels', '1919'])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        'error: refused image %s: JPEG of 48 x 40 pixels, over the limit of 1919 pixels '
        '(--max-pixels raises it)\n' % images['good.jpg'])
    assert len(classify([model[1], images['good.jpg'], '--max-pixels', '1920'])) == 1
    with pytest.raises(SystemExit) as stop:
        visualize(['--params', model[0], '--image', images['huffman.jpg'], '--out',
                   str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ('error: damaged image %s: JPEG with a damaged '
                                       'Huffman table\n' % images['huffman.jpg'])
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(SystemExit) as stop:
        evaluate.main(['--params', model[0], '--data', str(tmp_path), '--max-pixels', '0'])
    assert stop.value.code == 2
    assert capsys.readouterr().err == 'error: --max-pixels must be >= 1, got 0\n'
