"""Print a deployed stack's endpoint: ``python deploy/outputs.py [STACK] [--region R]``.

Reads the CloudFormation outputs of the stack ``sam deploy`` created (default
name ``flowers``) and prints them, then the ``flowers classify`` command to
call it. Needs AWS credentials (boto3's usual chain).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["main", "stack_outputs"]


def stack_outputs(stack_name: str, *, client: Any = None) -> dict[str, str]:
    cloudformation = client or boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise LookupError(f"stack {stack_name!r}: {exc.response['Error']['Message']}") from exc
    outputs = stacks[0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", nargs="?", default="flowers")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(args.stack, client=boto3.client("cloudformation", region_name=args.region))
    except (LookupError, BotoCoreError) as exc:
        print(f"outputs: {exc}", file=sys.stderr)
        return 1
    for key, value in sorted(outputs.items()):
        print(f"{key}: {value}")
    if "PredictUrl" in outputs:
        print(f"\nflowers classify --endpoint {outputs['PredictUrl']} IMAGE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
