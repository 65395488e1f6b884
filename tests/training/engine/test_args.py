"""Flags shared by both recipes."""
import pytest

from gluon_atac.errors import UsageError
from gluon_atac.training.engine.args import TrainingParser, add_shared_flags, decay_epochs


def test_decay_epochs_are_sorted_or_periodic():
    parser = TrainingParser()
    add_shared_flags(parser)
    assert decay_epochs(parser.parse_args(['--lr-decay-epoch', '60,40'])) == [40, 60]
    assert decay_epochs(parser.parse_args(['--lr-decay-period', '2', '--num-epochs',
                                           '7'])) == [2, 4, 6]
    with pytest.raises(UsageError, match='comma-separated integers'):
        decay_epochs(parser.parse_args(['--lr-decay-epoch', '4,x']))
