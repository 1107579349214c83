"""Text -> the Python value of a global variable, by the variable's BTF type.

What ``--set NAME=VALUE`` and ``GlobalData[name] = "text"`` take:

* integers in any base Python spells (``1234``, ``0x4d2``, ``0o2322``,
  ``0b100``, ``-5``, ``1_000``), range-checked against the type's size and
  signedness; a ``char`` also takes one character;
* ``bool`` (``_Bool``): ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``;
* enums: a value by name (``RED``) or a number that fits the enum's size;
* ``char`` / ``u8`` arrays: the string's UTF-8 bytes, NUL-padded (at most the
  array's length);
* ``float`` / ``double``: a Python float literal.

Anything else (structs, other arrays, pointers) cannot be given as text.  Every
error is a :class:`~pybpf.errors.BPFError` naming the variable and its type.
Pure: no kernel calls.
"""
from __future__ import annotations

from typing import Any, Optional

from ..btf import BTF
from ..btf import types as T
from ..errors import BPFError

_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n"})


def parse_value(btf: BTF, type_id: int, text: str, name: str) -> Any:
    """The value ``text`` spells for the variable ``name`` of BTF type ``type_id``."""
    spelled = btf.type_name(type_id)
    tid = btf.resolve(type_id)
    t = btf[tid]

    def fail(why: str) -> BPFError:
        return BPFError(f"{name} ({spelled}): {text!r} {why}")
    if isinstance(t, T.Int) and t.is_bool:
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise fail("is not a boolean (true/false, yes/no, on/off, 1/0)")
    if isinstance(t, T.Enum):
        for label, value in t.values:
            if label == text.strip():
                return value
        labels = ", ".join(label for label, _ in t.values[:16]) or "none"
        number = _integer(text)
        if number is None:
            raise fail(f"is not one of its values ({labels}) nor a number")
        return _in_range(number, t.size, t.signed or number < 0, fail)
    if isinstance(t, T.Int):
        number = _integer(text)
        if number is None and t.size == 1 and len(text) == 1:
            number = ord(text)
        if number is None:
            raise fail("is not an integer (decimal, 0x hex, 0o octal or 0b binary)")
        return _in_range(number, t.size, t.signed, fail)
    if isinstance(t, T.Float):
        try:
            return float(text)
        except ValueError:
            raise fail("is not a floating-point number") from None
    if isinstance(t, T.Array) and _is_byte(btf, t.type):
        raw = text.encode()
        if len(raw) > t.nelems:
            raise fail(f"is {len(raw)} bytes long, the array holds {t.nelems}")
        return raw.ljust(t.nelems, b"\0")
    raise BPFError(f"{name} ({spelled}): a {type(t).__name__.lower()} cannot be set from "
                   "text (only integers, bools, enums, floats and char arrays)")


def _is_byte(btf: BTF, type_id: int) -> bool:
    t = btf[btf.resolve(type_id)]
    return isinstance(t, T.Int) and t.size == 1 and not t.is_bool


def _integer(text: str) -> Optional[int]:
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def _in_range(number: int, size: int, signed: bool, fail: Any) -> int:
    bits = size * 8
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= number <= high:
        raise fail(f"is out of range [{low}, {high}]")
    return number
