"""The OpenAPI document's finishing touches (drf-spectacular hooks, named in settings): one
path per route, the webhook endpoint, request bodies closed to undeclared fields, and the links
from an operation's answer to the operations that take its ids."""

from __future__ import annotations

from typing import Any


def schema_drop_slash_variants(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """Every path answers with and without a trailing slash (two routes, or one with an
    optional slash); the schema lists it once, without."""
    out, seen = [], set()
    for path, *rest in endpoints:
        path = path.rstrip("/") or path
        method = rest[1] if len(rest) > 1 else None
        if (path, method) not in seen:
            seen.add((path, method))
            out.append((path, *rest))
    return out


WEBHOOK_PATH = "/api/orders/payment/webhook"


def schema_add_webhook(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Describe the provider webhook endpoint when its view does not describe itself."""
    paths = result.setdefault("paths", {})
    if WEBHOOK_PATH in paths or not any(p.startswith("/api/") for p in paths):
        return result
    error = {"$ref": "#/components/schemas/Error"}
    paths[WEBHOOK_PATH] = {
        "post": {
            "operationId": "payment_webhook",
            "summary": "Provider webhooks (Stripe, chain notifications)",
            "description": "Called by payment providers, not by clients. The request must carry "
            "the provider's signature header (e.g. `Stripe-Signature`); unsigned or badly signed "
            "requests get 400 and nothing is written. A verified event is stored once (by its "
            "provider event id) and processed in the background.",
            "tags": ["webhooks"],
            "security": [],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": {"description": "Verified and stored (or a duplicate of a stored event)."},
                "400": {
                    "description": "`missing_signature`, `invalid_signature`, `payload_too_large`.",
                    "content": {"application/json": {"schema": error}},
                },
            },
        }
    }
    return result


def schema_close_request_bodies(
    result: dict[str, Any], generator: Any, **kwargs: Any
) -> dict[str, Any]:
    """Every input serializer refuses undeclared fields (400 ``unknown_field``): say so. An
    order item names its ``sku`` or its ``name``; a payment's fields depend on its method."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    _state_maxima(schemas)
    if "OrderItemRequest" in schemas:
        schemas["OrderItemRequest"]["anyOf"] = [{"required": ["sku"]}, {"required": ["name"]}]
    for name, optional_payment in [
        ("PaymentCreateInputRequest", False),
        ("OrderCreateRequestRequest", True),
    ]:
        if name in schemas:
            schemas[name] = _per_method(schemas[name], optional_payment)
    return result


def _state_maxima(schemas: dict[str, Any]) -> None:
    """Each input ``amount`` says the per-currency maxima of this deployment (MAX_AMOUNTS):
    JSON Schema cannot tie a bound to a sibling field, so the description carries them."""
    from django.conf import settings

    maxima = ", ".join(f"{code} {limit}" for code, limit in sorted(settings.MAX_AMOUNTS.items()))
    if not maxima:
        return
    for name, component in schemas.items():
        amount = component.get("properties", {}).get("amount") if name.endswith("Request") else None
        if isinstance(amount, dict) and "oneOf" in amount:
            amount["description"] = (
                f"{amount.get('description', '')} At most, per currency "
                f"(400 `amount_too_large` above): {maxima}."
            ).strip()


def _per_method(component: dict[str, Any], optional_payment: bool) -> dict[str, Any]:
    """One variant per payment method, each with only the fields that method takes (and, for
    an order, one without a payment): what ``MethodDetailsMixin`` checks, as ``oneOf``."""
    from payments.api.serializers import CHAIN_FIELDS, METHOD_FIELDS

    props = component.get("properties", {})
    required = [r for r in component.get("required", []) if r != "payment_method"]
    shared = {k: v for k, v in props.items() if k not in (*CHAIN_FIELDS, "payment_method")}
    variants = []
    if optional_payment:
        variants.append(_variant(shared, required))
    for method, fields in METHOD_FIELDS.items():
        own = {k: props[k] for k in fields if k in props}
        variants.append(
            _variant(
                {
                    **shared,
                    "payment_method": {"type": "string", "enum": [str(method)]},
                    **own,
                },
                [*required, "payment_method", *(["payer_address"] if method == "crypto" else [])],
            )
        )
    out = {"oneOf": variants}
    if component.get("description"):
        out["description"] = component["description"]
    return out


def _variant(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


ORDER_ID = "$response.body#/id"
#: Operations that take an order's id as ``order_id``, by the link's name.
ORDER_OPERATIONS = {
    "GetOrder": "orders_retrieve",
    "GetPaymentStatus": "payment_status",
    "StartPayment": "payment_transactions_create",
    "RetryPayment": "payment_retry",
    "Refund": "payment_refund",
    "Dispute": "escrow_dispute",
    "ConfirmDelivery": "escrow_confirm_delivery",
    "ResolveDispute": "escrow_resolve_dispute",
}


def _order_links(order_id: str) -> dict[str, Any]:
    return {
        name: {"operationId": op, "parameters": {"order_id": order_id}}
        for name, op in ORDER_OPERATIONS.items()
    }


def _payment_links(payment_id: str, order_id: str) -> dict[str, Any]:
    """A payment's own operations, and its order's."""
    return {
        **_order_links(order_id),
        "SetPaymentStatus": {
            "operationId": "payment_transaction_status_update",
            "parameters": {"transaction_id": payment_id},
        },
        "RefundPayment": {
            "operationId": "payment_refund",
            "parameters": {"order_id": order_id},
            "requestBody": {"transaction_id": payment_id},
        },
    }


#: (operationId, status) -> the links of that answer. Only ids every such answer holds: a
#: list may be empty, an order may have no payment or receipt yet.
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("orders_create", "201"): _order_links(ORDER_ID),
    ("orders_retrieve", "200"): _order_links(ORDER_ID),
    ("payment_transactions_create", "201"): _payment_links(
        "$response.body#/id", "$response.body#/order_id"
    ),
    ("payment_retry", "201"): _payment_links("$response.body#/id", "$response.body#/order_id"),
    ("payment_status", "200"): _order_links("$response.body#/order_id"),
}


def schema_add_links(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """OpenAPI links from an answer to the operations that take the ids it holds (clients and
    stateful fuzzers follow them: create an order, then pay, refund or dispute it)."""
    known = {
        op.get("operationId")
        for ops in result.get("paths", {}).values()
        for op in ops.values()
        if isinstance(op, dict)
    }
    for ops in result.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for status, response in op.get("responses", {}).items():
                links = LINKS.get((op.get("operationId"), status))
                if links:
                    response["links"] = {
                        name: link for name, link in links.items() if link["operationId"] in known
                    }
    return result
