"""The fault suite's fixtures (defined in faultkit.py, which its tests import helpers from: a module
name of its own, unlike ``conftest``)."""

from faultkit import builtin_model, recipe, tiny_data  # noqa: F401  (fixtures)
