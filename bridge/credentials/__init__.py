"""Credentials (seed 001): each account's vault of named credentials, their secrets sealed at
rest, and the ones the bridge accepts as ways in (API keys, Basic, OAuth client credentials).

``models`` (shapes), ``crypto`` (sealing, lookup hashes), ``listing`` (list parameters),
``patching`` (JSON Patch), ``store`` (all SQL), ``service`` (rules, who may do what),
``authn`` (authenticating with a credential).
"""
