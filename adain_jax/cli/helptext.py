"""``--help`` of every command: one formatter, so defaults are shown once and only where
they say something."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions and epilogs (text with line breaks is kept as it is);
    appends ``(default: X)`` to a flag's help unless the flag is required, its default
    is ``None`` (nothing to show), it is an on/off flag, or the help already names its default; reST
    double backticks in help texts print as single quotes."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").replace("``", "'")
        default = action.default
        if (
            action.required
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.nargs == 0  # on/off flags: the help says what 'on' does
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("``", "'"))

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with ``HelpFormatter``."""
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter
    )
