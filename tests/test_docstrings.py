"""Every public name of pybpf, and every public method and property of its classes,
has a docstring (``help(pybpf.RingBuffer)`` is useful)."""
from __future__ import annotations

import inspect
import pydoc

import pybpf
from pybpf.link.hooks import Link


def _undocumented(cls: type) -> list:
    missing = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("pybpf"):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_"):
                continue
            func = value.fget if isinstance(value, property) else \
                getattr(value, "__func__", value)
            if not (isinstance(value, property) or inspect.isfunction(func)):
                continue
            doc = value.__doc__ if isinstance(value, property) else inspect.getdoc(func)
            if not (doc or "").strip():
                missing.append(f"{klass.__name__}.{attr}")
    return missing


def test_every_public_name_has_a_docstring():
    missing = [name for name in pybpf.__all__ if not (getattr(pybpf, name).__doc__ or "").strip()]
    assert not missing


def test_every_public_method_and_property_has_a_docstring():
    classes = [getattr(pybpf, n) for n in pybpf.__all__ if inspect.isclass(getattr(pybpf, n))]
    missing = [m for cls in classes + [Link] for m in _undocumented(cls)]
    assert not missing
    assert len(classes) == len(pybpf.__all__)


def test_help_ringbuffer_is_useful():
    page = pydoc.render_doc(pybpf.RingBuffer, renderer=pydoc.plaintext)
    for word in ("poll", "consume", "records", "batch", "close", "layout"):
        assert word in page
    assert "zero-copy" in page or "memoryview" in page
