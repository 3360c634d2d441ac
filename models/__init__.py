"""ViT and Tokens-to-Token ViT over one backbone. `import models` registers every name with timm."""
from .backbone import VisionTransformer
from .checkpoint import load_checkpoint, save_checkpoint
from .cnn import CNN_BASELINES
from .errors import (
    CheckpointError,
    ConfigError,
    InputShapeError,
    UnknownModelError,
    VitbenchError,
)
from .layers import count_params
from .registry import (
    DEFAULT_IMG_SIZE,
    FAMILIES,
    FAMILY_TABLE,
    MODEL_CONFIGS,
    PUBLISHED_EQUIVALENTS,
    Family,
    create_model,
    default_img_size,
    family_of,
    family_of_kind,
    family_of_model,
    list_models,
    resolve_config,
)
from .tokenizers import PatchTokenizer, T2TTokenizer, Tokenizer

__all__ = [
    "VisionTransformer", "PatchTokenizer", "T2TTokenizer", "create_model", "list_models", "resolve_config",
    "load_checkpoint", "save_checkpoint", "MODEL_CONFIGS", "PUBLISHED_EQUIVALENTS", "FAMILIES", "family_of",
    "family_of_model", "family_of_kind",
    "count_params", "Family", "FAMILY_TABLE", "Tokenizer", "DEFAULT_IMG_SIZE", "default_img_size", "CNN_BASELINES",
    "VitbenchError", "ConfigError", "InputShapeError", "UnknownModelError", "CheckpointError",
]
