"""Where a study's runs train besides this machine: `slurm` (one Slurm job per run, through submitit)."""
