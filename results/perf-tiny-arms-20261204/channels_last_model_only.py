import time, statistics, torch
from bench.accuracy import factory
from timm.optim import create_optimizer_v2
torch.set_num_threads(1)
def mk(model_cl, input_cl):
    torch.manual_seed(0)
    m = factory.create("resnet_cifar_tiny", 10, 32, 0.0, {})
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if model_cl: m = m.to(memory_format=torch.channels_last)
    if input_cl: x = x.contiguous(memory_format=torch.channels_last)
    opt = create_optimizer_v2(m, opt="adamw", lr=1e-3, weight_decay=0.05)
    def step():
        loss = torch.nn.functional.cross_entropy(m(x), y); opt.zero_grad(); loss.backward(); opt.step(); return loss.item()
    return step
steps = {"plain": mk(False, False), "model": mk(True, False), "both": mk(True, True)}
for s in steps.values(): s()
t = {k: [] for k in steps}
names = list(steps)
for r in range(7):
    for k in names[r % 3:] + names[:r % 3]:
        a = time.perf_counter(); steps[k](); t[k].append(time.perf_counter() - a)
for k in names: print(k, statistics.median(p / s for p, s in zip(t["plain"], t[k])))
