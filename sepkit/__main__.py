"""``python -m sepkit``: the ``sepkit`` command, also what ``torchrun ... -m sepkit run RECIPE``
starts in every process of a data-parallel run (docs/scaling.md)."""

from .cli.main import main

if __name__ == "__main__":
    main()
