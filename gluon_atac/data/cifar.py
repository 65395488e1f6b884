"""CIFAR-10/100 from the official files, read offline without checksums, and a writer.

Both official layouts are read: the binary version (``cifar-10-batches-bin/*.bin``,
``cifar-100-binary/{train,test}.bin``) and the python version (``cifar-10-batches-py``,
``cifar-100-python`` pickles), inside ``data_dir`` or directly in it. Any number of
records loads, so subsets and re-packed copies work; the sha1 sums Gluon insists on are
not checked.
"""
import os
import pickle
import socket
import tarfile

import numpy as np

from ..errors import DataError
from .batch_pickle import PIXELS, BatchFormatError, read_batch

__all__ = ['DataError', 'find_cifar_files', 'load_cifar', 'write_cifar_files']

_TRAIN_BATCHES = ['data_batch_%d' % i for i in range(1, 6)]
# dataset -> layout -> (sub-folder, train file names, test file name)
_LAYOUTS = {
    'cifar10': {
        'bin': ('cifar-10-batches-bin', [n + '.bin' for n in _TRAIN_BATCHES], 'test_batch.bin'),
        'py': ('cifar-10-batches-py', _TRAIN_BATCHES, 'test_batch'),
    },
    'cifar100': {
        'bin': ('cifar-100-binary', ['train.bin'], 'test.bin'),
        'py': ('cifar-100-python', ['train'], 'test'),
    },
}
# The official archives; one found in data_dir is unpacked instead of downloading.
_ARCHIVES = {'cifar10': ('cifar-10-binary.tar.gz', 'cifar-10-python.tar.gz'),
             'cifar100': ('cifar-100-binary.tar.gz', 'cifar-100-python.tar.gz')}
# Where Gluon's download is attempted from; probed before trying it.
_DOWNLOAD_HOST = ('apache-mxnet.s3-accelerate.dualstack.amazonaws.com', 443)


def _check_dataset(dataset):
    if dataset not in _LAYOUTS:
        raise DataError('unknown CIFAR dataset %r; use cifar10 or cifar100' % (dataset,))


def find_cifar_files(data_dir, dataset):
    """Locate the train and test files of ``dataset`` under ``data_dir``.

    Layouts are tried in the order binary folder, binary files in ``data_dir``, python
    folder, python files in ``data_dir``; the first with a test file and at least one
    training file wins.

    Parameters
    ----------
    data_dir : str
    dataset : {'cifar10', 'cifar100'}

    Returns
    -------
    (str, list of str, str) or None
        Layout (``'bin'`` or ``'py'``), training files found, test file; ``None`` if no
        layout is complete enough.
    """
    _check_dataset(dataset)
    for layout in ('bin', 'py'):
        folder, train_names, test_name = _LAYOUTS[dataset][layout]
        for base in (os.path.join(data_dir, folder), data_dir):
            train = [os.path.join(base, n) for n in train_names
                     if os.path.isfile(os.path.join(base, n))]
            test = os.path.join(base, test_name)
            if train and os.path.isfile(test):
                return layout, train, test
    return None


def _expected_files(data_dir, dataset):
    names = []
    for layout in ('bin', 'py'):
        folder, train_names, test_name = _LAYOUTS[dataset][layout]
        shown = train_names if len(train_names) == 1 else [train_names[0] + '..5']
        names.append('%s/{%s}' % (folder, ','.join(shown + [test_name])))
    return '%s (or those files directly) in %s' % (' or '.join(names), data_dir)


def _read_binary(path, dataset):
    label_bytes = 1 if dataset == 'cifar10' else 2
    record = label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % record:
        raise DataError('%s is truncated or malformed: %d bytes is not a multiple of the '
                        '%d-byte %s record' % (path, raw.size, record, dataset))
    raw = raw.reshape(-1, record)
    images = raw[:, label_bytes:]
    if dataset == 'cifar10':
        return images, {'labels': raw[:, 0]}
    return images, {'coarse_labels': raw[:, 0], 'fine_labels': raw[:, 1]}


def _read_pickle(path, dataset):
    try:
        images, labels = read_batch(path, dataset)
    except BatchFormatError as err:
        raise DataError('%s is not an official CIFAR python batch: %s'
                        % (path, err)) from None
    except (ValueError, EOFError) as err:  # pickletools' report of a damaged opcode
        raise DataError('%s is truncated or malformed: %s' % (path, err)) from None
    return images, labels


def _read_files(paths, layout, dataset, label_key, classes):
    reader = _read_binary if layout == 'bin' else _read_pickle
    images, labels = [], []
    for path in paths:
        data, label_sets = reader(path, dataset)
        label = label_sets[label_key].astype(np.int32)
        if label.size and (label.min() < 0 or label.max() >= classes):
            raise DataError('%s is malformed: %s outside 0..%d'
                            % (path, label_key, classes - 1))
        images.append(data)
        labels.append(label)
    # Stored as channel planes (R, G, B) of 32x32; augmentation wants HWC.
    images = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.concatenate(labels)


def _extract_safely(archive, directory):
    """Extract regular files and folders only, never outside ``directory``.

    An archive someone hands you may hold links or ``../`` paths. Python 3.8.17, 3.9.17,
    3.10.12 and 3.11.4 added ``filter='data'`` for this; earlier patch releases of the
    supported versions get the same refusal here.
    """
    if hasattr(tarfile, 'data_filter'):
        archive.extractall(directory, filter='data')
        return
    root = os.path.realpath(directory)
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if not (member.isfile() or member.isdir()) or \
                os.path.commonpath([root, target]) != root:
            raise tarfile.TarError('refusing to extract %s: not a plain file inside %s'
                                   % (member.name, directory))
    archive.extractall(directory)


def _unpack_archive(data_dir, dataset, logger):
    for name in _ARCHIVES[dataset]:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            if logger:
                logger.info('unpacking %s', path)
            try:
                with tarfile.open(path) as archive:
                    _extract_safely(archive, data_dir)
            except (tarfile.TarError, OSError, EOFError) as err:
                raise DataError('%s is truncated or malformed: %s' % (path, err)) from None
            return True
    return False


def _network_available(timeout=3.0):
    if os.environ.get('GLUON_ATAC_OFFLINE'):
        return False
    try:
        socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _download(data_dir, dataset):
    from mxnet.gluon.data import vision
    cls = vision.CIFAR10 if dataset == 'cifar10' else vision.CIFAR100
    try:
        # Gluon fetches the binary archive and unpacks it into data_dir.
        cls(root=data_dir, train=True)
        cls(root=data_dir, train=False)
    except Exception as err:  # network failures come in many types
        raise DataError('downloading %s into %s failed: %s' % (dataset, data_dir, err)) \
            from None


def load_cifar(data_dir, dataset, coarse_labels=False, download=True, logger=None):
    """Read CIFAR-10 or CIFAR-100 from ``data_dir``.

    Parameters
    ----------
    data_dir : str
    dataset : {'cifar10', 'cifar100'}
    coarse_labels : bool, default False
        CIFAR-100 only: the 20 superclass labels instead of the 100 fine ones.
    download : bool, default True
        When no files are found (nor an official ``.tar.gz`` archive in ``data_dir``,
        which is unpacked) and the network answers, fetch them through Gluon.
    logger : logging.Logger, optional
        Told which files were read and about missing training batches.

    Returns
    -------
    ((ndarray, ndarray), (ndarray, ndarray))
        Train and test ``(images, labels)``: uint8 ``N x 32 x 32 x 3`` and int32 ``N``.

    Raises
    ------
    DataError
        No files (and no download possible), or a truncated or malformed file.
    """
    _check_dataset(dataset)
    if coarse_labels and dataset != 'cifar100':
        raise DataError('coarse labels exist only for cifar100, not %s' % dataset)
    found = find_cifar_files(data_dir, dataset)
    if found is None and _unpack_archive(data_dir, dataset, logger):
        found = find_cifar_files(data_dir, dataset)
    if found is None and download and _network_available():
        if logger:
            logger.info('no %s files in %s: downloading through Gluon', dataset, data_dir)
        _download(data_dir, dataset)
        found = find_cifar_files(data_dir, dataset)
    if found is None:
        raise DataError('no %s files found: looked for %s'
                        % (dataset, _expected_files(data_dir, dataset)))
    layout, train_files, test_file = found
    expected = len(_LAYOUTS[dataset][layout][1])
    if logger:
        logger.info('reading %s (%s layout) from %s', dataset, layout,
                    os.path.dirname(test_file))
        if len(train_files) < expected:
            logger.warning('only %d of %d training batches present: %s', len(train_files),
                           expected, ', '.join(os.path.basename(f) for f in train_files))
    if dataset == 'cifar10':
        key, classes = 'labels', 10
    elif coarse_labels:
        key, classes = 'coarse_labels', 20
    else:
        key, classes = 'fine_labels', 100
    train = _read_files(train_files, layout, dataset, key, classes)
    test = _read_files([test_file], layout, dataset, key, classes)
    if not len(train[0]) or not len(test[0]):
        raise DataError('%s in %s holds no %s images'
                        % (dataset, data_dir, 'training' if not len(train[0]) else 'test'))
    return train, test


def _write_binary(path, images, labels):
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    columns = [np.asarray(v, dtype=np.uint8).reshape(-1, 1) for v in labels.values()]
    np.concatenate(columns + [planes], axis=1).tofile(path)


def _write_pickle(path, images, labels):
    batch = {b'data': images.transpose(0, 3, 1, 2).reshape(len(images), -1),
             b'filenames': [b'img_%05d.png' % i for i in range(len(images))]}
    batch.update({k.encode(): [int(x) for x in v] for k, v in labels.items()})
    with open(path, 'wb') as handle:
        pickle.dump(batch, handle, protocol=2)


def write_cifar_files(directory, dataset, train, test, layout='bin', flat=False):
    """Write images and labels as the official files of ``dataset`` in ``layout``.

    Parameters
    ----------
    directory : str
        Receives the official sub-folder (or, with ``flat``, the files themselves).
    dataset : {'cifar10', 'cifar100'}
    train, test : tuple of ndarray
        ``(images, labels)`` or, for CIFAR-100, ``(images, fine labels, coarse labels)``:
        uint8 ``N x 32 x 32 x 3`` images and ``N`` labels each. Coarse labels default to
        ``fine // 5``, the grouping of the synthetic files. Training records are spread
        over the layout's batch files (5 for CIFAR-10).
    layout : {'bin', 'py'}, default 'bin'
        Binary ``.bin`` records or python pickles.
    flat : bool, default False
        Put the files directly in ``directory``.

    Returns
    -------
    str
        ``directory``.
    """
    _check_dataset(dataset)
    if layout not in ('bin', 'py'):
        raise ValueError("layout must be 'bin' or 'py', got %r" % (layout,))
    folder, train_names, test_name = _LAYOUTS[dataset][layout]
    out = directory if flat else os.path.join(directory, folder)
    os.makedirs(out, exist_ok=True)
    writer = _write_binary if layout == 'bin' else _write_pickle
    for split, names in ((train, train_names), (test, [test_name])):
        images, labels = split[:2]
        if dataset == 'cifar10':
            sets = {'labels': labels}
        else:
            coarse = split[2] if len(split) > 2 else labels // 5
            sets = {'coarse_labels': coarse, 'fine_labels': labels}
        for name, index in zip(names, np.array_split(np.arange(len(images)), len(names))):
            path = os.path.join(out, name)
            # Written aside and renamed, so an interrupted write leaves no short file.
            writer(path + '.tmp', images[index], {k: v[index] for k, v in sets.items()})
            os.replace(path + '.tmp', path)
    return directory

