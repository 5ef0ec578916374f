"""Celery tasks of the chain monitor: ``payments.poll_chains`` (beat) fans out one
``payments.poll_chain`` per configured chain; each pass holds its chain's lock."""

from __future__ import annotations

from celery import shared_task

from .chain_monitor import chain_poll
from .providers.chain.registry import all_chains


@shared_task(name="payments.poll_chain", acks_late=True, ignore_result=True)
def poll_chain(chain_id: int) -> dict:
    report = chain_poll(chain_id)
    return {
        "chain_id": report.chain_id,
        "http_requests": report.http_requests,
        "skipped": report.skipped,
        "error": report.error,
    }


@shared_task(name="payments.poll_chains", ignore_result=True)
def poll_chains() -> list[int]:
    chain_ids = [chain.chain_id for chain in all_chains()]
    for chain_id in chain_ids:
        poll_chain.delay(chain_id)
    return chain_ids
