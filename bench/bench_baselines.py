"""What a user would pick instead of T2T-ViT, timed like the named models: timm's DeiT-Ti, DeiT-S and
ResNet-50 (random init), inference and a training step."""


def test_baseline_inference(baseline_case, run_benchmark):
    run_benchmark(baseline_case.build(), "inference", group="timm baselines: inference")


def test_baseline_train_step(baseline_case, run_benchmark):
    run_benchmark(baseline_case.build(), "train", group="timm baselines: train step")
