"""gluon_atac: Attention as Activation (ATAC) units and networks for MXNet Gluon."""
__version__ = '0.1.0'

import sys
import types

from .nn import (ChaATAC, XUnit, get_activation, activation_names, get_attention,
                 attention_names)
from . import ops
from .model_zoo import get_model, get_model_list, get_model_config
from .utils.counting import count_params, count_flops
from .errors import ParamsMismatchError
from .model_zoo import load_parameters, check_parameters
from .utils.export import export


class _Package(types.ModuleType):
    """The package module, whose ``export`` stays the function.

    Importing the command package ``gluon_atac.export`` (``python -m gluon_atac.export``)
    makes the import system bind it to this module's ``export`` attribute, which would hide
    :func:`export` from every later caller in the process.
    """

    def __setattr__(self, name, value):
        if name == 'export' and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
