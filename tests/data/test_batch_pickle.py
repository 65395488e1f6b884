"""CIFAR python batches are read without unpickling: the official structure loads, from
every pickle protocol; crafted dtypes, foreign objects and shared-reference bombs are
refused in one line naming the file."""
import os
import pickle
import resource
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from gluon_atac.data import DataError, load_cifar
from gluon_atac.data.batch_pickle import MAX_FILE_BYTES
from support import python2_batch, write_cifar

FOLDER = 'cifar-10-batches-py'


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv('GLUON_ATAC_OFFLINE', '1')


@pytest.fixture
def data_dir(tmp_path):
    """A CIFAR-10 python folder whose data_batch_1 each test replaces."""
    write_cifar(str(tmp_path), 'cifar10', 'py', n_train=5, n_test=3)
    return tmp_path


def _rows(count, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (count, 3072)).astype(np.uint8)


def _replace(data_dir, blob, name='data_batch_1'):
    path = data_dir / FOLDER / name
    path.write_bytes(blob)
    return str(path)


def _refusal(data_dir):
    with pytest.raises(DataError) as err:
        load_cifar(str(data_dir), 'cifar10')
    message = str(err.value)
    assert '\n' not in message
    return message


def test_python2_batch_as_downloaded_loads(data_dir):
    # The opcodes of the official files: BINSTRING data, ('u1', 0, 1) dtype and its state.
    rows = _rows(4)
    _replace(data_dir, python2_batch(rows, {b'labels': [0, 9, 3, 3]}))
    (train_x, train_y), _ = load_cifar(str(data_dir), 'cifar10')
    np.testing.assert_array_equal(train_x[:4].transpose(0, 3, 1, 2).reshape(4, -1), rows)
    assert train_y[:4].tolist() == [0, 9, 3, 3]
    assert train_x.flags.writeable


@pytest.mark.parametrize('protocol', [0, 1, 2, 3, 4, 5])
def test_every_pickle_protocol_of_numpy_loads(data_dir, protocol):
    rows = _rows(3, seed=protocol)
    batch = {b'data': rows, b'labels': [1, 2, 3], b'filenames': [b'a.png', b'b.png', b'c.png'],
             b'batch_label': 'training batch 1 of 5'}
    _replace(data_dir, pickle.dumps(batch, protocol=protocol))
    (train_x, train_y), _ = load_cifar(str(data_dir), 'cifar10')
    np.testing.assert_array_equal(train_x[:3].transpose(0, 3, 1, 2).reshape(3, -1), rows)
    assert train_y[:3].tolist() == [1, 2, 3]


# The state of np.dtype([('f', 'O')]) with its object flags cleared: old readers handed it
# to numpy, which then took the image bytes for pointers (the segfault of issue 18).
OBJECT_FIELD_STATE = (b"(K\x03U\x01|NU\x01f\x85}U\x01fcnumpy\ndtype\nU\x02O8K\x00K\x01\x87R"
                      b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tbK\x00\x86sK\x08K"
                      b"\x01K\x00t")


def _segfault_probe():
    """Issue 18's crafted batch: a V8 dtype with an object field at offset 0 over the
    bytes 'AAAAAAAA' (its object flags cleared), which made pickle-based readers hand
    0x4141414141414141 to numpy as a pointer (segmentation fault on main)."""
    blob = python2_batch(np.full((1, 3072), 65, np.uint8), {b'labels': [0]},
                         dtype_state=OBJECT_FIELD_STATE)
    raw = b'T' + struct.pack('<i', 3072) + b'A' * 3072
    return blob.replace(b'dtype\nq\x05U\x02u1', b'dtype\nq\x05U\x02V8').replace(
        raw, b'T' + struct.pack('<i', 8 * 3072) + b'A' * (8 * 3072))


# A uint8 dtype whose state adds field names: refused whatever the fields are.
NAMED_FIELD_STATE = b"(K\x03U\x01|NU\x01f\x85NK\x01K\x01K\x00t"


@pytest.mark.parametrize('blob,reason', [
    (_segfault_probe(), "a dtype 'V8', not uint8"),
    (python2_batch(_rows(1), {b'labels': [0]}, dtype_state=OBJECT_FIELD_STATE),
     "a dtype 'O8', not uint8"),
    (python2_batch(_rows(1), {b'labels': [0]}, dtype_state=NAMED_FIELD_STATE),
     'a dtype with fields or a sub-array, not plain uint8'),
    (pickle.dumps({b'data': np.zeros((1, 3072), np.float64), b'labels': [0]}),
     "a dtype 'f8', not uint8"),
    (pickle.dumps({b'data': np.zeros((1, 3072), object), b'labels': [0]}),
     "a dtype 'O8', not uint8"),
    (pickle.dumps({b'data': np.zeros((1, 3072), [('a', 'u1')]), b'labels': [0]}),
     "a dtype 'V1', not uint8"),
    (b'\x80\x02cos\nsystem\nU\x04trueq\x00\x85R.', 'a reference to os.system'),
    (pickle.dumps({b'data': np.zeros((3072, 1), np.uint8), b'labels': [0]}),
     'data is not a uint8 array of N x 3072'),
    (pickle.dumps({b'data': np.zeros((1, 3072), np.uint8), b'labels': [True]}),
     'labels is not a list of 1 integers in 0..99'),
    (pickle.dumps({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0]}),
     'labels is not a list of 2 integers in 0..99'),
    (pickle.dumps({b'data': np.zeros((1, 3072), np.uint8), b'labels': [2 ** 40]}),
     'labels is not a list of 1 integers in 0..99'),
    (pickle.dumps({b'data': np.zeros((1, 3072), np.uint8), b'labels': [0], b'x': 1}),
     'unknown key(s) x'),
    (pickle.dumps({b'labels': [0]}), 'missing data'),
    (pickle.dumps([np.zeros((1, 3072), np.uint8)]), 'not a dict of data and labels'),
    (pickle.dumps({b'data': np.zeros((1, 3072), np.uint8), b'labels': [0],
                   b'filenames': [1.5]}), 'the pickle operation BINFLOAT'),
])
def test_anything_but_the_official_structure_is_one_line(data_dir, blob, reason):
    _replace(data_dir, blob)
    assert _refusal(data_dir) == '%s is not an official CIFAR python batch: %s' % (
        data_dir / FOLDER / 'data_batch_1', reason)


def test_shared_reference_bomb_is_refused_before_it_expands(data_dir):
    # 11 kB whose nested shared rows np.asarray would expand to 3.6 GB of images.
    row = [7] * 3072
    nested = [[[row] * 1100] * 1100]
    blob = pickle.dumps({b'data': nested, b'labels': [0]}, protocol=2)
    assert len(blob) < 12000
    _replace(data_dir, blob)
    started = time.perf_counter()
    message = _refusal(data_dir)
    assert message.endswith('data is not a uint8 array of N x 3072')
    assert time.perf_counter() - started < 5


def test_declared_lengths_beyond_the_file_do_not_allocate(data_dir):
    # BINBYTES8 declaring 2**40 bytes: a file object would allocate that much to read it.
    blob = b'\x80\x04\x8e' + (1 << 40).to_bytes(8, 'little') + b'abc'
    _replace(data_dir, blob)
    assert 'data_batch_1 is truncated or malformed' in _refusal(data_dir)


def test_truncated_python2_batch_names_the_file(data_dir):
    blob = python2_batch(_rows(2), {b'labels': [0, 1]})
    _replace(data_dir, blob[:len(blob) // 2])
    assert 'data_batch_1 is truncated or malformed' in _refusal(data_dir)


def test_file_larger_than_any_batch_is_refused_unread(data_dir):
    path = _replace(data_dir, b'')
    with open(path, 'wb') as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    assert _refusal(data_dir).endswith('%d bytes, more than the %d of any CIFAR batch'
                                       % (MAX_FILE_BYTES + 1, MAX_FILE_BYTES))


def test_crafted_dtype_file_ends_train_cifar_in_one_line(data_dir, tmp_path):
    # The probe of issue 18 on the real command, in its own process: a crash would show
    # as a signal, a traceback as more than one line.
    _replace(data_dir, _segfault_probe())
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, os.path.join(root, 'train_cifar.py'), '--data-dir', str(data_dir),
         '--num-epochs', '1', '--save-dir', str(tmp_path / 'run'), '--no-progress'],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, GLUON_ATAC_OFFLINE='1'))
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith('error:')] == [
        "error: %s is not an official CIFAR python batch: a dtype 'V8', not uint8"
        % (data_dir / FOLDER / 'data_batch_1')]
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 3 << 20
