"""python -m gluon_atac.evaluate: ImageNet record/folder and CIFAR, the published name."""
import json
import os
import re

import mxnet as mx
import pytest

import gluon_atac as ga
from gluon_atac.data import eval_loader, get_dataset
from gluon_atac.data.imagenet import write_synthetic_imagenet
from gluon_atac.commands.evaluate import main
from gluon_atac.training.cifar import build_parser
from gluon_atac.training.engine.evaluation import evaluate
from support import write_cifar

PUBLISHED = '0.2141-imagenet-ResNet50_v1b_ChaATAC-155-best.params'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return write_synthetic_imagenet(str(tmp_path_factory.mktemp('tinyin')), classes=4,
                                    train_per_class=1, val_per_class=5, size=40)


def _saved(net, path, shape):
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros(shape))
    net.save_parameters(str(path))
    return str(path)


def test_record_and_folder_give_a_table_and_json(tiny, tmp_path, capsys):
    params = _saved(ga.get_model('resnet18_v1b', classes=4), tmp_path / 'r18.params',
                    (1, 3, 32, 32))
    flags = ['resnet18_v1b', '--params', params, '--classes', '4', '--input-size', '32',
             '--batch-size', '8', '-j', '1']
    by_rec = main(flags + ['--data', os.path.join(tiny, 'val.rec'), '--json',
                           str(tmp_path / 'rec.json')])
    by_folder = main(flags + ['--data', os.path.join(tiny, 'val')])
    out = capsys.readouterr().out
    assert 'top-1 err' in out and 'r18.params' in out
    assert by_rec['images'] == by_folder['images'] == 20
    assert abs(by_rec['top1_err'] - by_folder['top1_err']) <= 0.1
    assert by_rec['top5_err'] == 0.0  # 4 classes: the top 5 hold all of them
    assert json.loads((tmp_path / 'rec.json').read_text())['top1_err'] == by_rec['top1_err']
    assert (tmp_path / 'r18.eval.json').exists()


def test_published_checkpoint_name_loads_with_the_original_flags(tiny, tmp_path, capsys,
                                                                 open_atac_dir):
    # A file with the original's parameter names under its published name.
    path = _saved(ga.get_model('resnet50_v1b', act_type='ChaATAC', r=2, act_layers=2),
                  tmp_path / PUBLISHED, (1, 3, 32, 32))
    with open(os.path.join(open_atac_dir, 'r50_v1b_chaatac_r2_al2.json')) as handle:
        original = json.load(handle)['names']
    assert {n: list(a.shape) for n, a in mx.nd.load(path).items()} == original
    flags = ['resnet50_v1b', '--params', path, '--act-type', 'ChaATAC', '--r', '2',
             '--data', os.path.join(tiny, 'val.rec'), '--input-size', '32', '-j', '1']
    result = main(flags + ['--act-layers', '2'])
    assert result['images'] == 20
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(flags + ['--act-layers', '1'])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'does not fit' in err[0] and 'unexpected' in err[0]


@pytest.mark.parametrize('dataset, classes, flags', [('cifar10', 10, []),
                                                     ('cifar100', 20, ['--coarse-labels'])])
def test_cifar_errors_match_the_cifar_evaluation(tmp_path, dataset, classes, flags):
    write_cifar(str(tmp_path / 'cifar'), dataset, n_train=8, n_test=24)
    net = ga.get_model('cifar_resnet8_v2', classes=classes)
    params = _saved(net, tmp_path / 'r8.params', (1, 3, 32, 32))
    result = main(['cifar_resnet8_v2', '--params', params, '--dataset', dataset, '--data',
                   str(tmp_path / 'cifar'), '-j', '0'] + flags)
    data = get_dataset(dataset, str(tmp_path / 'cifar'), coarse_labels=bool(flags))
    accuracy = evaluate(net, eval_loader(data, 8), [mx.cpu()])['top1_acc']
    assert result['images'] == 24
    assert result['top1_err'] == pytest.approx(1 - accuracy)


def test_every_dataset_of_the_trainers_is_accepted(capsys):
    # ImageNet's two layouts, class folders and record files, are both --data imagenet.
    def choices(help_text):
        return set(re.search(r'--dataset \{([^}]*)\}', help_text).group(1).split(','))
    with pytest.raises(SystemExit) as stop:
        main(['--help'])
    assert stop.value.code == 0
    assert choices(capsys.readouterr().out) == choices(
        build_parser().format_help()) | {'imagenet'}


def test_mnist5k_is_evaluated_like_the_trainers_see_it(tmp_path):
    net = ga.get_model('cifar_resnet8_v2', classes=10)
    params = _saved(net, tmp_path / 'r8.params', (1, 3, 32, 32))
    result = main(['cifar_resnet8_v2', '--params', params, '--dataset', 'mnist5k', '-j', '0',
                   '--batch-size', '250'])
    accuracy = evaluate(net, eval_loader(get_dataset('mnist5k'), 250), [mx.cpu()])['top1_acc']
    assert result['images'] == 1000 and result['data'] == 'mnist5k'
    assert result['top1_err'] == pytest.approx(1 - accuracy, abs=1e-6)


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    params = _saved(ga.get_model('resnet18_v1b', classes=4), tmp_path / 'r.params',
                    (1, 3, 32, 32))
    with pytest.raises(SystemExit) as stop:
        main(['resnet18_v1b', '--params', params, '--classes', '4', '--data',
              str(tmp_path / 'absent.rec')])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith('error: record file not found')


def test_float16_params_written_cast_then_saved_evaluate(tmp_path):
    # The published ImageNet command's order: net.cast('float16'), then save_parameters.
    write_cifar(str(tmp_path / 'cifar'), 'cifar10', n_train=8, n_test=24)
    net = ga.get_model('cifar_resnet8_v2', classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.cast('float16')
    half = str(tmp_path / 'half.params')
    net.save_parameters(half)
    result = main(['cifar_resnet8_v2', '--params', half, '--dataset', 'cifar10', '--data',
                   str(tmp_path / 'cifar'), '-j', '0'])
    reference = ga.load_parameters(ga.get_model('cifar_resnet8_v2', classes=10), half)
    data = get_dataset('cifar10', str(tmp_path / 'cifar'))
    accuracy = evaluate(reference, eval_loader(data, 8), [mx.cpu()])['top1_acc']
    assert result['images'] == 24
    assert result['top1_err'] == pytest.approx(1 - accuracy)
