"""Security: no secrets in the repo, DVC credentials stay out of git, and every MLflow
server the project starts listens on 127.0.0.1 only."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT

SECRETS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key assignment": re.compile(
        r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?(?!test\b)[A-Za-z0-9/+]{40}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    # scheme://user:<password>@host with a real password; a placeholder ($VAR, <pw>, {pw},
    # ***) is fine.  The team setup passes the database password as PGPASSWORD instead.
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/@:'\"]+:(?![$<{*])[^\s/@'\"]+@"),
    # PGPASSWORD=..., MLFLOW_TRACKING_PASSWORD=..., admin_password = ... (shell, .env, ini)
    "password assignment": re.compile(
        r"(?m)^\s*(?:export\s+)?(?:[A-Z_]*(?:PASSWORD|PASSWD|TOKEN)|admin_password)\s*=\s*"
        r"['\"]?(?![$<{*])[^\s'\"]{4,}"),
}


def repo_files():
    """Every file git would commit (tracked, or new and not ignored)."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    return [ROOT / n for n in names if n and (ROOT / n).is_file()]


def test_no_secrets_in_the_repo():
    found = []
    for path in repo_files():
        text = path.read_bytes()[:2_000_000].decode("utf-8", "ignore")
        found += [f"{path.relative_to(ROOT)}: {what}" for what, pattern in SECRETS.items()
                  if pattern.search(text)]
    assert not found, found


def test_the_scan_finds_planted_credentials_and_passes_placeholders():
    planted = {  # split, so that this file itself holds none of them
        "password in a URL": ["postgresql://mlflow:" + "s3cr3t@db:5432/mlflow",
                              "https://ann:" + "hunter22@mlflow.example.org"],
        "password assignment": ["export PGPASSWORD=" + "s3cr3t-pw",
                                "admin_password = " + "changeme1",
                                "MLFLOW_TRACKING_PASSWORD=" + "'pw1234'"],
    }
    for what, samples in planted.items():
        for sample in samples:
            assert SECRETS[what].search(sample), (what, sample)
    placeholders = ["postgresql://mlflow@127.0.0.1:5432/mlflow", "s3://mlflow/artifacts",
                    "postgresql://mlflow:${PGPASSWORD}@db/mlflow", "https://<user>:<password>@host",
                    'export MLFLOW_TRACKING_PASSWORD="$(pass show mlflow)"', "PGPASSWORD=$PW",
                    "read -rs PGPASSWORD", "http://127.0.0.1:5000/#/experiments/1"]
    assert [s for s in placeholders if any(p.search(s) for p in SECRETS.values())] == []


def test_dvc_credentials_live_only_in_the_untracked_local_config():
    config = (ROOT / ".dvc" / "config").read_text().lower()
    for key in ("access_key_id", "secret_access_key", "password", "session_token", "key_file"):
        assert key not in config, f".dvc/config holds {key}: use `dvc remote modify --local`"
    assert "/config.local" in (ROOT / ".dvc" / ".gitignore").read_text().split()


def test_project_starts_mlflow_servers_on_loopback_only():
    """Every `mlflow server`/`mlflow ui` command line the code builds (argv lists in Python,
    command lines in CI scripts) names --host 127.0.0.1; nothing binds 0.0.0.0."""
    launches = 0
    sources = [*ROOT.glob("src/**/*.py"), *ROOT.glob("stages/*.py"), *ROOT.glob(".ci/*")]
    for path in sources:
        text = path.read_text()
        assert "0.0.0.0" not in text, f"{path.relative_to(ROOT)} binds every interface"
        launch = (r"[\"']mlflow[\"'],\s*[\"'](?:server|ui)[\"']" if path.suffix == ".py"
                  else r"^\s*[^#\n]*\bmlflow (?:server|ui)\b")
        for call in re.finditer(launch, text, re.MULTILINE):
            launches += 1
            line_end = text.find("\n", call.end())
            command = text[call.start():line_end if line_end >= 0 else None]
            assert re.search(r"[\"']--host[\"'],\s*[\"']127\.0\.0\.1[\"']|--host 127\.0\.0\.1",
                             command), f"{path.relative_to(ROOT)}: {command!r}"
    assert launches >= 1  # the `nnstudies ui` command


def test_docs_show_mlflow_servers_on_loopback_only():
    """Every `mlflow server`/`mlflow ui` command in the docs' code blocks (what people paste),
    continuation lines joined, names --host 127.0.0.1."""
    shown = []
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                if re.search(r"^[^#]*\bmlflow (?:server|ui)\b", line):
                    shown.append(path.name)
                    assert "--host 127.0.0.1" in line and "0.0.0.0" not in line, (path.name, line)
    assert {"reliability.md", "teams.md"} <= set(shown), shown
