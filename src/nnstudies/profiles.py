"""Profiles: named sets of param overrides (profiles/<name>.yaml) merged into params.yaml.

``nnstudies profile ci`` rewrites params.yaml with the CI profile's values, keeping its
comments (ruamel.yaml round-trip, in the style `dvc exp run -S` writes), and sets the top-level
``profile`` key so the gate knows which bounds of gates.yaml apply.  The result is validated before it is written.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from nnstudies import atomic, params, yamlfile
from nnstudies.errors import UserError

# A plain file name, never a path: `../params` would read (and could write) outside profiles/.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def available(profiles_dir: str | Path = "profiles") -> list[str]:
    return sorted(p.stem for p in Path(profiles_dir).glob("*.yaml") if NAME.fullmatch(p.stem))


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
    if not NAME.fullmatch(name) or not profile_path.is_file():
        what = "no such profile" if NAME.fullmatch(name) else "not a profile name"
        raise UserError(f"profile {yamlfile.show(name)}: {what} (available in {profiles_dir}/: "
                        f"{', '.join(available(profiles_dir)) or 'none'})")
    params.read(params_path)  # a missing, empty or invalid params.yaml: one line
    # The writer `dvc exp run -S` uses (dvc.utils.serialize._yaml: a round trip, block style,
    # lists set anew, 80 columns), so a profile switch and an experiment both change only the
    # lines of the values they set (tests/test_params_style.py).
    yaml = YAML()
    yaml.default_flow_style = False
    doc = yamlfile.read(params_path, params.ParamError, yaml)  # the same file, comments kept
    overrides = yamlfile.read(profile_path, UserError)  # plain values: lists come out in block style
    if overrides is None:  # empty, or only comments: the profile changes only `profile`
        overrides = {}
    if not isinstance(overrides, dict):
        raise UserError(f"{profile_path}: must map params.yaml keys to values, but holds "
                        f"{yamlfile.kind(overrides)}")
    _merge(doc, overrides, str(profile_path))
    doc["profile"] = name
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    text = buffer.getvalue()
    # Validate the merged file as a whole before replacing params.yaml.
    params.check(yamlfile.parse(text, params_path), list(params.SCHEMA),
                 f"{params_path} + {profile_path}")
    try:
        atomic.write_text(params_path, text)
    except OSError as exc:
        raise UserError(f"{params_path}: cannot write it ({exc.strerror}); it is unchanged") from None
