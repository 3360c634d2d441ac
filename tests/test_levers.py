"""Speed levers taken in training change no result beyond float rounding (results/perf-tiny-arms-20261204)."""
import torch
from timm.optim import create_optimizer_v2

from bench import factory
from bench.accuracy import train
from tests.harness_helpers import tiny_config, tiny_synthetic


def steps(channels_last, count=3):
    """Losses of `count` AdamW steps of the CNN arm, and the first step's gradients, from one start and batch."""
    torch.manual_seed(0)
    model = factory.create("resnet_cifar_tiny", {}, 10, 32, 0.0)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)
    images, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    losses, grads = [], None
    for _ in range(count):
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = grads or [p.grad.clone() for p in model.parameters()]
        optimizer.step()
        losses.append(loss.item())
    return torch.tensor(losses), grads


def test_channels_last_trains_the_cnn_arm_to_the_same_numbers():
    (plain_losses, plain_grads), (losses, grads) = steps(False), steps(True)
    torch.testing.assert_close(losses, plain_losses, rtol=1e-5, atol=1e-6)
    for plain, grad in zip(plain_grads, grads):
        torch.testing.assert_close(grad, plain, rtol=1e-4, atol=1e-6)


def test_a_cnn_trains_channels_last_on_cpu_and_a_transformer_as_built(tmp_path):
    data = tiny_synthetic(tmp_path / "data")
    cnn = train.start(tiny_config(data, tmp_path / "cnn", model="resnet18", epochs=1), progress=False)
    vit = train.start(tiny_config(data, tmp_path / "vit", model="vb_vit_tiny_patch16_224", epochs=1), progress=False)
    assert (cnn["memory_format"], vit["memory_format"]) == ("channels_last", "preserve_format")
    assert cnn["top1"] is not None  # evaluation takes the NCHW batches as they come
