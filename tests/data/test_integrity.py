"""Damaged ImageNet data stops both readers, training and evaluation with one line naming
the image (class folders) or the record (record files)."""
import os
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac import evaluate
from gluon_atac.data.imagenet import count_images, train_batches, val_batches
from gluon_atac.data.integrity import _image_problem, check_record_file, decode_image_file
from gluon_atac.errors import DataError
from gluon_atac.training import imagenet as train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = os.path.join('class01', '001.jpg')
MAGIC = b'\x0a\x23\xd7\xce'  # RecordIO's, as stored


@pytest.fixture
def data(tiny_imagenet, tmp_path):
    """A copy of the shared tiny ImageNet (24 training, 8 validation images) to damage."""
    return shutil.copytree(tiny_imagenet, str(tmp_path / 'data'))


@pytest.fixture(scope='module')
def params(tmp_path_factory):
    net = ga.get_model('resnet18_v1b', classes=4)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path_factory.mktemp('r18') / 'r18.params')
    net.save_parameters(path)
    return path


def _read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def _write(path, data):
    with open(path, 'wb') as handle:
        handle.write(data)


def _overwrite(path, offset, data):
    content = bytearray(_read(path))
    content[offset:offset + len(data)] = data
    _write(path, bytes(content))


def _offsets(root, split):
    with open(os.path.join(root, split + '.idx')) as handle:
        return [int(line.split()[1]) for line in handle]


def _image_offset(root, split, key):
    # A record: 8 bytes of RecordIO header, then the 24-byte label header, then the image.
    return _offsets(root, split)[key] + 8 + 24


def _damage_jpeg(path, damage):
    content = _read(path)
    if damage == 'garbage':
        _write(path, b'not an image ' * 20)
    elif damage == 'truncated':
        _write(path, content[:len(content) * 2 // 3])
    elif damage == 'empty':
        _write(path, b'')
    elif damage == 'header':  # the frame header's component count, which imread ignores
        _overwrite(path, content.find(b'\xff\xc0') + 9, b'\x00')
    else:  # 'later scan': a progressive JPEG is checked up to its first scan only
        _write(path, _progressive_jpeg(np.full((32, 32, 3), 90, np.uint8), damaged=True))


def _progressive_jpeg(image, damaged=False):
    jpeg = bytearray(cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1])
    if damaged:
        later_table = jpeg.find(b'\xff\xc4', jpeg.find(b'\xff\xda'))
        jpeg[later_table + 4] = 0x37  # table class 3 does not exist
    return bytes(jpeg)


def test_good_images_decode_as_mxnet_reads_them(tiny_imagenet):
    path = os.path.join(tiny_imagenet, 'val', IMAGE)
    assert np.array_equal(decode_image_file(path).asnumpy(), mx.image.imread(path).asnumpy())


@pytest.mark.parametrize('damage, workers, reason', [
    ('garbage', 0, 'neither JPEG nor PNG, the formats whose size is checked before decoding'),
    ('truncated', 2, 'JPEG data stops before its end marker (truncated)'),
    ('empty', 0, 'the file is empty'),
    ('header', 0, 'JPEG with a frame header of 0 components in 17 bytes'),
    ('later scan', 2, 'MXNet cannot decode it')])
def test_damaged_folder_image_is_named(data, damage, workers, reason):
    path = os.path.join(data, 'val', IMAGE)
    _damage_jpeg(path, damage)
    if damage == 'header':
        # What the check prevents: MXNet's own reader returns an uninitialized array.
        assert mx.image.imread(path).shape == (40, 40, 3)
    with pytest.raises(DataError) as err:
        list(val_batches(os.path.join(data, 'val'), 2, 32, num_workers=workers))
    # Not a JPEG or PNG is refused, not called damaged: it may be an intact image of
    # another format, whose size cannot be checked before decoding.
    assert str(err.value) == '%s image %s (class folder %s): %s' % (
        'refused' if damage == 'garbage' else 'damaged', path, os.path.join(data, 'val'),
        reason)


def test_truncated_record_file_is_named(data):
    rec = os.path.join(data, 'val.rec')
    content = _read(rec)
    _write(rec, content[:-100])
    with pytest.raises(DataError) as err:
        count_images(rec)
    assert str(err.value) == ("damaged record 7 in %s: the file stops at byte %d, short of "
                              "the record's end (truncated)" % (rec, len(content) - 100))
    # Cut where a record starts: the records after the cut are missing.
    _write(rec, content[:_offsets(data, 'val')[2]])
    with pytest.raises(DataError, match=r'damaged record 2 .*\(truncated\)'):
        count_images(rec)


def test_damaged_record_header_is_named(data):
    rec = os.path.join(data, 'train.rec')
    offset = _offsets(data, 'train')[5]
    _overwrite(rec, offset, b'\xab' * 8)
    with pytest.raises(DataError) as err:
        list(train_batches(rec, 1, 4, 32, num_workers=1))
    assert str(err.value) == 'damaged record 5 in %s: no record header at byte %d' % (rec,
                                                                                    offset)


def test_index_of_another_file_is_refused(data):
    idx = os.path.join(data, 'val.idx')
    _write(idx, b'0\t0\n1\t1000\n')
    with pytest.raises(DataError, match='damaged record 0 in .*: its header says it ends'):
        count_images(os.path.join(data, 'val.rec'))
    _write(idx, b'0\t0\n1 x\n')
    with pytest.raises(DataError, match='val.idx line 2 is not'):
        count_images(os.path.join(data, 'val.rec'))


def test_overwritten_jpeg_headers_in_a_record_are_named(data):
    rec = os.path.join(data, 'val.rec')
    _overwrite(rec, _image_offset(data, 'val', 2) + 20, b'\xab' * 380)
    with pytest.raises(DataError, match=r'^damaged record 2 in %s: JPEG with ' % rec):
        list(val_batches(rec, 2, 32, num_workers=1))


def test_bad_label_and_bad_png_are_named(data):
    rec = os.path.join(data, 'val.rec')
    _overwrite(rec, _offsets(data, 'val')[1] + 8 + 4, np.float32(np.nan).tobytes())
    with pytest.raises(DataError, match='damaged record 1 .*: its label nan is not a class'):
        count_images(rec)
    record = mx.recordio.MXIndexedRecordIO(os.path.join(data, 'png.idx'),
                                           os.path.join(data, 'png.rec'), 'w')
    png = cv2.imencode('.png', np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    for key in range(2):
        record.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, key, 0), png))
    record.close()
    rec = os.path.join(data, 'png.rec')
    assert count_images(rec) == 2
    _overwrite(rec, _offsets(data, 'png')[1] + 8 + 24 + 40, b'\xab')
    with pytest.raises(DataError, match='damaged record 1 .*: PNG chunk at byte 33 fails'):
        count_images(rec)


def test_record_split_around_the_magic_word_is_read_whole(data):
    # The writer splits a record where its data holds RecordIO's magic word at a multiple
    # of 4 bytes; here a JPEG comment puts it at byte 32 (the image starts at byte 24).
    jpeg = cv2.imencode('.jpg', np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    image = jpeg[:2] + b'\xff\xfe\x00\x08\x00\x00' + MAGIC + jpeg[2:]
    prefix = os.path.join(data, 'split')
    record = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    for key in range(3):
        record.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, 1.0, key, 0), image))
    record.close()
    assert _read(prefix + '.rec').count(MAGIC) == 6  # two parts a record
    assert count_images(prefix + '.rec') == 3
    assert sum(len(l) for _, l in val_batches(prefix + '.rec', 3, 32, num_workers=1)) == 3
    # The second part's header, after the first's 8 + 32 bytes, claims a whole record.
    word = _offsets(data, 'split')[1] + 40 + 4
    length = int.from_bytes(_read(prefix + '.rec')[word:word + 4], 'little') & (2 ** 29 - 1)
    _overwrite(prefix + '.rec', word, length.to_bytes(4, 'little'))
    with pytest.raises(DataError, match='damaged record 1 .*: a damaged record header at'):
        count_images(prefix + '.rec')


def test_damage_inside_compressed_jpeg_data_is_not_found(data):
    # JPEG decoders conceal it; the image decodes to a partly wrong picture.
    rec = os.path.join(data, 'val.rec')
    end = _offsets(data, 'val')[2]
    _overwrite(rec, end - 300, b'\x55' * 100)
    assert count_images(rec) == 8
    assert sum(len(l) for _, l in val_batches(rec, 2, 32, num_workers=1)) == 8


def test_training_names_the_record_file_of_an_image_failing_to_decode(data):
    # A damaged table of a progressive JPEG's later scan passes the check and makes
    # decoding fail, which ImageRecordIter reports without the file.
    prefix = os.path.join(data, 'progressive')
    record = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    for key in range(4):
        image = np.random.RandomState(key).randint(0, 256, (32, 32, 3)).astype(np.uint8)
        record.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, key, 0),
                                               _progressive_jpeg(image, damaged=key == 1)))
    record.close()
    assert check_record_file(prefix + '.rec', prefix + '.idx') == 4
    with pytest.raises(DataError, match='reading %s failed, probably on an image that does '
                                        'not decode' % (prefix + '.rec')):
        list(train_batches(prefix + '.rec', 2, 2, 32, num_workers=1))


def test_header_check_finds_every_header_damage_the_decoder_refuses():
    # Every byte of a baseline JPEG's headers, changed to a few values: whenever the
    # decoder (OpenCV's libjpeg-turbo, as MXNet's) refuses the file, the check names it.
    image = np.random.RandomState(0).randint(0, 256, (32, 32, 3)).astype(np.uint8)
    jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    headers = jpeg.find(b'\xff\xda') + 14
    missed, refused = [], 0
    for pos in range(headers):
        for value in {0x00, 0xff, jpeg[pos] ^ 0x01, jpeg[pos] ^ 0x10} - {jpeg[pos]}:
            damaged = jpeg[:pos] + bytes([value]) + jpeg[pos + 1:]
            if cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR) is None:
                refused += 1
                if damaged[:3] == jpeg[:3] and not _image_problem(damaged, 0, len(damaged)):
                    missed.append((pos, value))
    assert refused > 300 and missed == []


def _single_error_line(stderr, expected):
    assert 'Traceback' not in stderr
    lines = stderr.strip().splitlines()
    assert [l for l in lines if l.startswith('error:')] == [expected] == lines[-1:]


def _run(argv):
    return subprocess.run([sys.executable] + argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)


def _rec_flags(root):
    return ['--use-rec'] + [flag for split in ('train', 'val') for flag in (
        '--rec-%s' % split, os.path.join(root, split + '.rec'), '--rec-%s-idx' % split,
        os.path.join(root, split + '.idx'))]


SMALL = ['--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32', '--batch-size',
         '4', '-j', '2', '--num-epochs', '1', '--no-progress']


def test_train_imagenet_stops_on_a_damaged_record(data, tmp_path):
    rec = os.path.join(data, 'train.rec')
    _write(rec, _read(rec)[:-50])
    proc = _run(['train_imagenet.py'] + _rec_flags(data) + SMALL + [
        '--save-dir', str(tmp_path / 'run')])
    assert proc.returncode == 2
    _single_error_line(proc.stderr, "error: damaged record 23 in %s: the file stops at byte "
                       "%d, short of the record's end (truncated)"
                       % (rec, os.path.getsize(rec)))


def test_evaluate_stops_on_a_damaged_folder_image_read_by_a_loader_process(data, params):
    path = os.path.join(data, 'val', IMAGE)
    _damage_jpeg(path, 'truncated')
    proc = _run(['-m', 'gluon_atac.evaluate', 'resnet18_v1b', '--params', params,
                 '--classes', '4', '--input-size', '32', '--data',
                 os.path.join(data, 'val'), '-j', '2'])
    assert proc.returncode == 2
    _single_error_line(proc.stderr, 'error: damaged image %s (class folder %s): JPEG data '
                       'stops before its end marker (truncated)'
                       % (path, os.path.join(data, 'val')))


def test_training_on_a_folder_and_evaluating_records_stop_with_one_line(data, params,
                                                                        tmp_path, capsys):
    path = os.path.join(data, 'train', IMAGE)
    _damage_jpeg(path, 'garbage')
    with pytest.raises(SystemExit) as stop:
        train.main(['--data-dir', data, '--save-dir', str(tmp_path / 'run')] + SMALL)
    assert stop.value.code == 2
    _single_error_line(capsys.readouterr().err, 'error: refused image %s (class folder %s): '
                       'neither JPEG nor PNG, the formats whose size is checked before '
                       'decoding' % (path, os.path.join(data, 'train')))
    rec = os.path.join(data, 'val.rec')
    _overwrite(rec, _offsets(data, 'val')[1], b'\x00' * 4)
    with pytest.raises(SystemExit) as stop:
        evaluate.main(['resnet18_v1b', '--params', params, '--classes', '4', '--input-size',
                       '32', '--data', rec, '-j', '2'])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: damaged record 1 in %s: no record header at byte %d'
        % (rec, _offsets(data, 'val')[1])]
