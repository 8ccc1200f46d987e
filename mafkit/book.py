"""Put a computed number into the prose of a chapter (myst-nb's ``glue``, without myst-nb).

A chapter computes a result in a cell and refers to it in the text as ``{glue:text}`name:.2f```
so that the page and the stored output cannot disagree. myst-nb finds such values in a cell's
outputs by the metadata written here; this is the same format as ``myst_nb.glue``, so a notebook
needs no Jupyter Book packages to run (in Colab, say), and the site still finds every value.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]

# The MIME prefix under which myst-nb expects a value that is stored but not shown.
_HIDDEN_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` in the cell's outputs for the book's ``{glue}`` roles.

    Args:
        name: the key used in the text, e.g. ``{glue:text}`nll_gap:.2f```; unique per chapter.
        value: any object; the book formats numbers with the spec given in the role.
        display: also show the value under the cell (hidden by default).

    Outside a notebook kernel (a plain ``python`` script) this does nothing.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"glue name must be a non-empty string, got {name!r}")
    try:
        from IPython import get_ipython
        from IPython.core.formatters import format_display_data
        from IPython.display import display as ipython_display
    except ImportError:  # no IPython: not in a notebook, nothing to record
        return
    if get_ipython() is None:
        return
    bundle, metadata = format_display_data(value)
    prefix = "" if display else _HIDDEN_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipython_display(
        {prefix + key: data for key, data in bundle.items()}, raw=True, metadata=metadata
    )
