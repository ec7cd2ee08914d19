"""The ``wasserstein-gp``, ``js`` and ``kl`` divergence plugins."""

from sepkit import hookimpl


@hookimpl
def register_divergences(register):
    from .jensen_shannon import JensenShannon
    from .kullback_leibler import KullbackLeibler
    from .wasserstein import WassersteinGP

    register("wasserstein-gp", WassersteinGP)
    register("js", JensenShannon)
    register("kl", KullbackLeibler)
