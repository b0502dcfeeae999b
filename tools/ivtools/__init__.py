"""ivtools: the shared layer of the InternVideo monorepo.

It depends on no generation; every generation may depend on it.

* :mod:`ivtools.video` -- video decoding and frame-index sampling;
* :mod:`ivtools.launch` -- one launcher for local, torchrun and SLURM runs;
* :mod:`ivtools.checkpoint` -- checkpoint inspection, conversion and the conversion-hook registry;
* :mod:`ivtools.testing` -- the pytest plugin (fixtures and markers) every generation's tests use.
"""

__version__ = "0.1.0"
