"""The trained-model layer: flags, else the model card, else the registered defaults."""
import argparse

import mxnet as mx
import pytest

from gluon_atac import get_model
from gluon_atac.errors import UsageError
from gluon_atac.trained import add_model_flags, resolve, resolve_preprocessing
from gluon_atac.utils.model_card import write_model_card
from gluon_atac.data.preprocessing import preprocessing_for


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_model_flags(parser, params_required=False)
    return parser.parse_args(list(argv))


def _saved_run(folder, classes=7, **options):
    """A run folder: parameters of a CIFAR ResNet-8 and its card (mnist5k digits)."""
    options = dict(dict(act_type='ChaATAC', r=4, use_relu=False, use_global=False,
                        act_layers=2, attention=None), **options)
    net = get_model('cifar_resnet8_v2', classes=classes, **options)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    params = str(folder / 'best.params')
    net.save_parameters(params)
    write_model_card(str(folder), 'cifar_resnet8_v2', options, classes, 'mnist5k',
                     preprocessing_for('mnist5k'))
    return params


def test_registered_defaults_fill_in_without_card_or_flags():
    model = resolve(_args('resnet50_v1b'))
    assert (model.name, model.classes, model.dataset, model.input_size) == \
        ('resnet50_v1b', 1000, 'imagenet', 224)
    assert model.options == dict(act_type='ChaATAC', r=2, use_relu=True, use_global=False,
                                 act_layers=2, attention=None)
    assert model.preprocessing == preprocessing_for('imagenet', 224, 0.875)
    assert model.model_kwargs()['input_size'] == 224
    cifar = resolve(_args('CIFAR_ResNet20_v2'))
    assert (cifar.name, cifar.classes, cifar.dataset, cifar.options['act_layers']) == \
        ('cifar_resnet20_v2', 10, 'cifar10', 4)
    # CIFAR hosts have a fixed input; only hosts that take input_size get it.
    assert 'input_size' not in cifar.model_kwargs()


def test_the_card_fills_in_what_the_flags_leave_out(tmp_path):
    params = _saved_run(tmp_path)
    model = resolve(_args('--params', params))
    assert (model.name, model.classes, model.dataset) == ('cifar_resnet8_v2', 7, 'mnist5k')
    assert model.options['r'] == 4 and model.options['use_relu'] is False
    assert model.preprocessing == preprocessing_for('mnist5k')
    net = model.load(mx.cpu())
    assert net(mx.nd.zeros((2, 3, 32, 32))).shape == (2, 7)


def test_a_flag_wins_over_the_card_with_one_warning(tmp_path, capsys):
    params = _saved_run(tmp_path)
    model = resolve(_args('--params', params, '--r', '2', '--relu'))
    assert model.options['r'] == 2 and model.options['use_relu'] is True
    assert capsys.readouterr().err.splitlines() == [
        'warning: --r 2 overrides 4 from the model card',
        'warning: --relu/--no-relu True overrides False from the model card']


def test_without_a_card_the_classes_come_from_the_saved_classifier(tmp_path):
    params = _saved_run(tmp_path, classes=13)
    (tmp_path / 'model.json').unlink()
    model = resolve(_args('cifar_resnet8_v2', '--params', params, '--r', '4', '--no-relu',
                          '--act-layers', '2'))
    assert model.classes == 13 and model.dataset == 'cifar10' and model.card is None
    model.load(mx.cpu())


def test_no_model_name_anywhere_is_one_line(tmp_path):
    with pytest.raises(UsageError, match=r'^MODEL is required: no model card \(model.json\) '
                                         r'sits beside .*x.params$'):
        resolve(_args('--params', str(tmp_path / 'x.params')))


def test_preprocessing_is_never_guessed():
    with pytest.raises(UsageError, match=r'^no model card describes net-symbol.json: pass '
                                         r'--dataset \(imagenet\|cifar10\|cifar100\|mnist5k\)'):
        resolve_preprocessing(_args(), None, what='net-symbol.json')
    dataset, spec = resolve_preprocessing(_args('--dataset', 'mnist5k'))
    assert dataset == 'mnist5k' and spec == preprocessing_for('mnist5k')


def test_a_flag_the_dataset_ignores_is_refused():
    with pytest.raises(UsageError, match=r'^--crop-ratio applies to imagenet preprocessing '
                                         r'only; cifar10 images are resized'):
        resolve(_args('cifar_resnet20_v2', '--crop-ratio', '0.9'))
    model = resolve(_args('resnet18_v1b', '--crop-ratio', '0.5', '--input-size', '64'))
    assert model.preprocessing['resize_to'] == 128 and model.input_size == 64
