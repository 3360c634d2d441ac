"""The default sweep over depth, heads and patch size, ViT vs T2T-ViT (both T2T block kinds)."""


def test_sweep_inference(sweep_case, run_benchmark):
    run_benchmark(sweep_case.build(), "inference", group="sweep: inference")


def test_sweep_train_step(sweep_case, run_benchmark):
    run_benchmark(sweep_case.build(), "train", group="sweep: train step")
