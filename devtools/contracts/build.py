"""Compile the escrow contracts with the pinned Vyper and write their artifacts.

    python -m devtools.contracts.build          # write payments/providers/escrow/build/*.json
    python -m devtools.contracts.build --check  # exit 1 if they differ from a fresh build

Run from the repository root. The artifacts are committed: the application loads them
(``artifacts.py``) without needing the compiler, and a test checks they match the source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / "payments" / "providers" / "escrow" / "build"

# The version the committed artifacts were built with; `vyper==` in the requirements.
VYPER_VERSION = "0.4.3"
CONTRACTS: tuple[str, ...] = (
    "Escrow",
    "TestToken",
    "Payments",
    "DepositForwarder",
    "DepositFactory",
    "EscrowV2",
)


def compile_source(path: Path) -> dict[str, Any]:
    """Compile one Vyper file; returns the compiler's abi, bytecode and runtime bytecode.

    Settings (EVM version, optimisation) come from the pragmas in the source itself.
    """
    import vyper  # the compiler is a build-time dependency only

    try:
        contract_path = path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        contract_path = path.name
    out = vyper.compile_code(
        path.read_text(encoding="utf-8"),
        contract_path=contract_path,
        output_formats=["abi", "bytecode", "bytecode_runtime", "settings_dict"],
    )
    return out


def build_artifact(name: str) -> dict[str, Any]:
    """The artifact dict for contracts/<name>.vy, as it is written to build/<name>.json."""
    import vyper

    if vyper.__version__.split("+")[0] != VYPER_VERSION:
        raise RuntimeError(
            f"vyper {vyper.__version__} is installed; the artifacts are pinned to {VYPER_VERSION}"
        )
    path = CONTRACTS_DIR / f"{name}.vy"
    source = path.read_bytes()
    out = compile_source(path)
    return {
        "contractName": name,
        "compiler": "vyper",
        "compilerVersion": VYPER_VERSION,
        "settings": out["settings_dict"],
        "sourcePath": path.relative_to(REPO_ROOT).as_posix(),
        "sourceSha256": hashlib.sha256(source).hexdigest(),
        "abi": out["abi"],
        "bytecode": out["bytecode"],
        "bytecodeRuntime": out["bytecode_runtime"],
    }


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=2, sort_keys=False) + "\n"


def artifact_path(name: str) -> Path:
    return BUILD_DIR / f"{name}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if a committed artifact differs from a fresh build",
    )
    args = parser.parse_args(argv)

    stale: list[str] = []
    for name in CONTRACTS:
        text = render(build_artifact(name))
        target = artifact_path(name)
        if args.check:
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current != text:
                stale.append(str(target.relative_to(REPO_ROOT)))
            continue
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(REPO_ROOT)}")

    if stale:
        print(
            "out of date (run `python -m devtools.contracts.build`): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    if args.check:
        print("contract artifacts match the sources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
