"""A simulated Azure DevOps Artifacts + Entra ID for the end-to-end tests.

Modules: world (the fixed tenants, users, orgs, feeds, identities and host names), server
(`Simulator` and its knobs), netns (the namespace runner), pki, wheels, azcli and bin/az (the
fake Azure CLI). Importing this package imports nothing else.
"""
