"""Run one of timm's own scripts (train.py, validate.py, benchmark.py, inference.py) with our names registered:

    python -m models.timm_script PATH/TO/validate.py --model t2t_vit_14 --pretrained --data-dir imagenet/ ...

The whole entry is `import models`, which registers every name with timm, before the script runs as `__main__` with
its own arguments, its folder first on the path as `python SCRIPT` puts it; nothing of timm's is changed or copied.
"""
import runpy
import sys
from pathlib import Path

USAGE = "usage: python -m models.timm_script PATH/TO/TIMM_SCRIPT.py [THE SCRIPT'S ARGUMENTS]"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") or not Path(argv[0]).is_file():
        raise SystemExit(f"{USAGE}\n(no script {argv[0]!r})" if argv and not argv[0].startswith("-") else USAGE)
    import models  # noqa: F401  registers every name with timm

    script = Path(argv[0]).resolve()
    sys.argv = [str(script), *argv[1:]]
    sys.path.insert(0, str(script.parent))
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
