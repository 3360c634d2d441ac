"""The CNN arm's training step (batch 128, one thread) plain, with only its weights channels_last (what training
does since 4291d6b), and with weights and input channels_last: 7 rounds round-robin, rotating which goes first;
prints the median per-round speed-up over plain. Run from the repository root with .venv/bin/python."""
import statistics
import time

import torch
from timm.optim import create_optimizer_v2

from bench.accuracy import factory


def make_step(weights_cl, input_cl):
    torch.manual_seed(0)
    model = factory.create("resnet_cifar_tiny", 10, 32, 0.0, {})
    images, targets = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if weights_cl:
        model = model.to(memory_format=torch.channels_last)
    if input_cl:
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05)

    def step():
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main():
    torch.set_num_threads(1)
    steps = {"plain": make_step(False, False), "weights": make_step(True, False), "both": make_step(True, True)}
    for step in steps.values():
        step()
    seconds = {name: [] for name in steps}
    names = list(steps)
    for index in range(7):
        for name in names[index % 3:] + names[:index % 3]:
            start = time.perf_counter()
            steps[name]()
            seconds[name].append(time.perf_counter() - start)
    for name in names:
        print(name, statistics.median(p / s for p, s in zip(seconds["plain"], seconds[name])))


if __name__ == "__main__":
    main()
