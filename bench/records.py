"""Records written before paths were made portable, rewritten as vitbench writes them now: every path-valued
setting relative to the record's own folder (`bench.settings.portable_path`), so committed results name no machine
path and read back from any clone.

    python -m bench.records results/     # from the folder their relative paths were typed in (the repository root)

Only the path values change, in place and byte for byte around them: the keys that hold a path (`PATH_KEYS`) in
the files vitbench writes as records (`RECORDS`). A path outside the working directory that does not exist here is
left as it is and named, since its relative form could not be checked (one inside, such as a git-ignored
checkpoint, is converted). Free text (a provenance `command`, a report's prose) is not touched.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

from bench.settings import located_path, portable_path
from models.atomic import atomic_write_text

RECORDS = ("config.json", "config.toml", "summary.json", "study.json", "spec.toml", "spec.json")
PATH_KEYS = ("data", "out", "init", "checkpoint")
KEYS = "|".join(PATH_KEYS)
JSON_PATH = re.compile(rf'(?P<head>"(?P<key>{KEYS})": ")(?P<path>[^"]+)(?P<tail>")')
TOML_PATH = re.compile(rf'^(?P<head>(?P<key>{KEYS}) = ")(?P<path>[^"]+)(?P<tail>")$', re.MULTILINE)


def portable_text(text, pattern, folder, missing):
    """`text` with each path `pattern` finds relative to `folder`; paths that do not exist go to `missing`."""
    def relative(match):
        path = match["path"]
        # a run's `out` is the folder its config.json lies in, wherever that was on the machine that ran it
        where = folder if match["key"] == "out" else located_path(path, folder)
        if not (os.path.exists(where) or Path(where).is_relative_to(Path.cwd())):  # unknown, unless ours (ignored)
            missing.append(path)
            return match[0]
        return match["head"] + portable_path(where, folder) + match["tail"]

    return pattern.sub(relative, text)


def with_path(text, key, value, pattern):
    """`text` (a record, its `pattern` JSON_PATH or TOML_PATH) with the path under `key` set to `value`."""
    quoted = json.dumps(value)[1:-1]  # escaped as JSON and TOML basic strings both read it
    return pattern.sub(lambda match: match["head"] + quoted + match["tail"] if match["key"] == key else match[0], text)


def repoint(folder, key, value, names=("config.json", "config.toml", "summary.json")):
    """Record in `folder`'s records (`names`) that `key`'s path is now `value`, written relative to the folder;
    nothing else in them changes."""
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            pattern = TOML_PATH if path.suffix == ".toml" else JSON_PATH
            atomic_write_text(path, with_path(path.read_text(), key, portable_path(value, folder), pattern))


def make_portable(tree):
    """Rewrite every record under `tree`; returns ([files changed], [(file, path) left as they were])."""
    changed, left = [], []
    for path in sorted(p for name in RECORDS for p in Path(tree).rglob(name)):
        text, missing = path.read_text(), []
        new = portable_text(text, TOML_PATH if path.suffix == ".toml" else JSON_PATH, path.parent, missing)
        left += [(path, value) for value in missing]
        if new != text:
            atomic_write_text(path, new)
            changed.append(path)
    return changed, left


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__.splitlines()[0])
    parser.add_argument("tree", help="folder of records, e.g. results/")
    args = parser.parse_args(argv)
    if not Path(args.tree).is_dir():
        print(f"python -m bench.records: error: {args.tree} is not a folder; pass the folder of records",
              file=sys.stderr)
        return 2
    changed, left = make_portable(args.tree)
    for path, value in left:
        print(f"left {value} in {path}: not on this machine", file=sys.stderr)
    print(f"{len(changed)} records rewritten with paths relative to their folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
