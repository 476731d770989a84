"""The demo world in vendors' dialects: each module serves the world's data in one vendor's
API shapes (paging, throttling, error bodies), mounted by ``ops_demo.server`` at the vendor's
real paths beside the generic endpoints, which it never changes."""
