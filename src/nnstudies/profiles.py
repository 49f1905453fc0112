"""Profiles: named sets of param overrides (profiles/<name>.yaml) merged into params.yaml.

``nnstudies profile ci`` rewrites params.yaml with the CI profile's values, keeping its
comments (ruamel.yaml round-trip), and sets the top-level ``profile`` key so the gate
knows which bounds of gates.yaml apply.  The result is validated before it is written.
"""

from __future__ import annotations

import io
from pathlib import Path

from nnstudies import atomic, params
from nnstudies.errors import UserError


def _merge(base, overrides, where: str):
    for key, value in overrides.items():
        if isinstance(value, dict):
            if key not in base or not isinstance(base[key], dict):
                raise UserError(f"{where}: '{key}' is not a group in params.yaml")
            _merge(base[key], value, where)
        else:
            base[key] = value


def apply(name: str, params_path: str | Path = "params.yaml", profiles_dir: str | Path = "profiles"):
    from ruamel.yaml import YAML

    profile_path = Path(profiles_dir) / f"{name}.yaml"
    if not profile_path.exists():
        known = sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))
        raise UserError(f"profile '{name}': no {profile_path} (known: {', '.join(known) or 'none'})")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a line of params.yaml
    doc = yaml.load(Path(params_path).read_text())
    overrides = yaml.load(profile_path.read_text()) or {}
    _merge(doc, overrides, str(profile_path))
    doc["profile"] = name
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    text = buffer.getvalue()
    # Validate the merged file as a whole before replacing params.yaml.
    tmp = Path(params_path).with_name(".params.profile-check.yaml")
    tmp.write_text(text)
    try:
        params.load(list(params.SCHEMA), tmp)
    except params.ParamError as exc:
        raise UserError(str(exc).replace(str(tmp), f"{params_path} + {profile_path}")) from None
    finally:
        tmp.unlink(missing_ok=True)
    atomic.write_text(params_path, text)
