"""Contracts with the real agent CLIs, installed from npm at the pinned versions (lab/loop/overnight.py TESTED_CLIS).

`.ci/run` installs them into `.cache/agent-clis/` (ignored by git; `npm install --prefix .cache/agent-clis
@anthropic-ai/claude-code@V @openai/codex@V` does it by hand). Checked: the versions; every flag (and
value) the `lab overnight` presets pass appears in the CLI's own --help; the hook files we ship and the
JSON our hooks print follow each CLI's schema as the installed binary carries it: Codex embeds its hook
JSON schemas (validated here with a small draft-07 subset), Claude Code its zod schemas (read as text).
No account is needed and no model is called. Where the CLIs are missing the tests skip, except under CI,
where that is an error. The presets also run once each through `lab overnight` with no account (claude says
so in its JSON; codex, offline, retries until a 15 s deadline). Cost: ~40 s (one read of each ~350 MB binary).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, run_env
from test_overnight import LAB, hook, night, open_window, stop_payload

from lab.loop import overnight, window

CLIS = REPO / ".cache" / "agent-clis" / "node_modules"
BIN = {"claude": CLIS / ".bin" / "claude", "codex": CLIS / ".bin" / "codex"}
PACKAGE = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}
HELP = {"claude": ["--help"], "codex": ["exec", "--help"]}  # where each preset's flags are documented
INSTALL = ("npm install --prefix .cache/agent-clis "
           + " ".join(f"{p}@{v}" for p, v in overnight.TESTED_CLIS.items()) + " (.ci/run does it)")
HAVE = all(p.exists() for p in BIN.values())
if os.environ.get("CI") and not HAVE:
    pytest.fail(f"CI is set but the agent CLIs are not in {CLIS}: {INSTALL}", pytrace=False)
pytestmark = pytest.mark.skipif(not HAVE, reason=f"agent CLIs not installed in {CLIS}: {INSTALL}")


def cli(name: str, *args: str) -> str:
    proc = subprocess.run([str(BIN[name]), *args], capture_output=True, text=True, timeout=120,
                          env={**run_env(), "HOME": str(REPO / ".cache" / "agent-clis")})  # no user config read
    assert proc.returncode == 0, f"{name} {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout


NATIVE = {"codex": "@openai/codex-*/vendor/*/bin/codex", "claude": "@anthropic-ai/claude-code/bin/claude.exe"}


@functools.cache
def binary(name: str) -> bytes:
    """The CLI's native executable (the npm package's platform binary), whole."""
    found = sorted(CLIS.glob(NATIVE[name]))
    assert found, f"no native {name} binary at {CLIS / NATIVE[name]}"
    return found[0].read_bytes()


def near(name: str, anchor: str, before: int = 0, after: int = 400) -> str:
    """The text of the binary around the first occurrence of `anchor` (bytes.find: fast on ~350 MB)."""
    data = binary(name)
    at = data.find(anchor.encode())
    assert at >= 0, f"{name} {anchor!r}: not in the binary"
    return data[max(0, at - before):at + len(anchor) + after].decode("latin-1")


def test_the_pinned_versions_are_installed():
    for name, package in PACKAGE.items():
        assert overnight.TESTED_CLIS[package] in cli(name, "--version"), f"{name}: {INSTALL}"


@pytest.mark.parametrize("name", ["claude", "codex"])
def test_every_flag_a_preset_passes_is_in_the_clis_help(name):
    words = shlex.split(overnight.PRESETS[name])
    assert words[0] == name
    text = cli(name, *HELP[name])
    words = words[1:]
    if name == "codex":
        assert words[0] == "exec" and "instructions are read from stdin" in " ".join(text.split())
        words = words[1:]
    assert words and all(w.startswith("-") or w[0].isalpha() for w in words)
    if "--allowedTools" in words:  # claude: tool names to the end; the help shows the form, the binary the names
        at = words.index("--allowedTools")
        words, tools = words[:at + 1], words[at + 1:]
        assert tools and re.search(r'--allowedTools, --allowed-tools <tools\.\.\.>[^\n]*\n[^\n]*"Bash\(git \*\)\s+Edit"', text)
        assert all(binary("claude").find(f'"{t}"'.encode()) >= 0 for t in tools), tools
    for i, word in enumerate(words):
        if word == "-":  # codex: the prompt from stdin, as `codex exec --help` says for `-`
            assert "(or if `-` is used)" in text
        elif word.startswith("-"):
            assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text), f"{name}: {word} is not in its --help"
        else:  # a flag's value: one of the choices the help lists
            assert re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text), \
                f"{name}: {words[i - 1]} {word}: {word!r} is not a value its --help names"


# ---------------------------------------------------------------- Codex: its hook JSON schemas, from the binary

@functools.cache
def codex_schema(title: str) -> dict:
    data = binary("codex")
    at = data.find(f'"title": "{title}"'.encode())
    assert at > 0, f"codex {overnight.TESTED_CLIS['@openai/codex']} carries no {title} schema"
    start = data.rfind(b'{\n  "$schema"', 0, at)
    end = data.find(b"\n}", at) + 2
    return json.loads(data[start:end])


def violations(value, schema: dict, root: dict, where: str = "$") -> list[str]:
    """The draft-07 subset these schemas use: $ref, allOf, type, const, enum, properties, required,
    additionalProperties: false."""
    if "$ref" in schema:
        return violations(value, root["definitions"][schema["$ref"].split("/")[-1]], root, where)
    found = [v for sub in schema.get("allOf", []) for v in violations(value, sub, root, where)]
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    python = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None), "integer": int}
    if kinds and not any(isinstance(value, python[k]) for k in kinds):
        return found + [f"{where}: {value!r} is not {kinds}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{where}: {k} is required" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            found += [f"{where}: {k} is not a field" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                found += violations(v, props[k], root, f"{where}.{k}")
    return found


def check(value, title: str) -> None:
    schema = codex_schema(title)
    assert violations(value, schema, schema) == [], f"{title}: {json.dumps(value)[:300]}"


def test_the_validator_catches_what_codex_would_refuse():
    assert violations({"decision": "allow"}, codex_schema("stop.command.output"), codex_schema("stop.command.output"))
    assert violations({"decision": "block", "extra": 1}, codex_schema("stop.command.output"),
                      codex_schema("stop.command.output"))
    assert violations({"stop_hook_active": "no"}, codex_schema("stop.command.input"), codex_schema("stop.command.input"))


def test_codex_hook_files_follow_its_schema():
    shipped = json.loads((REPO / ".codex" / "hooks.json").read_text())
    assert tomllib.loads((REPO / ".codex" / "config.toml").read_text())["hooks"] == shipped["hooks"]  # the same hooks
    events = {"PreToolUse": "pre-tool-use", "SessionStart": "session-start", "Stop": "stop"}
    assert set(shipped["hooks"]) == set(events)
    for event, groups in shipped["hooks"].items():
        codex_schema(f"{events[event]}.command.input")  # Codex knows the event
        for group in groups:
            assert set(group) <= {"matcher", "hooks"} and group["hooks"]
            for handler in group["hooks"]:
                assert set(handler) <= {"type", "command", "timeout", "statusMessage"} and handler["type"] == "command"
                assert isinstance(handler["command"], str) and isinstance(handler.get("timeout", 1), int)
    sources = codex_schema("session-start.command.input")["properties"]["source"]["enum"]
    matcher = shipped["hooks"]["SessionStart"][0]["matcher"].split("|")
    assert {"startup", "resume", "compact"} <= set(matcher) <= set(sources)
    assert "matcher" not in shipped["hooks"]["Stop"][0]  # Stop takes no matcher


def test_codex_payloads_and_our_hooks_output_follow_its_schema(workspace):
    start = {"session_id": "s", "transcript_path": None, "cwd": str(workspace), "hook_event_name": "SessionStart",
             "model": "m", "permission_mode": "default", "source": "compact"}
    check(start, "session-start.command.input")  # the payloads the hook tests use are the real shape
    check(stop_payload(workspace), "stop.command.input")
    out = json.loads(hook(workspace, "session-start", "codex", start).stdout)
    check(out, "session-start.command.output")
    open_window(workspace)
    out = json.loads(hook(workspace, "stop", "codex", stop_payload(workspace)).stdout)
    assert out["decision"] == "block"
    check(out, "stop.command.output")


# ---------------------------------------------------------------- Claude Code: its zod schemas, as text in the binary

def test_claude_hook_files_follow_its_schema():
    shipped = json.loads((REPO / ".claude" / "settings.json").read_text())["hooks"]
    events = re.match(r'\["PreToolUse","PostToolUse"[^\]]*\]', near("claude", '["PreToolUse","PostToolUse"', after=2000))
    assert events and set(shipped) <= set(json.loads(events[0])), "an event Claude Code does not know"
    # a matcher group is {matcher?: string, hooks: [handler]}; a command handler has type, command, timeout
    group = near("claude", ".describe('String pattern to match", before=40, after=200)
    assert re.search(r"\{matcher:\w+\(\)\.optional\(\)\.describe\('String pattern to match[^']*'\),hooks:\w+\(", group)
    handler = near("claude", 'type:E("command").describe("Shell command hook type")', after=6000)
    assert 'command:n().describe("Shell command to execute")' in handler and "timeout:" in handler
    for groups in shipped.values():
        for group in groups:
            assert set(group) <= {"matcher", "hooks"}
            assert all(set(h) <= {"type", "command", "timeout"} and h["type"] == "command" for h in group["hooks"])
    sources = re.match(r'\("SessionStart"\),source:\w+\(\[([^\]]*)\]\)', near("claude", '("SessionStart"),source:'))
    assert sources, "Claude Code's SessionStart input has no source enum"
    matcher = shipped["SessionStart"][0]["matcher"].split("|")
    assert {"startup", "resume", "compact"} <= set(matcher) <= set(json.loads(f"[{sources[1]}]"))
    assert re.match(r'\("Stop"\),stop_hook_active:\w+\(\)', near("claude", '("Stop"),stop_hook_active:'))  # the loop guard


def test_our_hooks_output_follows_claudes_schema(workspace):
    start = json.loads(hook(workspace, "session-start", "claude", {"cwd": str(workspace), "source": "startup",
                                                                   "hook_event_name": "SessionStart"}).stdout)
    assert set(start) == {"hookSpecificOutput"} and set(start["hookSpecificOutput"]) == {"hookEventName", "additionalContext"}
    assert re.match(r'\("SessionStart"\),additionalContext:\w+\(\)\.optional\(\)',
                    near("claude", '("SessionStart"),additionalContext:'))
    open_window(workspace)
    stop = json.loads(hook(workspace, "stop", "claude", stop_payload(workspace)).stdout)
    assert set(stop) == {"decision", "reason"} and stop["decision"] == "block"
    around = near("claude", '(["approve","block"]).optional(),reason:', before=1500, after=1500)
    assert re.search(r'\(\["approve","block"\]\)\.optional\(\),reason:\w+\(\)\.describe\("Explanation for the decision"\)',
                     around), "Claude Code's hook output has no decision approve|block with a reason"
    assert "hookSpecificOutput:" in around and "continue:" in around


# ---------------------------------------------------------------- the presets, run by the driver (no account here)

def preset_env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    return {**run_env(), "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
            "PATH": f"{BIN['claude'].parent}{os.pathsep}{run_env()['PATH']}"}


def test_the_claude_preset_runs_headless_and_its_json_is_captured(workspace, tmp_path):
    proc = subprocess.run([*LAB, "overnight", "--agent", "claude", "--hours", "1", "--stuck", "1"], cwd=workspace,
                          env=preset_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cycle,) = night(workspace)["cycles"]
    assert (cycle["outcome"], cycle["exit"]) == ("crash", 1)  # no account on this box: the CLI says so, in JSON
    assert cycle["last_line"] == "Not logged in · Please run /login"
    assert cycle["usage"]["cost_usd"] == 0 and cycle["usage"]["input_tokens"] == 0  # its own report, parsed


def test_the_codex_preset_runs_headless_and_an_untrusted_checkout_is_flagged(workspace, tmp_path):
    proc = subprocess.run([*LAB, "overnight", "--agent", "codex", "--hours", str(15 / 3600)], cwd=workspace,
                          env=preset_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n = night(workspace)
    first = n["cycles"][0]
    out = (workspace / window.DIR / n["id"] / "cycle-001" / "output.txt").read_text()
    assert json.loads(out.splitlines()[0])["type"] == "thread.started"  # it read the prompt from stdin, JSONL out
    assert first["warnings"] and "without the project's hooks" in (workspace / n["summary"]).read_text()
