"""
The core: scopes, the registry, policies, resources and kinds, signals.

It imports nothing from the layers above it (kinds, crash safety, the command).
"""
