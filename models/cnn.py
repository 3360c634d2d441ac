"""CIFAR-style CNN baselines, built by timm and registered with it: a ResNet whose stem keeps 32 x 32.

timm's ResNet stem (7 x 7 stride 2 and a max-pool) shrinks a 32 px image to 8 x 8 before the first
stage; CIFAR ResNets keep the full resolution. Here timm's "deep" stem (three 3 x 3 convolutions,
ResNet-C) is built with its first convolution at stride 1 and the max-pool removed, so the stages
see 32, 16, 8 and 4 px. `resnet18_cifar` is ResNet-18's widths (64 ... 512) on that stem; the
`resnet_cifar_tiny` sibling (one block per stage, widths 16 ... 128) is the CPU study's CNN arm.
"""
import timm
from timm.models import register_model
from torch import nn

from .errors import ConfigError

CNN_BASELINES = {  # name -> timm ResNet settings
    "resnet18_cifar": dict(layers=(2, 2, 2, 2), channels=(64, 128, 256, 512)),
    "resnet_cifar_tiny": dict(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128)),
}
CIFAR_INPUT = (3, 32, 32)


def cifar_resnet(name, num_classes=10, **kwargs):
    """A timm ResNet with a full-resolution 3 x 3 stem (stride 1, no max-pool) and a CIFAR data config."""
    settings = {**CNN_BASELINES[name], **kwargs}
    stem_width = settings["channels"][0] // 2  # the deep stem ends at 2 x stem_width = the first stage's width
    model = timm.create_model("resnet18", stem_type="deep", stem_width=stem_width, num_classes=num_classes, **settings)
    model.conv1[0].stride = (1, 1)
    model.maxpool = nn.Identity()
    model.pretrained_cfg = {**model.pretrained_cfg, "architecture": name, "input_size": CIFAR_INPUT,
                            "pool_size": (4, 4), "first_conv": "conv1.0", "url": ""}
    return model


def register_with_timm(name, settings):
    """Register `name` as a timm entrypoint built by `cifar_resnet`; it has no pretrained weights."""

    def entrypoint(pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None, **kwargs):
        if pretrained:
            raise ConfigError(
                f"{name} has no downloadable weights; create it with pretrained=False and load a local file "
                "with models.load_checkpoint(model, path) or train it with `vitbench train`"
            )
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        return cifar_resnet(name, **kwargs).to(device=device, dtype=dtype)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"vitbench {name}: timm ResNet {settings} with a CIFAR stem"
    register_model(entrypoint)


for _name, _settings in CNN_BASELINES.items():
    register_with_timm(_name, _settings)
