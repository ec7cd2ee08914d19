"""Recipes: one TOML file describing a whole experiment and its variants."""

from .load import LoadedRecipe, load_recipe, recipe_from_dict
from .schema import Recipe

__all__ = ["LoadedRecipe", "Recipe", "load_recipe", "recipe_from_dict"]
