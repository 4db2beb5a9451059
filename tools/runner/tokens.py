"""Development JWTs the gateway accepts: RS256, signed with the dev key committed in gateway/.

The key is for local use only (see docs/gateway.md): anyone with the repository can mint a
token for any customer, which is the point on a laptop and a disaster anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jwt

from tools.runner.gateway import JWT_AUDIENCE, JWT_ISSUER, GatewaySettings, gateway_dir

DEV_KEY_ID = "concord-dev-1"
DEFAULT_TTL_S = 3600
MAX_TTL_S = GatewaySettings().jwt_max_lifetime_s
"""The gateway refuses tokens that expire further ahead than this, so dev tokens never do."""
# The roles services act on (runtime.caller.Role), so `token --role` refuses typos.
# Kept here because tools do not import services; tests/unit/test_caller.py keeps them equal.
KNOWN_ROLES = ("admin",)


def dev_signing_key(repo_root: Path) -> bytes:
    return (gateway_dir(repo_root) / "dev-keys" / "signing-key.pem").read_bytes()


def mint_token(
    private_key_pem: bytes,
    customer_id: str,
    ttl_s: int = DEFAULT_TTL_S,
    now_s: int | None = None,
    key_id: str = DEV_KEY_ID,
    audience: str = JWT_AUDIENCE,
    roles: Sequence[str] = (),
) -> str:
    """A token whose subject is the customer id the gateway forwards as `x-customer-id`, and
    whose `roles` claim (a list, empty for a plain customer) it forwards as `x-customer-roles`.
    """
    issued = int(time.time()) if now_s is None else now_s
    claims = {
        "iss": JWT_ISSUER,
        "aud": audience,
        "sub": customer_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "roles": list(roles),
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": key_id})


def mint_dev_token(
    repo_root: Path, customer_id: str, ttl_s: int = DEFAULT_TTL_S, roles: Sequence[str] = ()
) -> str:
    """A token the gateway accepts: `ttl_s` must lie within the gateway's maximum lifetime."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be between 1 and {MAX_TTL_S} (the gateway's maximum)")
    return mint_token(dev_signing_key(repo_root), customer_id, ttl_s, roles=roles)
