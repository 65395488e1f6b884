"""The one registry helper behind activations, attention, norms and models."""
import pytest
from mxnet.gluon import nn

from gluon_atac import get_model_list
from gluon_atac.nn import ACTIVATIONS, ATTENTION, NORMS, get_norm, group_norm
from gluon_atac.registry import Registry, natural_key


def _units():
    reg = Registry('unit')
    reg.register('plain', lambda channels: ('plain', channels), options=())
    reg.register('wide', lambda channels, width=1: ('wide', channels, width),
                 options=('width',), aliases=('broad',))
    return reg


def test_names_are_case_insensitive_and_aliases_resolve():
    reg = _units()
    assert reg.canonical('WIDE') == reg.canonical('Broad') == 'wide'
    assert reg.names() == ['broad', 'plain', 'wide']
    assert reg.names(aliases=False) == ['plain', 'wide']


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"^unknown unit 'narrow'; valid names: broad, "
                                         r"plain, wide$"):
        _units().get('narrow')


def test_build_passes_each_builder_only_the_options_it_takes():
    reg = _units()
    assert reg.build('plain', 8, width=3) == ('plain', 8)
    assert reg.build('broad', 8, width=3) == ('wide', 8, 3)
    with pytest.raises(TypeError, match='unknown unit option.*height; known: width'):
        reg.build('plain', 8, height=2)


def test_a_name_registers_once():
    reg = _units()
    with pytest.raises(ValueError, match="unit 'Plain' is registered twice"):
        reg.register('Plain', lambda channels: None)


def test_natural_order():
    names = ['resnet101_v1b', 'resnet18_v1b', 'cifar_resnet110_v2', 'cifar_resnet8_v2']
    assert sorted(names, key=natural_key) == ['cifar_resnet8_v2', 'cifar_resnet110_v2',
                                              'resnet18_v1b', 'resnet101_v1b']


def test_every_kind_shares_the_helper():
    for registry in (ACTIVATIONS, ATTENTION, NORMS):
        assert isinstance(registry, Registry)
    assert ATTENTION.canonical('Gather-Excite') == 'ge'
    assert get_norm('BatchNorm') is nn.BatchNorm and get_norm('gn') is group_norm
    assert get_norm(nn.InstanceNorm) is nn.InstanceNorm


def test_model_list_is_in_natural_order():
    names = get_model_list()
    assert names[:4] == ['cifar_resnet8_v2', 'cifar_resnet14_v2', 'cifar_resnet20_v2',
                         'cifar_resnet26_v2']
    assert names.index('resnet18_v1b') < names.index('resnet50_v1b') < \
        names.index('resnet101_v1b') < names.index('resnet152_v1b')
    assert names.index('resnet50_v1b') < names.index('resnet50_v1b_aa')
    assert len(names) == 18 + 5 * 3 + 2  # and AA-, FA-ResNet-50
