"""What a cost measurement reads of the model it is about (built by `bench.factory.create`, ours or any timm
model): the input size it is measured at, the dropout a timed training step does, and whether it runs at all.
"""
import torch

from models.errors import ConfigError


def input_size(model):
    """(C, H, W) the model is measured at."""
    return tuple(model.pretrained_cfg["input_size"])


def dropout_rates(model):
    """{top-level part: its largest drop probability} over every dropout and drop-path of `model`
    (a drop-path rate rises with depth to the configured one): what a timed training step does
    besides its config, e.g. the 0.1 of Performer T2T blocks (`t2t_drop`). Empty when nothing drops."""
    rates = {}
    for name, module in model.named_modules():
        p = module.p if isinstance(module, torch.nn.Dropout) else getattr(module, "drop_prob", None)
        if p:
            part = name.split(".")[0]
            rates[part] = round(max(p, rates.get(part, 0.0)), 6)
    return rates


def check_runs(model):
    """A ConfigError, not a traceback, when a timm model cannot take its input size: one zero image
    through it (CPU, no grad), its train/eval mode kept. Ours check their sizes when built."""
    channels, height, width = input_size(model)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, height, width, device=next(model.parameters()).device))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"timm model {model.model_name!r} cannot run on {height}x{width} images ({reason}); "
                          "pick another image size") from None
    finally:
        model.train(was_training)
