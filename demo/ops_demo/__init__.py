"""The demo world: a simulated company behind every source the pipeline reads.

A package of its own beside the product (``ops_warehouse``), never shipped in the product's
wheel or production image: the generator and simulation (``world``, ``genesis``,
``simulation``, ``names``, ``sheets``, ``snapshot``), the demo marketing and helpdesk APIs
(``server``), and ``make demo`` / ``make up`` (``run``, ``cli``: the ``ops-demo`` command).

The product's settings have no default API tokens; the demo brings its own (``DEMO_TOKENS``),
set in the environment of every demo run and of the processes it starts, unless the
environment already sets others.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEMO_TOKENS = {
    "OPS_MARKETING_API_TOKEN": "demo-marketing-token",
    "OPS_SUPPORT_API_TOKEN": "demo-support-token",
    "OPS_SHOP_API_TOKEN": "demo-shop-token",
    # the ad platforms' emulators (ops_demo.vendors.google_ads, ops_demo.vendors.meta_ads)
    "OPS_GOOGLE_ADS_CLIENT_ID": "demo-google-client.apps.example",
    "OPS_GOOGLE_ADS_CLIENT_SECRET": "demo-google-client-secret",
    "OPS_GOOGLE_ADS_REFRESH_TOKEN": "demo-google-refresh-token",
    "OPS_GOOGLE_ADS_DEVELOPER_TOKEN": "demo-google-developer-token",
    "OPS_META_ACCESS_TOKEN": "demo-meta-access-token",
    "OPS_HUBSPOT_TOKEN": "demo-hubspot-token",
}


def with_demo_tokens(
    env: MutableMapping[str, str] = os.environ,
) -> MutableMapping[str, str]:
    """Set the demo APIs' bearer tokens in ``env`` (this process's environment by default)
    where it sets none or an empty one, and return it; tokens already set win."""
    for name, token in DEMO_TOKENS.items():
        if not env.get(name):
            env[name] = token
    return env
