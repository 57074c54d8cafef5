"""Price profiles: versioned unit prices in ``cost/profiles/NAME.toml``, chosen by name or by path.

A user file may stand alone or say ``extends = "NAME"`` and change only some keys (tables merge
key by key). Every price is checked on load: a bad file is one clear message, never a wrong bill.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenario_pipeline.errors import UsageError
from scenario_pipeline.settings import CostSettings

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "aws-us-east-1-2026-11"

_REQUIRED: dict[str, tuple[str, ...]] = {
    "compute": ("vcpu_hour", "gb_hour", "vcpus_per_thread", "plan_gb_per_vcpu"),
    "storage": ("put_per_1000", "list_per_1000", "get_per_1000", "storage_tiers_gb", "storage_gb_month"),
    "warehouse": ("rpu_hour", "base_rpu", "min_seconds"),
}


@dataclass(frozen=True)
class ModelPrice:
    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True)
class PriceProfile:
    name: str
    description: str
    as_of: str
    source: str  # the file(s) it was read from, most specific first
    vcpu_hour: float
    gb_hour: float
    vcpus_per_thread: float
    plan_gb_per_vcpu: float
    put_per_1000: float
    list_per_1000: float
    get_per_1000: float
    storage_tiers_gb: tuple[float, ...]
    storage_gb_month: tuple[float, ...]
    rpu_hour: float
    base_rpu: float
    min_seconds: float
    default_model: str | None
    models: dict[str, ModelPrice]
    services: dict[str, str]

    def storage_month_usd(self, gb: float) -> float:
        """One month of ``gb`` stored, priced tier by tier."""
        total, lower = 0.0, 0.0
        for upper, price in zip(self.storage_tiers_gb, self.storage_gb_month, strict=True):
            if gb <= lower:
                break
            total += (min(gb, upper) - lower) * price
            lower = upper
        return total

    def model(self, name: str | None = None) -> tuple[str, ModelPrice] | None:
        name = name or self.default_model
        if name is None:
            return None
        if name not in self.models:
            raise UsageError(f"price profile {self.name!r} has no prices for model {name!r}; it knows {sorted(self.models)}")
        return name, self.models[name]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "as_of": self.as_of, "description": self.description, "source": self.source}


def is_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref


def normalize_ref(ref: str) -> str:
    """A built-in name as is; a file as an absolute path (a flow may run in another folder), checked to load."""
    load_profile(ref)
    return str(Path(ref).expanduser().resolve()) if is_path(ref) else ref


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read price profile {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"price profile {path} is not valid TOML: {exc}") from exc


def _resolve(ref: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """The merged document for a name or a path, following ``extends``."""
    if ref in seen:
        raise UsageError(f"price profile {ref!r} extends itself (through {' -> '.join(seen)})")
    looks_like_path = is_path(ref)
    if looks_like_path:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise UsageError(
                f"price profile file {ref} does not exist; give a profile name ({', '.join(profile_names())}) or a .toml path"
            )
    else:
        path = PROFILE_DIR / f"{ref}.toml"
        if not path.is_file():
            raise UsageError(f"unknown price profile {ref!r}; choose one of {', '.join(profile_names())} or give a .toml file")
    doc = _read(path)
    sources = [str(path) if looks_like_path else f"{ref} (built in)"]
    parent = doc.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise UsageError(f"price profile {path}: 'extends' must be a profile name, got {parent!r}")
        base, more = _resolve(parent, (*seen, ref))
        doc = _merge(base, doc)
        sources += more
    return doc, sources


def _price(doc: dict[str, Any], where: str, group: str, key: str) -> Any:
    value = doc.get(group, {}).get(key)
    if value is None:
        raise UsageError(f"price profile {where} lacks [{group}] {key}; add it or extend a built-in profile")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
            raise UsageError(f"price profile {where}: [{group}] {key} must be a number >= 0, got {value!r}")
    return value


def load_profile(ref: str | None = None) -> PriceProfile:
    """A profile by built-in name or .toml path; ``None`` means SCENARIO_COST_PROFILE or the default."""
    if ref is None:
        ref = CostSettings().profile
    doc, sources = _resolve(ref, ())
    where = sources[0]
    p = {key: _price(doc, where, group, key) for group, keys in _REQUIRED.items() for key in keys}
    tiers, prices = p["storage_tiers_gb"], p["storage_gb_month"]
    if not isinstance(tiers, list) or not isinstance(prices, list) or len(tiers) != len(prices) or not tiers:
        raise UsageError(f"price profile {where}: storage_tiers_gb and storage_gb_month must be lists of the same length")
    if sorted(tiers) != tiers or not math.isinf(tiers[-1]):
        raise UsageError(f"price profile {where}: storage_tiers_gb must rise and end with inf (the last tier has no top)")
    models_doc = dict(doc.get("models", {}))
    default_model = models_doc.pop("default", None)
    models = {}
    for name, m in models_doc.items():
        if not isinstance(m, dict):
            raise UsageError(f"price profile {where}: [models.{name}] must be a table with input_per_1k and output_per_1k")
        models[name] = ModelPrice(*(float(_price({"m": m}, where, "m", k)) for k in ("input_per_1k", "output_per_1k")))
    if default_model is not None and default_model not in models:
        raise UsageError(
            f"price profile {where}: models.default is {default_model!r}, which has no [models.{default_model}] prices"
        )
    return PriceProfile(
        name=str(doc.get("name") or Path(where).stem),
        description=str(doc.get("description", "")),
        as_of=str(doc.get("as_of", "unknown")),
        source=" <- ".join(sources),
        vcpu_hour=float(p["vcpu_hour"]),
        gb_hour=float(p["gb_hour"]),
        vcpus_per_thread=float(p["vcpus_per_thread"]),
        plan_gb_per_vcpu=float(p["plan_gb_per_vcpu"]),
        put_per_1000=float(p["put_per_1000"]),
        list_per_1000=float(p["list_per_1000"]),
        get_per_1000=float(p["get_per_1000"]),
        storage_tiers_gb=tuple(float(t) for t in tiers),
        storage_gb_month=tuple(float(x) for x in prices),
        rpu_hour=float(p["rpu_hour"]),
        base_rpu=float(p["base_rpu"]),
        min_seconds=float(p["min_seconds"]),
        default_model=default_model,
        models=models,
        services={g: str(doc.get(g, {}).get("service", g)) for g in ("compute", "storage", "warehouse")},
    )
