"""sepkit's built-in plugins, each registered through the ``sepkit`` entry-point group in
pyproject.toml exactly as a third-party package would register its own."""
