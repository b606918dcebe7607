"""The loss balancers' former home, kept so that `onepass.train.balancing` still imports: they live in
`onepass.train.balancers`, one module per strategy."""

from onepass.train.balancers import *  # noqa: F403
from onepass.train.balancers import __all__  # noqa: F401
