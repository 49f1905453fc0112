"""Bad params.yaml and profiles, round 3 of the battery: every case is one true line.

`dvc exp run -S` leaves its bad value in params.yaml (the line says so and how to get good
values back without losing the user's own edits), profile names never climb out of
profiles/, broken files are one line, values are shown in YAML words, a YAML error names the
line that opened the unclosed bracket, an empty file is called empty.
"""

import shutil

import pytest

from conftest import ROOT, run, set_params
from nnstudies import params, profiles, yamlfile
from nnstudies.errors import UserError

VALIDATE = ["python", str(ROOT / "stages" / "validate_params.py"), "--out", "params.ok"]


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    return tmp_path


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---- 5: `dvc exp run -S` with a bad value ------------------------------------------------


@pytest.mark.pipeline
def test_exp_run_bad_value_says_params_yaml_holds_it_and_keeps_the_users_edits(repo):
    """DVC writes -S values into the workspace params.yaml before any stage runs and leaves
    them there when the run fails; the line says so, and what it suggests restores the
    committed value while the user's own uncommitted edit (here kmnist.lin.lr) survives."""
    path = repo / "params.yaml"
    path.write_text(path.read_text().replace("  lin:                    # 784 -> 10, log-softmax\n"
                                             "    lr: 0.01\n",
                                             "  lin:                    # 784 -> 10, log-softmax\n"
                                             "    lr: 0.02\n", 1))
    assert params.read(path)["kmnist"]["lin"]["lr"] == 0.02
    proc = run(["dvc", "exp", "run", "-S", "hid=abc", "train_checker"], repo, check=False,
               NNSTUDIES_TRACKING="off")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert line == ("error: params.yaml: hid = 'abc': must be an integer from 1 to 64 (no other "
                    "stage ran and no result was removed, but `dvc exp run -S` has written its "
                    "values into params.yaml; `dvc exp run -S hid=6` (the "
                    "committed value) keeps your other uncommitted changes (kmnist.lin.lr), "
                    "`git checkout params.yaml` would drop them)")
    assert params.read(path)["hid"] == "abc"  # what the line says is true
    assert not (repo / "models" / "checker.pt").exists()
    run(["dvc", "exp", "run", "-S", "hid=6", "validate_params"], repo, NNSTUDIES_TRACKING="off")
    now = params.read(path)
    assert now["hid"] == 6 and now["kmnist"]["lin"]["lr"] == 0.02


@pytest.mark.pipeline
def test_exp_run_temp_bad_value_says_the_workspace_is_unchanged(repo):
    before = (repo / "params.yaml").read_bytes()
    proc = run(["dvc", "exp", "run", "--temp", "-S", "hid=abc", "validate_params"], repo,
               check=False, NNSTUDIES_TRACKING="off")
    assert proc.returncode != 0
    assert ("hid = 'abc': must be an integer from 1 to 64 (no other stage ran and no result was "
            "removed; this experiment ran in a temporary copy (--temp or --queue): your "
            "params.yaml is unchanged, run it again with an allowed value)") in proc.stderr
    assert (repo / "params.yaml").read_bytes() == before


def test_committed_bad_value_is_not_blamed_on_the_edit(repo):
    """A bad value that is already committed: `git checkout` would not help, and says so."""
    set_params(repo, hid=0)
    run("git -c user.name=t -c user.email=t@t commit -qam bad", repo)
    set_params(repo, **{"kmnist.lin.lr": 0.5})
    line = one_error_line(run(VALIDATE, repo, check=False))
    assert line.endswith("hid = 0: must be an integer from 1 to 64 (no other stage ran and no "
                         "result was removed; the committed params.yaml holds this too: fix it there)")


def test_hand_edit_of_the_bad_key_only_suggests_git_checkout(repo):
    set_params(repo, **{"checker.hand.hid_bias": [1, 2]})
    line = one_error_line(run(VALIDATE, repo, check=False))
    assert line.endswith("(no other stage ran and no result was removed; `git checkout "
                         "params.yaml` puts the committed file back (it holds no other change))")


def test_values_that_do_not_fit_together_blame_the_one_edited(repo):
    """An edit that makes a committed value too large (fewer training sequences than a
    net's epochs) is the edit's fault: the line suggests putting the edited key back."""
    set_params(repo, **{"seq.grammar.train_sequences": 601, "kmnist.lin.lr": 0.5})
    line = one_error_line(run(VALIDATE, repo, check=False))
    assert "seq.grammar.train_sequences is 601 (raise it)" in line
    assert "holds this too" not in line
    committed = params.read(ROOT / "params.yaml")["seq"]["grammar"]["train_sequences"]
    assert line.endswith(f"setting seq.grammar.train_sequences back to {committed} (the committed "
                         "value) keeps your other uncommitted changes (kmnist.lin.lr), `git "
                         "checkout params.yaml` would drop them)")


# ---- 6: profile names that are paths -------------------------------------------------------


@pytest.mark.parametrize("name", ["../params", "ci.yaml", "/etc/passwd", "sub/ci", "", ".hidden",
                                  "..", "ci\n"])
def test_profile_name_that_is_not_a_plain_name_is_refused(workdir, name):
    before = (workdir / "params.yaml").read_bytes()
    with pytest.raises(UserError) as err:
        profiles.apply(name, workdir / "params.yaml", workdir / "profiles")
    assert str(err.value) == (f"profile {yamlfile.show(name)}: not a profile name (available in "
                              f"{workdir / 'profiles'}/: ci, default, paper)")
    assert "\n" not in str(err.value)
    assert (workdir / "params.yaml").read_bytes() == before


def test_profile_command_refuses_a_path_in_one_line(workdir):
    before = (workdir / "params.yaml").read_bytes()
    line = one_error_line(run(["nnstudies", "profile", "../params"], workdir, check=False))
    assert line == ("error: profile '../params': not a profile name (available in profiles/: "
                    "ci, default, paper)")
    assert (workdir / "params.yaml").read_bytes() == before


# ---- 13: broken params.yaml or profile files ---------------------------------------------


IN_WEIGHT = "    in_weight:            # 4 units x 2 inputs\n" + "    - - 1.0\n      - 1.0\n" * 4


def _unclosed(text: str) -> str:
    """The hand net's block list typed as a flow list whose closing bracket is missing."""
    assert IN_WEIGHT in text
    return text.replace(IN_WEIGHT, "    in_weight: [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]\n", 1)


@pytest.mark.parametrize("params_text,profile_text,expected", [
    (_unclosed, None, "error: params.yaml: not valid YAML at line "),
    ("", None, "error: params.yaml: holds no keys (empty, or only comments)"),
    ("# only a comment\n", None, "error: params.yaml: holds no keys (empty, or only comments)"),
    ("- hid\n", None, "error: params.yaml: must map keys (profile, hid, "),
    ("MISSING", None, "error: params.yaml: cannot read it (No such file or directory)"),
    (None, "kmnist: [\n", "error: profiles/ci.yaml: not valid YAML at line "),
    (None, "- hid: 4\n", "error: profiles/ci.yaml: must map params.yaml keys to values, but "
                         "holds a list"),
    (None, "just words\n", "error: profiles/ci.yaml: must map params.yaml keys to values, but "
                           "holds the string 'just words'"),
    (None, b"hid: \xff\n", "error: profiles/ci.yaml: not a text file (not UTF-8)"),
    (None, "hid: true\n", "error: params.yaml + profiles/ci.yaml: hid = true: must be an "
                          "integer from 1 to 64"),
    (None, "kmnist: {lin: {lr: {x: 1}}}\n", "error: profiles/ci.yaml: 'lr' is not a group"),
])
def test_profile_on_broken_files_is_one_line_and_changes_nothing(workdir, params_text,
                                                                  profile_text, expected):
    path, profile = workdir / "params.yaml", workdir / "profiles" / "ci.yaml"
    if params_text == "MISSING":
        path.unlink()
    elif params_text is not None:
        path.write_text(params_text(path.read_text()) if callable(params_text) else params_text)
    if isinstance(profile_text, bytes):
        profile.write_bytes(profile_text)
    elif profile_text is not None:
        profile.write_text(profile_text)
    before = path.read_bytes() if path.exists() else None
    line = one_error_line(run(["nnstudies", "profile", "ci"], workdir, check=False))
    assert line.startswith(expected), line
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in workdir.iterdir()) == sorted(
        ["profiles"] + (["params.yaml"] if before is not None else []))  # no temp file left


def test_empty_profile_sets_only_the_profile_key(workdir):
    (workdir / "profiles" / "blank.yaml").write_text("# nothing to override\n")
    profiles.apply("blank", workdir / "params.yaml", workdir / "profiles")
    changed = params.flatten(params.read(workdir / "params.yaml"))
    assert changed == {**params.flatten(params.read(ROOT / "params.yaml")), "profile": "blank"}


# ---- 17: YAML words, never Python reprs ----------------------------------------------------


@pytest.mark.parametrize("value,word", [
    (True, "true"), (False, "false"), (None, "null"), (6, "6"), (0.001, "0.001"),
    (float("inf"), ".inf"), (float("-inf"), "-.inf"), (float("nan"), ".nan"),
    ("abc", "'abc'"), ("true", "'true'"), ("it's", "'it''s'"), ([1, None, "x"], "[1, null, 'x']"),
    ("two\nlines\t", '"two\\nlines\\t"'),  # stays one line
    ({"min": True, "true": 1}, "{min: true, 'true': 1}"),
])
def test_values_are_shown_as_yaml_writes_them(value, word):
    assert yamlfile.show(value) == word
    again = yamlfile.parse(f"v: {word}\n", "here")["v"]  # and YAML reads the word back
    assert yamlfile.show(again) == word


@pytest.mark.parametrize("text,word", [("true", "true"), ("null", "null"), ("", "null"),
                                       ("[1, ~]", "[1, null]"), ("'6'", "'6'")])
def test_stage_line_shows_the_value_in_yaml_words(tmp_path, text, word):
    src = (ROOT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(src.replace("\nhid: 6 ", f"\nhid: {text} ", 1))
    line = one_error_line(run(VALIDATE, tmp_path, check=False))
    assert f"error: params.yaml: hid = {word}: must be an integer from 1 to 64" in line


# ---- 18: the line of a YAML syntax error ---------------------------------------------------


def test_unclosed_bracket_is_reported_on_its_own_line(tmp_path):
    src = (ROOT / "params.yaml").read_text()
    n = 1 + src.splitlines().index(IN_WEIGHT.splitlines()[0])
    (tmp_path / "params.yaml").write_text(_unclosed(src))
    with pytest.raises(params.ParamError) as err:
        params.read(tmp_path / "params.yaml")
    assert f"not valid YAML at line {n}, column 16: this [ is never closed (expected ',' or ']', " \
           f"but got '<scalar>' at line {n + 1}, column 5)" in str(err.value)


@pytest.mark.parametrize("text,where", [
    ("a: 1\nb: {c: 2\nd: 3\n", "line 2, column 4: this { is never closed"),
    ("a: 1\nb: 'open\n", "line 2, column 4: this ' is never closed"),
    ("a: 1\na: 2\n", "line 2, column 1: found duplicate key"),  # the duplicate's own line
    ("a:\n  b: 1\n c: 2\n", "line 3, column 2: expected <block end>"),
])
def test_other_yaml_errors_name_the_line_to_fix(text, where):
    with pytest.raises(UserError, match=f"x.yaml: not valid YAML at {where}"):
        yamlfile.parse(text, "x.yaml")


# ---- 19: an empty params.yaml --------------------------------------------------------------


@pytest.mark.parametrize("text,message", [
    ("", "holds no keys (empty, or only comments); it must map profile, hid, "),
    ("\n# all commented out\n", "holds no keys (empty, or only comments)"),
    ("[1, 2]\n", "must map keys (profile, hid, "),
    ("6\n", "but holds the number 6"),
])
def test_empty_or_non_mapping_params_in_yaml_words(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(params.ParamError) as err:
        params.load(["hid"], tmp_path / "params.yaml")
    assert message in str(err.value) and "NoneType" not in str(err.value)
