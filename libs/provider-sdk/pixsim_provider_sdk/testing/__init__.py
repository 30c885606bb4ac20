"""Test kit for provider plugins: `fake_http` runs a provider folder's fake remote API over real HTTP.

Nothing is imported here on purpose, so `python -m pixsim_provider_sdk.testing.fake_http` runs the
module once (as `__main__`) instead of also importing it through the package.
"""
