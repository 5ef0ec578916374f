"""The committed ABI and bytecode are those the pinned compiler makes from the source."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid

import pytest

from devtools.contracts import build, deploy
from payments.providers.escrow import artifacts

#: one compile per contract for the whole module (compiling is the slow part)
_fresh = functools.cache(build.build_artifact)


@pytest.mark.parametrize("name", build.CONTRACTS)
def test_committed_artifact_matches_a_fresh_compile(name: str) -> None:
    vyper = pytest.importorskip("vyper", reason="the Vyper compiler is not installed")
    if vyper.__version__.split("+")[0] != build.VYPER_VERSION:
        pytest.skip(
            f"vyper {vyper.__version__} installed, artifacts pinned to {build.VYPER_VERSION}"
        )
    committed = json.loads(build.artifact_path(name).read_text(encoding="utf-8"))
    fresh = _fresh(name)

    assert committed["abi"] == fresh["abi"]
    assert committed["bytecode"] == fresh["bytecode"]
    assert committed["bytecodeRuntime"] == fresh["bytecodeRuntime"]
    source = (build.CONTRACTS_DIR / f"{name}.vy").read_bytes()
    assert committed["sourceSha256"] == hashlib.sha256(source).hexdigest()
    assert committed["compilerVersion"] == build.VYPER_VERSION
    # and the whole file is byte for byte what the build script writes
    assert build.artifact_path(name).read_text(encoding="utf-8") == build.render(fresh)


def test_build_check_passes_on_the_committed_artifacts(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("vyper", reason="the Vyper compiler is not installed")
    monkeypatch.setattr(build, "build_artifact", _fresh)  # the compiles above, not again
    assert build.main(["--check"]) == 0


def test_artifacts_load_without_the_compiler() -> None:
    escrow = artifacts.escrow_artifact()
    assert escrow is artifacts.load_artifact("Escrow")  # cached
    assert escrow.bytecode.startswith("0x") and len(escrow.bytecode) > 1000
    functions = {item["name"] for item in escrow.abi if item["type"] == "function"}
    events = {item["name"] for item in escrow.abi if item["type"] == "event"}
    assert {"deposit", "release", "refund", "dispute", "resolve", "escrows", "get_escrow"} <= (
        functions
    )
    assert events == {"Deposited", "Released", "Refunded", "Disputed", "Resolved"}
    token = artifacts.token_artifact()
    assert {"mint", "approve", "transferFrom", "decimals"} <= {
        item["name"] for item in token.abi if item["type"] == "function"
    }


def test_escrow_id_is_deterministic_per_payment() -> None:
    payment = uuid.UUID("6f1c2b9e-8d0a-4c43-9a3e-1f2d3c4b5a69")
    eid = deploy.escrow_id_for(payment)
    assert isinstance(eid, bytes) and len(eid) == 32
    assert eid == deploy.escrow_id_for(uuid.UUID(str(payment)))
    assert eid != deploy.escrow_id_for(uuid.uuid4())
    # pinned: changing the derivation would orphan every escrow already funded on chain
    assert eid.hex() == EXPECTED_ESCROW_ID


# keccak256(b"orderpay/escrow/v1:" + uuid.bytes), computed independently with pycryptodome
EXPECTED_ESCROW_ID = "fbcdddb77580d2ca3ecbd7b620a36cd865df20580bd099afa80a177d82671519"
