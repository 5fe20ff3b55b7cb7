"""Draft definitions: checking them against the project and compiling them before a commit.

A planner editing an audience sends its text; the draft is parsed, then checked *together
with* the project (its catalog, destinations and every other audience), so a draft that
breaks an `in audience` reference elsewhere, or duplicates a name, is caught too.

Which project audiences a draft replaces:

- with an explicit file name that belongs to the project, that file's audiences (the draft is
  the file's new content), so a name still defined in another file is a duplicate (E401);
- otherwise the project's audiences with the same names as the draft's (an edit is not a
  duplicate of the audience it edits).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from audience.project import Project
from audience.service.errors import draft_errors, failed_precondition, invalid_argument
from dsl import ast
from dsl.checker import check_project
from dsl.diagnostics import Diagnostic, sort_diagnostics
from dsl.parser import parse, parse_condition

DEFAULT_FILENAME = "draft.aud"
DEFAULT_CONDITION_AUDIENCE = "draft"
MAX_DRAFT_CHARS = 1_000_000


@dataclass(frozen=True)
class CheckedDraft:
    """A draft checked with the project: its diagnostics and the project it would make."""

    filename: str
    field: str  # the request field holding the text: "definition" or "condition"
    audiences: tuple[ast.Audience, ...]
    diagnostics: tuple[Diagnostic, ...]  # in the draft, plus new ones it causes elsewhere
    merged: dict[str, ast.Audience]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def _check_text(text: str, field: str) -> None:
    if not text.strip():
        raise invalid_argument(f"{field} is empty", field)
    if len(text) > MAX_DRAFT_CHARS:
        raise invalid_argument(f"{field} is longer than {MAX_DRAFT_CHARS} characters", field)


def check_definition(project: Project, text: str, filename: str = "") -> CheckedDraft:
    """Parse complete `audience` blocks and check them with the project."""
    _check_text(text, "definition")
    name = filename or DEFAULT_FILENAME
    result = parse(text, name)
    replace_file = bool(filename) and filename in project.sources
    return _check(project, name, "definition", result.audiences, result.diagnostics, replace_file)


def check_condition(project: Project, text: str, audience_id: str = "",
                    filename: str = "") -> CheckedDraft:
    """Parse a bare `where` condition and check it as the condition of *audience_id*."""
    _check_text(text, "condition")
    name = filename or DEFAULT_FILENAME
    aud_name = audience_id or DEFAULT_CONDITION_AUDIENCE
    cond, diagnostics = parse_condition(text, name)
    audiences = []
    if cond is not None:
        audiences.append(ast.Audience(name=aud_name, where=cond, file=name, span=cond.span,
                                      name_span=cond.span, source_text=text))
    return _check(project, name, "condition", audiences, diagnostics, replace_file=False)


def _check(project: Project, filename: str, field: str, drafted: list[ast.Audience],
           parse_diags: list[Diagnostic], replace_file: bool) -> CheckedDraft:
    names = {a.name for a in drafted}
    if replace_file:
        base = [a for a in project.audiences.values() if a.file != filename]
    else:
        base = [a for a in project.audiences.values() if a.name not in names]
    if project.catalog is None:  # load_project always builds one; guard for type checkers
        raise failed_precondition("the project has no catalog")
    checked = check_project([*base, *drafted], project.catalog, project.config.destinations)
    before = set(project.diagnostics)
    # Replacing a file, every diagnostic in it is the draft's; otherwise the file may be a
    # project file the draft only shares a name with, whose old problems are not the draft's.
    own = [d for d in checked if d.file == filename and (replace_file or d not in before)]
    elsewhere = [d for d in checked if d.file != filename and d not in before]
    merged: dict[str, ast.Audience] = {}
    for aud in [*base, *drafted]:
        merged.setdefault(aud.name, aud)
    diagnostics = sort_diagnostics([*parse_diags, *own, *elsewhere])
    return CheckedDraft(filename, field, tuple(drafted), tuple(diagnostics), merged)


def overlay(project: Project, draft: CheckedDraft) -> Project:
    """The project as it would be with the draft saved (shares the warehouse connection).

    Never close the returned object: its warehouse belongs to the cached project.
    """
    kept = [d for d in project.diagnostics if d.file != draft.filename]
    return dataclasses.replace(project, audiences=draft.merged,
                               diagnostics=sort_diagnostics([*kept, *draft.diagnostics]))


def require_compilable(project: Project, name: str, draft: CheckedDraft | None = None) -> None:
    """Errors blocking *name*: in the draft → INVALID_ARGUMENT; in stored files → FAILED_PRECONDITION."""
    problems = project.audience_problems(name)
    if not problems:
        return
    if draft is not None and any(d.file == draft.filename for d in problems):
        raise draft_errors(draft.errors or problems, draft.field, draft.filename)
    raise failed_precondition(
        f'audience "{name}" cannot be compiled: {len(problems)} error'
        f"{'s' if len(problems) != 1 else ''} in its definition files; first: {problems[0].format()}",
        problems)
