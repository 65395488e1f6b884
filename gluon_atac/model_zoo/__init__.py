"""Networks that host attentional activations."""
from .cifar_resnet import CIFARResNetV2, CIFARBlockV2, cifar_resnet_v2, stage_act_types
from .resnetv1b import BottleneckV1bAct, BasicBlockV1bAct, ActBlockFactory, resnet_v1b
from .config import ModelConfig, MODELS
from .model_zoo import get_model, get_model_list, get_model_config
from .params import load_parameters, check_parameters, classifier_width
