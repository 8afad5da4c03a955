"""python -m survey_lib.zoo build [NAME ...] [--out DIR] [--steps N]: rebuild zoo models."""
import argparse
import json
from pathlib import Path

from . import ZOO
from .build import build

parser = argparse.ArgumentParser(prog="python -m survey_lib.zoo", description=__doc__)
sub = parser.add_subparsers(dest="command", required=True)
b = sub.add_parser("build", help="pre-train zoo models from scratch")
b.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(ZOO)}")
b.add_argument("--out", type=Path, help="parent directory (default: the package's artifacts)")
b.add_argument("--steps", type=int, help="override the number of pre-training steps")
sub.add_parser("list", help="list the zoo")
args = parser.parse_args()
if args.command == "list":
    for spec in ZOO.values():
        print(f"{spec.name:16s} {spec.description}")
else:
    for name in args.names or ZOO:
        manifest = build(name, args.out / name if args.out else None, steps=args.steps)
        print(name, json.dumps({k: manifest[k] for k in ("parameters", "final_loss", "quality", "build_seconds")}))
