"""Model cards: written beside parameters, read back, carried in ONNX metadata."""
import json

import pytest

from gluon_atac.data.preprocessing import preprocessing_for
from gluon_atac.utils.model_card import (ModelCardError, card_from_metadata, card_path,
                                         card_to_metadata, find_model_card, read_model_card,
                                         write_model_card)


def test_a_card_round_trips_through_its_file_and_onnx_metadata(tmp_path):
    options = dict(act_type='ChaATAC', r=2, use_relu=False, use_global=False, act_layers=4,
                   attention=None, classes=100, input_size=32)
    path = write_model_card(str(tmp_path / 'run'), 'cifar_resnet20_v2', options, 100,
                            'cifar100', preprocessing_for('cifar100'))
    assert path == card_path(str(tmp_path / 'run' / 'best.params'))
    card = find_model_card(str(tmp_path / 'run' / '0.9000-cifar-atac-10-best.params'))
    assert card == read_model_card(path)
    assert card['options'] == dict(act_type='ChaATAC', r=2, use_relu=False,
                                   use_global=False, act_layers=4, attention=None)
    assert (card['classes'], card['dataset']) == (100, 'cifar100')
    assert card['preprocessing']['mean'] == [0.4914, 0.4822, 0.4465]
    metadata = card_to_metadata(card)
    assert all(isinstance(v, str) for v in metadata.values())
    assert json.loads(metadata['use_relu']) is False
    assert card_from_metadata(dict(metadata, description='"resize ..."')) == card
    assert card_from_metadata({'producer': 'x'}) is None


def test_cards_of_exports_and_missing_cards(tmp_path):
    assert card_path('/a/r50-symbol.json') == '/a/r50-model.json'
    assert find_model_card(str(tmp_path / 'best.params')) is None


def test_bad_cards_and_options_are_named(tmp_path):
    with pytest.raises(ModelCardError, match='norm_layer'):
        write_model_card(str(tmp_path), 'resnet50_v1b', dict(norm_layer=object), 1000,
                         'imagenet', preprocessing_for('imagenet'))
    (tmp_path / 'model.json').write_text('{"format": "gluon_atac.model_card/1"}')
    with pytest.raises(ModelCardError, match='lacks model, options'):
        find_model_card(str(tmp_path / 'best.params'))
    (tmp_path / 'model.json').write_text('not json')
    with pytest.raises(ModelCardError, match='is not JSON'):
        find_model_card(str(tmp_path / 'best.params'))
