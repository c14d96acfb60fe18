"""The baseline chatd for the `chatd-before` target: a git revision of this
repository, its `chatd/` and `config/` extracted with `git archive` into
bench/.work/ (git-ignored), so that the same run measures today's chatd
against the one before a change ("fan-out stays within 10% of today's").

The default revision is today's main without the rooms work: the
merge-base of `issue-11` and `main` (main as issue-11 last merged it; of
HEAD and `main` when there is no `issue-11` branch), or, once main has
merged issue-11, main just before that merge. `--baseline REV` names any
other; after later merges it is the way to say what "before" means. The tree is read, not trusted: its protocol version (v1 without
`HELLO`, v2 or v3 with it) picks the generator's dialect, and its own
config/chatd.yaml is the config it runs with.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BRANCH = "issue-11"  # the rooms work; its merge-base with main is the baseline
MAINLINE = "main"
_VERSION_RE = re.compile(r"^VERSION(?:\s*:\s*[\w\[\]]+)?\s*=\s*(\d+)", re.M)
_CHATD_VERSION_RE = re.compile(r'^__version__\s*=\s*"([^"]+)"', re.M)


class BaselineError(Exception):
    """The revision cannot be resolved or extracted."""


@dataclass(frozen=True)
class Baseline:
    commit: str  # full SHA
    how: str  # how the revision was chosen, for RESULTS.md
    tree: Path  # the extracted tree: chatd/ and config/
    protocol: int  # 1, 2 or 3
    same_as_head: bool  # chatd/ and config/ as in HEAD: a run would compare chatd with itself

    @property
    def dialect(self) -> str:
        return "chatd1" if self.protocol == 1 else "chatd"

    def describe(self) -> str:
        same = "; the same chatd/ and config/ as HEAD" if self.same_as_head else ""
        return f"chatd {chatd_version(self.tree)} ({self.commit[:7]}, protocol v{self.protocol}; {self.how}{same})"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BaselineError(f"git {' '.join(args)}: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


def _has_ref(repo: Path, ref: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0


def resolve(repo: Path, revision: str | None) -> tuple[str, str]:
    """The full SHA of the baseline, and how it was chosen."""
    if revision:
        return _git(repo, "rev-parse", "--verify", f"{revision}^{{commit}}"), f"--baseline {revision}"
    if not _has_ref(repo, MAINLINE):
        raise BaselineError(f"no branch {MAINLINE!r} to take a merge-base with; give --baseline REV")
    branch = DEFAULT_BRANCH if _has_ref(repo, DEFAULT_BRANCH) else "HEAD"
    commit = _git(repo, "merge-base", branch, MAINLINE)
    if commit in _git(repo, "rev-list", "--first-parent", MAINLINE).split():
        return commit, f"merge-base of {branch} and {MAINLINE}"
    # The merge-base is one of the branch's own commits: main has merged it.
    # "Before" is main just before the first merge that brought it in.
    merge = _git(repo, "rev-list", "--first-parent", "--ancestry-path", "--reverse", f"{commit}..{MAINLINE}").split()[0]
    return _git(repo, "rev-parse", f"{merge}^1"), f"{MAINLINE} before {merge[:7]} merged {branch}"


def extract(repo: Path, work: Path, revision: str | None) -> Baseline:
    """The baseline's tree under `work`, extracted once per commit and reused."""
    commit, how = resolve(repo, revision)
    tree = work / f"baseline-{commit[:12]}"
    if not (tree / ".complete").exists():
        work.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="baseline-", dir=work))
        with tempfile.TemporaryFile() as archive:
            done = subprocess.run(
                ["git", "-C", str(repo), "archive", "--format=tar", commit, "chatd", "config"],
                stdout=archive,
                stderr=subprocess.PIPE,
            )
            if done.returncode != 0:
                raise BaselineError(f"git archive {commit[:12]}: {done.stderr.decode(errors='replace')[:300]}")
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(staging, filter="data")
        (staging / ".complete").write_text(commit + "\n")
        if tree.exists():  # an interrupted earlier extraction
            shutil.rmtree(tree)
        staging.rename(tree)
    same = (
        subprocess.run(
            ["git", "-C", str(repo), "diff", "--quiet", commit, "HEAD", "--", "chatd", "config"], capture_output=True
        ).returncode
        == 0
    )
    return Baseline(commit, how, tree, protocol_version(tree), same)


def protocol_version(tree: Path) -> int:
    """The wire protocol a chatd tree speaks: its `VERSION`, else 1 (v1 had none)."""
    for module in ("chatd/core/protocol.py", "chatd/protocol.py"):
        path = tree / module
        if path.exists():
            match = _VERSION_RE.search(path.read_text())
            if match:
                return int(match.group(1))
    return 1


def chatd_version(tree: Path) -> str:
    match = _CHATD_VERSION_RE.search((tree / "chatd" / "__init__.py").read_text())
    return match.group(1) if match else "?"
