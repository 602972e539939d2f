#!/usr/bin/env python3
"""Lints template.yaml the way CloudFormation will see it, informational checks included.

`cfn-lint template.yaml` lints the SAM template, but it does not report findings inside what the
SAM transform generates: an IAM action that does not exist in a function's `Policies` (say
`dynamodb:TransactWriteItems`, which is no IAM action) passes it silently. So this script runs
cfn-lint twice, with the informational rules on (`-c I`: stateful resources without a
DeletionPolicy, statement resources that do not fit their actions, ...):

1. on template.yaml itself;
2. on the template after the SAM transform (cfn-lint's own wrapper of the SAM translator, the
   same code cfn-lint and `sam validate` use), where each function's policy is a plain
   AWS::IAM::Role and the IAM rules (W3037 actions, I3510 resources) apply.

Usage: .venv/bin/python scripts/check_template.py [template.yaml]   (run by `make test`)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cfnlint.decode import decode
from cfnlint.template.transforms._sam import Transform

REGION = "us-east-1"


def lint(path: Path, label: str) -> bool:
    # The cfn-lint entry point installed next to this interpreter (the pinned one in .venv).
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    cmd = [str(cfn_lint), "--regions", REGION, "-c", "I", "--", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        print(f"cfn-lint ({label}) found problems:\n{output}", file=sys.stderr)
        return False
    print(f"cfn-lint ({label}): clean")
    return True


def transformed(template_path: Path) -> dict:
    template, matches = decode(str(template_path))
    if matches:
        sys.exit("cannot parse {}: {}".format(template_path, "; ".join(str(m) for m in matches)))
    transform = Transform(str(template_path), template, REGION)
    errors = transform.transform_template()
    if errors:
        sys.exit("the SAM transform failed: {}".format("; ".join(str(m) for m in errors)))
    return transform.template()


def main() -> int:
    template_path = Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
    ok = lint(template_path, template_path.name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "template.transformed.json"
        out.write_text(json.dumps(transformed(template_path), indent=1, default=str))
        ok = lint(out, f"{template_path.name} after the SAM transform") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
