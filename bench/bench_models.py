"""Forward pass and full training step of every named model."""


def test_inference(named_case, run_benchmark):
    run_benchmark(named_case.build(), "inference", group="named models: inference")


def test_train_step(named_case, run_benchmark):
    run_benchmark(named_case.build(), "train", group="named models: train step")
