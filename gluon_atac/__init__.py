"""gluon_atac: Attention as Activation (ATAC) units and networks for MXNet Gluon."""
__version__ = '0.1.0'

from .nn import (ChaATAC, XUnit, get_activation, activation_names, get_attention,
                 attention_names)
from . import ops
from .model_zoo import get_model, get_model_list
from .utils.counting import count_params, count_flops
from .errors import ParamsMismatchError
from .model_zoo import load_parameters, check_parameters
from .export import export
