"""The payment path does not load the contract deployment helpers (web3 contract machinery):
only ``payments.providers.chain.client`` speaks to chains."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from payments.providers.chain import client as rpc

ROOT = Path(__file__).resolve().parents[3]


def test_payment_path_does_not_import_the_deploy_helpers():
    code = (
        "import os, sys, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.test')\n"
        "django.setup()\n"
        "import payments.services.payments, payments.chain.monitor, payments.services.escrow\n"
        "import payments.providers.chain.provider, config.urls\n"
        "print('devtools.contracts.deploy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


def test_escrow_id_derivation_is_pinned():
    """Open escrows are keyed by this derivation: a change would orphan every one of them."""
    payment = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert rpc.escrow_id_for(payment).hex() == (
        "3126503f4eac1d2917d8c2ae18c5a2c3a02dee79a05639f5a0665b99453bb87d"
    )
    assert rpc.escrow_id_for(uuid.uuid4()) != rpc.escrow_id_for(uuid.uuid4())
