"""Test kit for provider plugins, one module a job:

- `fake_http`: a provider folder's fake remote API over real HTTP (`JsonFakeServer`, `load_fake`, the CLI);
- `faults`: `SubmitFaults`, the fault knobs every fake shares;
- `multipart`, `tokens`, `media`: what fakes parse and make (forms, HS256 session tokens, PNG/MP4);
- `harness`: a provider's own tests (`kit_fixture`, `wait_terminal`, `run_prepared`);
- `conformance`, `cases`, `checks`, `secret_scan`: the conformance suite.

Nothing is imported here on purpose, so `python -m pixsim_provider_sdk.testing.fake_http` runs the
module once (as `__main__`) instead of also importing it through the package.
"""
