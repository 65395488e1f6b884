"""Activation and attentional-activation units."""
from .atac import ChaATAC, check_reduction, set_fused, gluon_graph
from .activations import XUnit
from .factory import ACTIVATIONS, get_activation, activation_names, canonical_name
from .attention import ATTENTION, SqueezeExcite, GatherExcite, get_attention, attention_names
from .self_attention import SPATIAL_OPS, AugmentedConv2D, LocalSelfAttention2D, get_spatial_op
from .norms import group_norm, get_norm, NORMS
