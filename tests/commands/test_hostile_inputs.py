"""Hostile or damaged files given to the real commands end in exactly one ``error:`` line
and exit 2, never a traceback (issue 18, item 10): checkpoints, parameter files, model
cards, ONNX files and a run's metrics."""
import json
import pickle
import zipfile

import mxnet as mx
import pytest
from mxnet import gluon

from gluon_atac import get_model
from gluon_atac.commands import classify, evaluate
from gluon_atac.data.preprocessing import preprocessing_for
from gluon_atac.training import cifar as train_cifar
from gluon_atac.training.engine.checkpoint import save_checkpoint
from gluon_atac.utils.model_card import card_to_metadata, make_card
from support import write_cifar

# What train_cifar.py --blocks 1 --act-type relu builds on CIFAR-10.
MODEL, OPTIONS = 'cifar_resnet8_v2', dict(act_type='relu')
GOOD_STATE = {'epoch': 1, 'lr_decay_count': 0, 'best_val_acc': 0.25, 'best_epoch': 1,
              'best_file': None, 'args': {}}


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Tiny CIFAR-10, a real checkpoint of the trained network and its parameters."""
    root = tmp_path_factory.mktemp('hostile')
    write_cifar(str(root / 'data'), 'cifar10', 'bin', n_train=16, n_test=8)
    net = get_model(MODEL, classes=10, **OPTIONS)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    trainer = gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.1})
    save_checkpoint(str(root / 'good.ckpt'), net, trainer, GOOD_STATE)
    net.save_parameters(str(root / 'good.params'))
    return root


def _members(path):
    with zipfile.ZipFile(str(path)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(str(path), 'w', compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _checkpoint_with(files, tmp_path, edit=None, text=None, compression=zipfile.ZIP_STORED):
    """A copy of the good checkpoint whose state.json is edited (or replaced by ``text``)."""
    members = _members(files / 'good.ckpt')
    if text is None:
        header = json.loads(members['state.json'])
        edit(header)
        text = json.dumps(header)
    members['state.json'] = text
    path = tmp_path / 'checkpoint.ckpt'
    _rewrite(path, members, compression)
    return path


def _set_state(**fields):
    def edit(header):
        header['state'].update(fields)
    return edit


def _drop_state(*keys):
    def edit(header):
        for key in keys:
            del header['state'][key]
    return edit


def _unsupported_method(files, tmp_path):
    # Method 99 (AES), which zipfile cannot read: written stored, then renamed.
    path = _checkpoint_with(files, tmp_path, _set_state())
    blob = bytearray(path.read_bytes())
    for signature, offset in ((b'PK\x03\x04', 8), (b'PK\x01\x02', 10)):
        start = blob.find(signature)
        blob[start + offset:start + offset + 2] = (99).to_bytes(2, 'little')
    path.write_bytes(bytes(blob))
    return path


def _deep_state(files, tmp_path):
    depth = 200000
    return _checkpoint_with(files, tmp_path, text='{"format": "gluon_atac.checkpoint/2", '
                            '"trainer": null, "state": %s%s}' % ('[' * depth, ']' * depth))


def _resume(files, tmp_path, path):
    return train_cifar.main, ['--data-dir', str(files / 'data'), '--resume-from', str(path),
                              '--save-dir', str(tmp_path / 'run'), '--num-epochs', '2',
                              '--blocks', '1', '--act-type', 'relu', '--no-progress']


def _damaged_metrics(files, tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'metrics.jsonl').write_text('{"epoch": 1, "val_acc": 0.25}\n{"epoch": 2, "va\n')
    return _resume(files, tmp_path, files / 'good.ckpt')


def _evaluate(files, tmp_path, params, card=None):
    if card is not None:
        (tmp_path / 'model.json').write_text(json.dumps(card))
    return evaluate.main, [MODEL, '--params', str(params), '--dataset', 'cifar10', '--data',
                           str(files / 'data'), '--act-type', 'relu', '-j', '0']


def _params(files, tmp_path, blob):
    path = tmp_path / 'weights.params'
    path.write_bytes(blob)
    return _evaluate(files, tmp_path, path)


def _card(**changes):
    card = make_card(MODEL, OPTIONS, 10, 'cifar10', preprocessing_for('cifar10'))
    preprocessing = changes.pop('preprocessing', {})
    card['preprocessing'].update(preprocessing)
    card.update(changes)
    return card


def _card_beside(files, tmp_path, card):
    params = tmp_path / 'best.params'
    params.write_bytes((files / 'good.params').read_bytes())
    return _evaluate(files, tmp_path, params, card)


def _onnx_model(metadata=None, external=None):
    """A one-node ONNX model (y = x + w), with ``metadata`` and ``w`` as external data
    at ``external`` if given."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor('w', TensorProto.FLOAT, [1], [1.0])
    if external is not None:
        weight.ClearField('float_data')
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (('location', external), ('offset', '0'), ('length', '4')):
            weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node('Add', ['data', 'w'], ['y'])], 'g',
        [helper.make_tensor_value_info('data', TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3, 32, 32])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    helper.set_model_props(model, metadata or {})
    return model.SerializeToString()


def _classify(files, tmp_path, blob):
    path = tmp_path / 'model.onnx'
    path.write_bytes(blob)
    return classify.main, [str(path), str(tmp_path / 'cat.png')]


def _onnx_card(files, tmp_path, **changes):
    return _classify(files, tmp_path, _onnx_model(card_to_metadata(_card(**changes))))


# (id, how to build (command, argv) in tmp_path, how the error line ends: the file, named
# by its path in tmp_path, and the reason)
CASES = [
    ('state-lacks-keys', lambda f, t: _resume(f, t, _checkpoint_with(
        f, t, _drop_state('lr_decay_count', 'best_epoch'))),
     'lacks the run state field(s) lr_decay_count, best_epoch'),
    ('epoch-string', lambda f, t: _resume(f, t, _checkpoint_with(f, t, _set_state(epoch='2'))),
     'is not usable: its epoch is "2", not a whole number in 0..1000000'),
    ('epoch-negative', lambda f, t: _resume(f, t, _checkpoint_with(f, t, _set_state(epoch=-5))),
     'is not usable: its epoch is -5, not a whole number in 0..1000000'),
    ('epoch-1e22', lambda f, t: _resume(f, t, _checkpoint_with(f, t, _set_state(epoch=1e22))),
     'is not usable: its epoch is 1e+22, not a whole number in 0..1000000'),
    ('best-nan', lambda f, t: _resume(f, t, _checkpoint_with(
        f, t, text=_members(f / 'good.ckpt')['state.json'].replace(b'0.25', b'NaN'))),
     'is not usable: its state.json holds NaN, which no field takes'),
    ('best-epoch-after-epoch', lambda f, t: _resume(f, t, _checkpoint_with(
        f, t, _set_state(best_epoch=7))), 'its best_epoch 7 is after its epoch 1'),
    ('state-nested-200k-deep', lambda f, t: _resume(f, t, _deep_state(f, t)),
     'is not usable: its state.json nests too deep'),
    ('trainer-layout-of-missing-arrays', lambda f, t: _resume(f, t, _checkpoint_with(
        f, t, lambda h: h['trainer']['layout'].update({'output.weight': 'nowhere'}))),
     'is not usable: its trainer layout of output.weight is malformed or names missing '
     'arrays'),
    ('deflated-member', lambda f, t: _resume(f, t, _checkpoint_with(
        f, t, _set_state(), compression=zipfile.ZIP_DEFLATED)),
     'checkpoint.ckpt is not usable: member state.json is compressed (method 8); '
     'gluon_atac checkpoints store members uncompressed'),
    ('unsupported-compression', lambda f, t: _resume(f, t, _unsupported_method(f, t)),
     'checkpoint.ckpt is not usable: member state.json is compressed (method 99); '
     'gluon_atac checkpoints store members uncompressed'),
    ('damaged-metrics-line', _damaged_metrics,
     'metrics.jsonl line 2 is damaged (not a JSON record with an epoch number): repair or '
     'remove it'),
    ('truncated-params', lambda f, t: _params(f, t, (f / 'good.params').read_bytes()[:5000]),
     'weights.params: MXNetError: Check failed: fi->Read(data): Invalid NDArray file format'),
    ('pickle-as-params', lambda f, t: _params(f, t, pickle.dumps({'output.weight': 1})),
     'weights.params: MXNetError: Check failed: header == kMXAPINDArrayListMagic: Invalid '
     'NDArray file format'),
    ('card-classes-string', lambda f, t: _card_beside(f, t, _card(classes='10')),
     'model.json: classes is "10", not a whole number in 1..100000'),
    ('card-unknown-model', lambda f, t: _card_beside(f, t, _card(model='os.system')),
     'model.json: model is "os.system", not a registered model name'),
    ('card-option-type', lambda f, t: _card_beside(f, t, _card(options={'r': 'two'})),
     'model.json: option r is "two", not a whole number in 1..4096'),
    ('card-resize-26000', lambda f, t: _card_beside(f, t, _card(
        preprocessing={'resize_to': 26000})),
     'model.json: preprocessing resize_to is 26000, not a whole number in 1..4096'),
    ('card-mean-nan', lambda f, t: _card_beside(f, t, _card(
        preprocessing={'mean': [0.5, float('nan'), 0.5]})),
     'model.json: preprocessing mean is [0.5, NaN, 0.5], not a list of 3 finite numbers'),
    ('onnx-not-protobuf', lambda f, t: _classify(f, t, b'\xff' * 64),
     'model.onnx is not an ONNX model: it does not parse as protobuf'),
    ('onnx-protobuf-not-onnx', lambda f, t: _classify(f, t, b'\x08\x01'),
     'model.onnx is not an ONNX model: it holds no graph, opset or IR version'),
    ('onnx-external-parent', lambda f, t: _classify(f, t, _onnx_model(
        external='../../../../etc/passwd')),
     "model.onnx refers to external data (tensor w in '../../../../etc/passwd'), which is "
     'refused: a gluon_atac ONNX file holds its weights itself'),
    ('onnx-external-absolute', lambda f, t: _classify(f, t, _onnx_model(
        external='/etc/passwd')),
     "model.onnx refers to external data (tensor w in '/etc/passwd'), which is refused: a "
     'gluon_atac ONNX file holds its weights itself'),
    ('onnx-external-beside', lambda f, t: _classify(f, t, _onnx_model(external='w.bin')),
     "model.onnx refers to external data (tensor w in 'w.bin'), which is refused: a "
     'gluon_atac ONNX file holds its weights itself'),
    ('onnx-card-resize-26000', lambda f, t: _onnx_card(f, t, preprocessing={
        'resize_to': 26000}),
     'model.onnx: preprocessing resize_to is 26000, not a whole number in 1..4096'),
    ('onnx-card-classes-zero', lambda f, t: _onnx_card(f, t, classes=0),
     'model.onnx: classes is 0, not a whole number in 1..100000'),
]


@pytest.mark.parametrize('make,expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_error_line_and_exit_2(files, tmp_path, capsys, monkeypatch,
                                                    make, expected):
    monkeypatch.setenv('GLUON_ATAC_OFFLINE', '1')
    command, argv = make(files, tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        command(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert 'Traceback' not in err
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].endswith(expected), err
    assert str(tmp_path) in errors[0]
