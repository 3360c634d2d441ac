"""CIFAR-style CNN baselines, built by timm and registered with it: a ResNet whose stem keeps 32 x 32.

timm's ResNet stem (7 x 7 stride 2 and a max-pool) shrinks a 32 px image to 8 x 8 before the first
stage; CIFAR ResNets keep the full resolution. Here timm's "deep" stem (three 3 x 3 convolutions,
ResNet-C) is built with its first convolution at stride 1 and the max-pool removed, so the stages
see 32, 16, 8 and 4 px. `resnet18_cifar` is ResNet-18's widths (64 ... 512) on that stem; the
`resnet_cifar_tiny` sibling (one block per stage, widths 16 ... 128) is the CPU study's CNN arm.
"""
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import ResNet, build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock
from torch import nn

from .errors import ConfigError

CNN_BASELINES = {  # name -> timm ResNet settings
    "resnet18_cifar": dict(layers=(2, 2, 2, 2), channels=(64, 128, 256, 512)),
    "resnet_cifar_tiny": dict(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128)),
}
REDUCTIONS = (1, 1, 2, 4, 8)  # of the stem and the four stages: the stem keeps the size, layer2 on halve it

# Read by timm's register_model. The data fields are resnet18's (which these names took before they had their own
# cfg), so runs already trained are scored as they were; no weights are released.
default_cfgs = generate_default_cfgs({name: dict(
    input_size=(3, 32, 32), pool_size=(4, 4), crop_pct=0.95, interpolation="bicubic", mean=IMAGENET_DEFAULT_MEAN,
    std=IMAGENET_DEFAULT_STD, num_classes=10, first_conv="conv1.0", classifier="fc", license="apache-2.0",
) for name in CNN_BASELINES})


def cifar_resnet(layers, channels, num_classes=10, **kwargs):
    """A timm ResNet with a full-resolution 3 x 3 stem (stride 1, no max-pool) and feature reductions to match."""
    stem_width = channels[0] // 2  # the deep stem ends at 2 x stem_width = the first stage's width
    model = ResNet(BasicBlock, layers, channels=channels, stem_type="deep", stem_width=stem_width,
                   num_classes=num_classes, **kwargs)
    model.conv1[0].stride = (1, 1)
    model.maxpool = nn.Identity()
    model.feature_info = [{**info, "reduction": reduction} for info, reduction in zip(model.feature_info, REDUCTIONS)]
    return model


def register_with_timm(name, settings):
    """Register `name` as a timm entrypoint built by timm's builder over `cifar_resnet`; it has no released weights."""

    def entrypoint(pretrained=False, **kwargs):
        if pretrained:
            raise ConfigError(
                f"{name} has no downloadable weights; create it with pretrained=False and load a local file "
                "with models.load_checkpoint(model, path) or train it with `vitbench train`"
            )
        return build_model_with_cfg(cifar_resnet, name, pretrained, **{**settings, **kwargs})

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"vitbench {name}: timm ResNet {settings} with a CIFAR stem"
    register_model(entrypoint)


for _name, _settings in CNN_BASELINES.items():
    register_with_timm(_name, _settings)
