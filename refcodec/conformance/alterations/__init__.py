"""The alterations that make the invalid streams: ``ALTERATIONS`` maps each kind to an
``Alteration``, which breaks a valid stream in one place and names the clause the reference
decoder then reports.

- ``registry``: ``Alteration``, ``ALTERATIONS`` and the ``_alteration`` decorator that fills it;
- ``layer``: the container and feature-layer alterations (scope ``layer``, clauses 8, 10, 11);
- ``face``: the face-unit alterations (scope ``face``, clauses 8.2, 11.2 and 13).

``layer`` is imported before ``face``: ALTERATIONS, and so the built-in invalid streams and
``refcodec conformance alterations``, keep that order.
"""

from . import layer  # noqa: F401 - registers its alterations (first)
from . import face  # noqa: F401 - registers its alterations (after those of layer)
from .registry import ALTERATIONS, Alteration

__all__ = ["ALTERATIONS", "Alteration"]
