"""Method settings as data: each option's type, default, bounds and help, and the one resolver that checks them.

A method's options are declared once, on its registry entry (``discovery.methods``); the CLI generates its flags
from them, notebooks pass the same names as keyword arguments, and ``resolve`` turns what was given (strings from a
command line, or Python values) into the complete, checked settings a run records. Every refusal is a
``SettingsError`` naming the flag, raised before any model is loaded or any run row is written.

Torch-free: the CLI builds ``circuits discover --help`` from this without importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from discovery.errors import SettingsError
from discovery.graph import InvalidKey, parse_node

# Kinds of option values. Lists are given as comma-separated text on the command line.
FLOAT, INT, BOOL, CHOICE, FLOATS, NODES = "float", "int", "bool", "choice", "floats", "nodes"
MAX_LIST = 100  # the most values a list option takes (thresholds, seed nodes)


@dataclass(frozen=True)
class Option:
    """One setting of a method.

    ``name`` is the keyword the method's function takes; ``flag`` the CLI spelling (default ``--name-with-dashes``).
    Numbers are bounded by ``low``/``high`` (``low_open``/``high_open`` exclude the bound); ``default`` None means
    "not set" (the method decides, or a group rule such as EAP's one-of applies).
    """

    name: str
    kind: str
    help: str
    default: Any = None
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    flag: Optional[str] = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """The checked value of this option, from text or a Python value; SettingsError names the flag."""
        if value is None:
            return None
        try:
            return _PARSERS[self.kind](self, value)
        except SettingsError as err:
            raise SettingsError(f"{self.cli_flag}: {err}") from None

    def bounds(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)

    def check_range(self, x: float) -> float:
        ok = math.isfinite(x)
        if ok and self.low is not None:
            ok = x > self.low if self.low_open else x >= self.low
        if ok and self.high is not None:
            ok = x < self.high if self.high_open else x <= self.high
        if not ok:
            raise SettingsError(f"must be a finite number {self.bounds()}, got {x:g}".replace("number , ", ""))
        return x


def _number(text: Any, kind: type) -> Any:
    if isinstance(text, bool):
        raise SettingsError(f"expected a number, got {text!r}")
    if isinstance(text, str):
        try:
            return kind(text.strip())
        except ValueError:
            raise SettingsError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    if kind is int and isinstance(text, float) and text.is_integer():
        return int(text)
    if not isinstance(text, (int, float)) or (kind is int and not isinstance(text, int)):
        raise SettingsError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}")
    return kind(text)


def _float(opt: Option, value: Any) -> float:
    return opt.check_range(float(_number(value, float)))


def _int(opt: Option, value: Any) -> int:
    x = _number(value, int)
    opt.check_range(float(x))
    return int(x)


def _bool(opt: Option, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise SettingsError(f"expected true or false, got {value!r}")


def _choice(opt: Option, value: Any) -> str:
    if not isinstance(value, str) or value not in opt.choices:
        raise SettingsError(f"choose one of {', '.join(opt.choices)}, got {value!r}")
    return value


def comma_list(value: Any) -> list[Any]:
    """``"0.7,0.8"`` or ``[0.7, 0.8]`` -> a list; the one comma-list reader of the project."""
    items = [t.strip() for t in value.split(",")] if isinstance(value, str) else list(value)
    items = [t for t in items if t != ""]
    if not items:
        raise SettingsError("expected a comma-separated list with at least one value")
    if len(items) > MAX_LIST:
        raise SettingsError(f"at most {MAX_LIST} values, got {len(items)}")
    return items


def _floats(opt: Option, value: Any) -> list[float]:
    return [opt.check_range(float(_number(v, float))) for v in comma_list(value)]


def _nodes(opt: Option, value: Any) -> list[str]:
    """Canonical node keys (``9.1`` -> ``a9.1``); kept as text so settings stay plain JSON."""
    out = []
    for v in comma_list(value):
        try:
            out.append(v.key if hasattr(v, "key") else parse_node(str(v)).key)
        except InvalidKey as err:
            raise SettingsError(str(err)) from None
    return list(dict.fromkeys(out))


_PARSERS: dict[str, Callable[[Option, Any], Any]] = {
    FLOAT: _float, INT: _int, BOOL: _bool, CHOICE: _choice, FLOATS: _floats, NODES: _nodes,
}


@dataclass(frozen=True)
class OptionSet:
    """A method's options, with a rule tying several together (e.g. EAP: exactly one of threshold/top_k/target)."""

    options: tuple[Option, ...]
    one_of: tuple[str, ...] = ()  # exactly one of these must be set ...
    one_of_default: Mapping[str, Any] = field(default_factory=dict)  # ... and this is set when none is

    def get(self, name: str) -> Optional[Option]:
        return next((o for o in self.options if o.name == name), None)

    def flag(self, name: str) -> str:
        option = self.get(name)
        return option.cli_flag if option else "--" + name.replace("_", "-")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)


def resolve(method: str, options: OptionSet, given: Mapping[str, Any],
            flag_of: Callable[[str], str] = lambda n: "--" + n.replace("_", "-")) -> dict[str, Any]:
    """Every setting of ``method``: the given ones checked, the rest at their defaults.

    ``given`` maps option names to values (None means "not given"); a name the method does not take is refused,
    naming its flag (``flag_of`` spells flags for options of other methods).
    """
    unknown = [k for k, v in given.items() if v is not None and options.get(k) is None]
    if unknown:
        flags = ", ".join(flag_of(k) for k in unknown)
        raise SettingsError(f"{method} does not take {flags} (its options: "
                            f"{', '.join(o.cli_flag for o in options.options) or 'none'})")
    out = {o.name: o.parse(given.get(o.name)) for o in options.options}
    if options.one_of:
        chosen = [n for n in options.one_of if out.get(n) is not None]
        if len(chosen) > 1:
            raise SettingsError(f"{method} takes one of {', '.join(map(options.flag, options.one_of))}, not "
                                f"{' and '.join(map(options.flag, chosen))} together")
        if not chosen:
            out.update(options.one_of_default)
    for o in options.options:
        if out[o.name] is None and o.default is not None:
            out[o.name] = o.default
    return out
