"""Every command the docs print runs as printed, and prints what the docs say it prints.

The commands are read from the fenced ```bash blocks of README.md, DATASETS.md and
docs/*.md when the tests run (tests/fixtures/doc_commands.py), so a command added to the
docs later is covered without touching this file; a block that cannot run here carries
``<!-- docs-test: skip (reason) -->`` above it and shows up as a skipped test with that
reason. Each command line runs in bash, in document order, from a scratch folder that
looks like the repository (its top-level entries linked, an output/ of its own), so later
commands read what earlier ones wrote, as a reader following the docs would
(pre-training -> transfer -> tables). Nothing is edited; only added:

* environment settings: DATA = tiny fake copies of every dataset in its real layout
  (tests/fixtures/fake_datasets.py) plus the generated demo; BACKBONE=tiny-vit and
  EPOCHS=1, the sweeps' documented smoke-run knobs (scripts/common.sh);
  OMP_NUM_THREADS=1 and HF_HUB_OFFLINE=1; and `python3` / PYTHON / `torchrun` that start in
  milliseconds (tests/fixtures/warm_python.py: the same interpreter, forked from a
  process that has imported torch; `pip install` gets --no-index, so it only checks);
* trailing KEY VALUE opts on the programs that take them and build a CLIP (train.py,
  tools/export_classifier.py): BACKBONE's overrides (scripts/backbone_opts.py) and
  DATALOADER.NUM_WORKERS 0 (the README's 50-epoch example would start workers 50 times).

What each command must print is checked by the programs it runs (OUTPUT_CHECKS), and
test_readme_chain_fills_the_tables checks the README's pre-training chain end to end.

    python3 tests/test_docs_commands.py    # lists every documented command and how it is exercised
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

if __package__ in (None, ""):  # run as a script: the listing below
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.fixtures.doc_commands import REPO_ROOT, DocCommand, documented_commands  # noqa: E402

SMOKE_ENV = {"BACKBONE": "tiny-vit", "EPOCHS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
CLIP_PROGRAMS = ("train.py", "tools/export_classifier.py")  # trailing KEY VALUE opts, build a CLIP
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&"}
PRELOAD = ["engine.launch", "trainers", "datasets", "models", "tools.results.collect", "tools.results.chart",
           "tools.results.tables", "tools.results.reference", "tabulate",
           "torch.distributed.run", "torch.utils.tensorboard"]
COMMAND_TIMEOUT = 600
ACCURACY = re.compile(r"^\* accuracy: [\d.]+%$", re.M)
NUMBER = re.compile(r"^\d+\.\d+")

COMMANDS = documented_commands()


# ------------------------------------------------------------------------------ running


def _load_backbone_opts():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "backbone_opts", os.path.join(REPO_ROOT, "scripts", "backbone_opts.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.backbone_opts


def trailing_opts(text):
    """The KEY VALUE words appended to ``text``: none unless it runs a CLIP program."""
    words = shlex.split(text)
    if not any(word.endswith(program) for word in words for program in CLIP_PROGRAMS):
        return []
    if SHELL_OPERATORS & set(words):
        raise AssertionError(f"{text!r}: a train.py / export command must be a line of its own, "
                             "so that KEY VALUE opts can be appended to it")
    config = words[words.index("--config-file") + 1]
    opts = [word for pair in _load_backbone_opts()(SMOKE_ENV["BACKBONE"], os.path.join(REPO_ROOT, config))
            for word in pair]
    if any(word.endswith("train.py") for word in words):
        opts += ["DATALOADER.NUM_WORKERS", "0"]
    return opts


@dataclass
class Outcome:
    command: DocCommand
    line: str  # what bash ran
    status: int
    stdout: str
    stderr: str
    seconds: float
    duplicate_of: str = ""

    def tail(self, chars=4000):
        return f"$ {self.line}\n--- stdout ---\n{self.stdout[-chars:]}\n--- stderr ---\n{self.stderr[-chars:]}"


def base_environment():
    """The caller's environment with the smoke-run settings, and without the sweeps' knobs
    (the docs' defaults apply, not the caller's)."""
    env = dict(os.environ, **SMOKE_ENV)
    for name in ("OUTPUT", "SOURCE", "CFG", "SHOTS", "PRETRAINED", "COMPARE", "DATA"):
        env.pop(name, None)
    return env


def repository_entries():
    """Top-level names of the checkout's files (tracked or new, not ignored: no output/, data/)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                                capture_output=True, text=True, check=True).stdout.split("\n")
        names = {path.split("/")[0] for path in listed if path}
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        names = set(os.listdir(REPO_ROOT)) - {"output", "data", "DATA", "exports"}
    return sorted(name for name in names if not name.startswith(".") and os.path.exists(os.path.join(REPO_ROOT, name)))


class Workspace:
    """A folder that looks like the repository, fake data and the environment commands get."""

    def __init__(self, root, data, python):
        self.root, self.data = root, data
        bin_dir = os.path.dirname(python)
        self.env = dict(base_environment(), DATA=data, PYTHON=python,
                        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    @classmethod
    def create(cls, path, demo_data_root, python):
        from tests.fixtures.fake_datasets import make_all

        root, data = os.path.join(path, "repo"), os.path.join(path, "data")
        os.makedirs(root)
        for name in repository_entries():  # folders linked, files copied: a write never reaches the repo
            source = os.path.join(REPO_ROOT, name)
            if os.path.isdir(source):
                os.symlink(source, os.path.join(root, name))
            else:
                shutil.copy2(source, os.path.join(root, name))
        make_all(data)
        shutil.copytree(os.path.join(demo_data_root, "demo"), os.path.join(data, "demo"))
        return cls(root, data, python)

    def run(self, command):
        opts = trailing_opts(command.text)
        line = command.text + "".join(f" {shlex.quote(word)}" for word in opts)
        started = time.time()
        result = subprocess.run(["bash", "-c", line], cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=COMMAND_TIMEOUT)
        return Outcome(command, line, result.returncode, result.stdout, result.stderr, time.time() - started)

    def path(self, relative):
        return os.path.join(self.root, relative)


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory, demo_data_root):
    """Run every documented command once, in document order: (workspace, {command id: Outcome})."""
    from tests.fixtures.warm_python import WarmPython

    base = tmp_path_factory.mktemp("docs_commands")
    server = WarmPython.start(str(base / "bin"), preload=PRELOAD, repo_root=REPO_ROOT, env=base_environment())
    try:
        workspace = Workspace.create(str(base), demo_data_root, server.python)
        outcomes, first_run = {}, {}
        logs = str(base / "logs")  # every command's full output, for reading a failure
        os.makedirs(logs)
        started = time.time()
        for command in COMMANDS:
            if command.skip:
                continue
            if command.text in first_run:  # printed twice: run once, report both
                earlier = outcomes[first_run[command.text]]
                outcomes[command.id] = Outcome(**{**earlier.__dict__, "command": command,
                                                  "duplicate_of": earlier.command.id})
                continue
            first_run[command.text] = command.id
            outcomes[command.id] = outcome = workspace.run(command)
            with open(os.path.join(logs, command.id.replace("/", "_") + ".txt"), "w") as f:
                f.write(f"exit status {outcome.status}, {outcome.seconds:.1f} s\n{outcome.tail(10 ** 9)}")
        print(f"\ndocs commands: {len(first_run)} run in {time.time() - started:.1f} s; slowest: " + ", ".join(
            f"{o.command.id} {o.seconds:.1f} s" for o in sorted(outcomes.values(), key=lambda o: -o.seconds)[:5]))
        yield workspace, outcomes
    finally:
        server.stop()


# ------------------------------------------------------------------------------ what each prints


def table_rows(text, header_words):
    """Rows (lists of cells) of the first plain-text table whose header has ``header_words``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if all(word in line for word in header_words) and i + 1 < len(lines) and set(lines[i + 1]) <= {"-", " "}:
            rows = []
            for row in lines[i + 2:]:
                if not row.strip():
                    break
                rows.append(re.split(r"\s{2,}", row.strip()))
            return rows
    raise AssertionError(f"no table with {header_words} in:\n{text[-3000:]}")


def parse_results_args(words):
    start = next(i for i, word in enumerate(words) if word.endswith("tools/parse_results.py")) + 1
    args = {"methods": [], "format": "text", "protocol": None, "redirect": None, "chart": None}
    i = start
    while i < len(words):
        word = words[i]
        if word in (">", ">>"):
            args["redirect"] = words[i + 1]
            break
        if word == "--method":
            args["methods"].append(words[i + 1])
        elif word in ("--format", "--chart", "--dir"):
            args[word[2:]] = words[i + 1]
        elif not word.startswith("--") and args["protocol"] is None and i == start:
            args["protocol"] = word
        i += 1
    return args


def method_labels(methods):
    """The row labels parse_results gives its --method values (TRAINER/CFG when a trainer repeats)."""
    parsed = [(m.partition("=")[0] if "=" in m else m.split("/")[0], m.split("=")[-1]) for m in methods]
    trainers = [label for label, _ in parsed]
    return [spec if trainers.count(label) > 1 and "=" not in m and "/" in spec else label
            for (label, spec), m in zip(parsed, methods)]


def check_parse_results(outcome, workspace):
    args = parse_results_args(shlex.split(outcome.command.text))
    text = outcome.stdout
    if args["redirect"]:
        with open(workspace.path(args["redirect"])) as f:
            text = f.read()
    if args.get("dir"):
        rows = [row for row in table_rows(text, ("Seed", "Accuracy", "Log")) if row[0].isdigit()]
        assert rows and all(NUMBER.match(row[1]) for row in rows), text
        assert "Accuracy: " in text
        return
    labels = method_labels(args["methods"])
    if args["format"] == "csv":
        header, *rows = text.splitlines()
        assert header == "protocol,method,dataset,metric,mean,std,seeds,expected_seeds,status,best", header
        assert {row.split(",")[1] for row in rows} >= set(labels), text
    else:
        columns = {"base2new": ("Base", "New", "HM"), "xd": ("(source)", "Average"),
                   "dg": ("(source)", "Average"), "fewshot": ("Average",)}[args["protocol"]]
        if args["format"] == "markdown":
            header = next(line for line in text.splitlines() if line.startswith("|"))
            assert all(column in header for column in columns), header
        else:
            rows = table_rows(text, columns)
            cells = {cell for row in rows for cell in row}
            assert set(labels) <= cells, (labels, text)
    if args["chart"]:
        assert os.path.getsize(workspace.path(args["chart"])) > 0


def check_base2new_sweep(outcome, workspace):
    """The sweep ends with its Base / New / HM table, every value measured by the runs just made."""
    table = outcome.stdout[outcome.stdout.rindex("Dataset"):]
    rows = table_rows(table, ("Dataset", "Method", "Base", "New", "HM"))
    values = [cell for row in rows for cell in row[-3:]]
    assert values and all(NUMBER.match(value) for value in values), table


def check_train(outcome, workspace):
    assert ACCURACY.search(outcome.stdout), outcome.tail()


def check_torchrun(outcome, workspace):
    assert ACCURACY.search(outcome.stdout) and "Gathered" in outcome.stdout, outcome.tail()


def check_dataset_report(outcome, workspace):
    assert re.search(r"^\s+classes: \d+", outcome.stdout, re.M) and "  OK" in outcome.stdout, outcome.tail()


def check_scan(outcome, workspace):
    words = shlex.split(outcome.command.text)
    if "--output" in words:
        assert os.path.isfile(workspace.path(words[words.index("--output") + 1]))


def check_urls(outcome, workspace):
    assert "https://" in outcome.stdout, outcome.tail()


def check_export(outcome, workspace):
    import numpy as np

    words = shlex.split(outcome.command.text)
    prefix = workspace.path(words[words.index("--output") + 1])
    with open(workspace.path(words[words.index("--classnames") + 1])) as f:
        names = [line for line in f if line.strip()]
    weights = np.load(prefix + ".npy")
    assert weights.shape[0] == len(names) and os.path.isfile(prefix + ".pt")
    assert np.allclose(np.linalg.norm(weights, axis=1), 1.0, rtol=1e-4, atol=1e-4)


def check_sweep_runs(outcome, workspace):
    """Each run of a sweep ends with a result (or is skipped as already done)."""
    finished = len(ACCURACY.findall(outcome.stdout)) + outcome.stdout.count("skipping this run")
    assert finished >= 1 and "error:" not in outcome.stderr, outcome.tail()


OUTPUT_CHECKS = [  # (what the command runs, check); every matching check applies
    (r"\btools/parse_results\.py\b", check_parse_results),
    (r"\bscripts/(rpp|pomp)/base2new\.sh\b", check_base2new_sweep),  # they end with the table
    (r"\bscripts/\w+/(pretrain|xd|dg)\.sh\b", check_sweep_runs),
    (r"^python3? train\.py\b", check_train),
    (r"^torchrun\b.*\btrain\.py\b", check_torchrun),
    (r"\btools/check_dataset\.py\b", check_dataset_report),
    (r"\btools/scan_images\.py\b", check_scan),
    (r"\btools/download_datasets\.py\b.*--print-urls", check_urls),
    (r"\btools/export_classifier\.py\b", check_export),
]


def checks_for(command):
    return [check for pattern, check in OUTPUT_CHECKS if re.search(pattern, command.text)]


# ------------------------------------------------------------------------------ tests


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_runs_and_prints_what_the_docs_say(docs_run, command):
    if command.skip:
        pytest.skip(f"{command.id} `{command.text[:60]}`: {command.skip}")
    workspace, outcomes = docs_run
    outcome = outcomes[command.id]
    assert outcome.status == 0, outcome.tail()
    assert "Traceback (most recent call last)" not in outcome.stderr, outcome.tail()
    for check in checks_for(command):
        check(outcome, workspace)


def readme_command(pattern):
    found = [c for c in COMMANDS if c.doc == "README.md" and re.search(pattern, c.text)]
    assert found, f"README.md no longer prints a command matching {pattern!r}"
    return found[0]


def numeric_row(rows, label):
    row = next((row for row in rows if row[0] == label), None)
    assert row, (label, rows)
    assert all(NUMBER.match(cell) for cell in row[1:]), row
    return row


@pytest.mark.slow
def test_readme_chain_fills_the_tables(docs_run):
    """Pre-training on the 21K layout -> xd.sh all -> dg.sh -> base2new.sh with PRETRAINED ->
    parse_results xd / dg / base2new, for RPP and POMP, as the README prints them: every
    table cell of both methods is a number read from a run the chain made."""
    _, outcomes = docs_run
    for method in ("rpp", "pomp"):
        for step in (rf"^bash scripts/{method}/pretrain\.sh 1$", rf"scripts/{method}/xd\.sh all 1",
                     rf"scripts/{method}/dg\.sh 1"):
            assert outcomes[readme_command(step).id].status == 0
    transfer = outcomes[readme_command(r"^PRETRAINED=\S+ bash scripts/rpp/base2new\.sh").id]
    assert transfer.status == 0 and "Loaded pre-trained RPP prompts from" in transfer.stdout, transfer.tail()
    for protocol, targets in (("xd", 10), ("dg", 4)):
        outcome = outcomes[readme_command(rf"parse_results\.py {protocol} --source").id]
        rows = table_rows(outcome.stdout, ("Method", "(source)", "Average"))
        for label in ("RPP", "POMP"):
            assert len(numeric_row(rows, label)) == 1 + 1 + targets + 1  # method, source, targets, average
    table = outcomes[readme_command(r"parse_results\.py base2new").id].stdout
    rows = table_rows(table, ("Dataset", "Method", "Base", "New", "HM"))
    pets = [row for row in rows if row[0] == "OxfordPets"]
    assert pets, table
    start = rows.index(pets[0])
    pets_rows = [pets[0][1:]] + [row for row in rows[start + 1:start + 6] if len(row) == 4]
    for label in ("RPP", "RPP_Transfer", "POMP"):
        numeric_row(pets_rows, label)


def test_commands_are_read_as_printed():
    from tests.fixtures.doc_commands import MarkerError, read_doc

    doc = "\n".join([
        "Text with `<!-- docs-test: skip (x) -->` in it is prose.",
        "```bash",
        "# a comment line",
        "python3 train.py --root $DATA \\",
        "    --trainer CoOp   # trailing comment",
        "echo 'a # not a comment' && echo b#c",
        "```",
        "<!-- docs-test: skip (needs network) -->",
        "<!-- another comment -->",
        "",
        "```bash",
        "python3 tools/download_datasets.py --root $DATA dtd",
        "```",
        "```",
        "not a command",
        "```",
    ])
    commands = read_doc("x.md", doc)
    assert [(c.line, c.text, c.skip) for c in commands] == [
        (4, "python3 train.py --root $DATA --trainer CoOp", None),
        (6, "echo 'a # not a comment' && echo b#c", None),
        (12, "python3 tools/download_datasets.py --root $DATA dtd", "needs network"),
    ]
    for broken in ("<!-- docs-test: skip -->\n```bash\nls\n```",  # no reason
                   "<!-- docs-test: skipp (typo) -->\n```bash\nls\n```",
                   "<!-- docs-test: skip (x) -->\nsome text\n```bash\nls\n```",
                   "<!-- docs-test: skip (x) -->\n```\nplain\n```"):
        with pytest.raises(MarkerError):
            read_doc("x.md", broken)


def test_every_skip_says_why_and_the_chain_is_not_skipped():
    skipped = [c for c in COMMANDS if c.skip]
    assert all(len(c.skip) > 10 for c in skipped), skipped
    chain = [c for c in COMMANDS if c.doc == "README.md" and re.search(r"scripts/(rpp|pomp)/|parse_results", c.text)]
    assert chain and not [c for c in chain if c.skip]


def test_appended_opts_move_train_py_onto_the_tiny_clip():
    opts = trailing_opts("python3 train.py --root $DATA --config-file configs/trainers/RPP/vit_b16_in21k.yaml")
    assert opts[:4] == ["MODEL.BACKBONE.NAME", "tiny-vit", "INPUT.SIZE", "(32, 32)"]
    assert "TRAINER.RPP.PROMPT_DEPTH_TEXT" in opts and opts[-2:] == ["DATALOADER.NUM_WORKERS", "0"]
    assert trailing_opts("bash scripts/rpp/pretrain.sh 1") == []
    with pytest.raises(AssertionError, match="line of its own"):
        trailing_opts("python3 train.py --config-file configs/trainers/CoOp/vit_b16.yaml && ls")


def describe(command):
    """How the test exercises ``command`` (for the listing)."""
    if command.skip:
        return f"skipped: {command.skip}"
    checks = [check.__name__ for check in checks_for(command)] or ["exit status 0"]
    opts = trailing_opts(command.text)
    return "runs" + (f" + opts {' '.join(opts)}" if opts else "") + f"; checks {', '.join(checks)}"


if __name__ == "__main__":
    for documented in COMMANDS:
        print(f"{documented.id}\t{documented.text}\n\t-> {describe(documented)}")
