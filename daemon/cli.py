"""The ``moviegen`` command: thin click commands, each calling one library function.

Exit codes: 0 ok, 1 a job (or check) failed, 2 a usage error (bad arguments, unknown job, bad
configuration, no such home), 3 ``events --follow`` stopped because no daemon is running, 4 the
event log is damaged, or empty beside existing job folders (``run`` too: it claims nothing then).

Whether a daemon runs is read from its lock (``daemon.lock``), never guessed from the log, and the
read-only commands never create a home or a database.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from daemon.events import RUNNING_STATES, TERMINAL_STATES, AmbiguousJobId, EventStore
from daemon.lock import daemon_pid

FOLLOW_POLL_SECONDS = 0.3
FOLLOW_DAEMON_CHECK_SECONDS = 1.0
EXIT_NO_DAEMON = 3
SYSTEMD_HOME = Path("/var/lib/moviegen")
JOB_STATES = ("queued", *RUNNING_STATES, "done", "failed", "cancelled")


def _console(stderr: bool = False) -> Console:
    # Made per call, so the width ($COLUMNS) and the stream are those of this invocation.
    return Console(stderr=stderr)


# --- shared options ----------------------------------------------------------------------------


def _home_options(func: Callable) -> Callable:
    """``--home`` and ``--config`` on a subcommand too, so ``moviegen run --home DIR`` works."""
    func = click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
                        help="settings TOML (default: <home>/moviegen.toml)")(func)
    func = click.option("--home", "home", type=click.Path(file_okay=False, path_type=Path),
                        help="home folder (default: $MOVIEGEN_HOME or ~/.local/share/moviegen)")(func)
    return func


def _settings(ctx: click.Context, home: Path | None = None, config: Path | None = None, **overrides: Any):
    from pydantic import ValidationError

    from stages.settings import SettingsError, load_settings

    root = ctx.find_root().params
    home = home or root.get("home")
    config = config or root.get("config")
    if config is not None and not Path(config).is_file():
        raise click.BadParameter(f"{config} does not exist", param_hint="--config")
    try:
        return load_settings(config=config, home=home, **overrides)
    except (ValidationError, SettingsError) as exc:  # the text names the file, the key, the allowed values
        raise click.UsageError(str(exc)) from None


def _existing_store(ctx: click.Context, settings) -> EventStore | None:
    """The home's event log, opened only if it exists (None: no daemon has run here yet).

    A home that does not exist is a usage error: it is nearly always a typo or the wrong home.
    """
    if not settings.home.is_dir():
        raise click.UsageError(_missing_home(ctx, settings.home))
    _check_log(settings)
    if not settings.db_path.is_file():
        return None
    return EventStore(settings.db_path)


class DamagedLogError(click.ClickException):
    """The event log is damaged or foreign (:class:`daemon.events.DamagedLog`): exit code 4."""

    exit_code = 4


def _check_log(settings) -> None:
    """Stop with the same message as `moviegen run` when the event log cannot be trusted."""
    from daemon.events import DamagedLog, check_log

    try:
        check_log(settings.db_path, settings.jobs_dir)
    except DamagedLog as exc:
        raise DamagedLogError(str(exc)) from None


def _missing_home(ctx: click.Context, home: Path, consequence: str = "there is nothing to show") -> str:
    given = ctx.params.get("home") or ctx.find_root().params.get("home")
    origin = "--home" if given else ("$MOVIEGEN_HOME" if os.environ.get("MOVIEGEN_HOME") else "the default home")
    return (f"{home} does not exist ({origin}), so {consequence}. The systemd service keeps its "
            f"home in {SYSTEMD_HOME} (try --home {SYSTEMD_HOME}); otherwise pass --home DIR or set MOVIEGEN_HOME "
            f"to the folder `moviegen run` uses.")


def _daemon_line(settings, store: EventStore | None) -> tuple[int | None, str]:
    """The running daemon's pid (None: none) and a sentence saying so."""
    pid = daemon_pid(settings.state)
    if pid is not None:
        return pid, f"daemon running (pid {pid})" if pid else "daemon starting"
    since = store.daemon_last_seen() if store is not None else None
    if since is None:
        return None, "daemon not running (it has never run on this home)"
    return None, f"daemon not running since {_when(since)}"


def _when(at: str) -> str:
    return at[:19].replace("T", " ") + " UTC"


def _job(store: EventStore | None, job_id: str) -> dict:
    if store is None:
        raise click.BadParameter(f"no job {job_id!r}: no daemon has run on this home yet", param_hint="JOB")
    try:
        job = store.job(job_id)
    except AmbiguousJobId as exc:
        raise click.BadParameter(str(exc), param_hint="JOB") from None
    if job is None:
        raise click.BadParameter(f"no job {job_id!r} (see: moviegen status)", param_hint="JOB")
    return job


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="home folder (default: $MOVIEGEN_HOME or ~/.local/share/moviegen)")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="settings TOML (default: <home>/moviegen.toml)")
@click.version_option("0.1.0", prog_name="moviegen")
def cli(home: Path | None, config: Path | None) -> None:
    """moviegen: articles in, narrated slide videos out.

    \b
    Example:
        moviegen run --home ~/moviegen
        moviegen submit https://example.com/post
        moviegen status
    """


# --- the daemon --------------------------------------------------------------------------------


@cli.command()
@_home_options
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR")
@click.pass_context
def run(ctx: click.Context, home: Path | None, config: Path | None, log_level: str) -> None:
    """Run the daemon in the foreground: watch the inbox, make videos, fill the outbox.

    Logs JSON lines when stdout is not a terminal (journald), readable lines when it is. Stops
    cleanly on SIGTERM or Ctrl-C.

    \b
    Example:
        moviegen run --home ~/moviegen
    """
    from daemon.app import run_daemon
    from daemon.logs import configure_logging

    settings = _settings(ctx, home, config)
    configure_logging(level=log_level)
    sys.exit(run_daemon(settings))


@cli.command()
@_home_options
@click.option("--json", "as_json", is_flag=True, help="print the jobs as JSON")
@click.option("--state", type=click.Choice(JOB_STATES), help="only jobs in this state")
@click.pass_context
def status(ctx: click.Context, home: Path | None, config: Path | None, as_json: bool, state: str | None) -> None:
    """Show the jobs (state, stage, percent, source, error) and whether the daemon runs.

    When no daemon runs, jobs it left mid-stage show as "interrupted": they resume at its next start.

    \b
    Example:
        moviegen status
        moviegen status --state failed --json
    """
    settings = _settings(ctx, home, config)
    store = _existing_store(ctx, settings)
    jobs = store.jobs(state) if store is not None else []
    if as_json:
        click.echo(json.dumps(jobs, ensure_ascii=False, indent=2))
        return
    pid, daemon_line = _daemon_line(settings, store)
    table = Table(title=f"{len(jobs)} job(s); {daemon_line}")
    # Ids are copied from here, so they are never folded; short columns stay whole too, and the
    # source and message fold into what is left of a narrow terminal.
    console = _console()
    wide = console.width >= 100  # below that, "updated" gives its room to the source and message
    for column in ("job", "state", "stage", "%"):
        table.add_column(column, no_wrap=True)
    table.add_column("source", overflow="fold", ratio=1)
    if wide:
        table.add_column("updated", no_wrap=True)
    table.add_column("message / error", overflow="fold", ratio=2)
    for job in jobs:
        shown, message = job["state"], _first_line(job["error"] or job["message"] or "")
        if pid is None and shown in RUNNING_STATES:
            shown, message = "interrupted", "stopped with the daemon; resumes when it starts"
        elif pid is None and shown == "queued":
            message = "waits for the daemon to start"
        style = {"done": "green", "failed": "red", "cancelled": "yellow", "interrupted": "magenta"}.get(shown, "cyan")
        updated = [(job["updated_at"] or "")[5:16].replace("T", " ")] if wide else []
        table.add_row(job["job_id"], f"[{style}]{shown}[/]", job["stage"] or "", f"{job['percent'] or 0:.0f}",
                      escape(str(job["source"] or "")), *updated, escape(message))
    console.print(table)


def _first_line(text: str, limit: int = 80) -> str:
    """A table cell's worth of a message; `moviegen events JOB` has the whole of it."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@cli.command()
@_home_options
@click.argument("job_id", metavar="JOB")
@click.option("--follow", "-f", is_flag=True, help="keep showing new events with a live progress bar")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per event")
@click.pass_context
def events(ctx: click.Context, home: Path | None, config: Path | None, job_id: str, follow: bool,
           as_json: bool) -> None:
    """Show a job's history; with --follow, a live progress bar until it ends.

    With --follow the exit code says how the job ended: 0 done, 1 failed or cancelled, 3 no daemon
    is running (or it stopped), so the job cannot move until one starts.

    \b
    Example:
        moviegen events 20261126-022000-3fa2c1
        moviegen events 20261126-0220 --follow
    """
    settings = _settings(ctx, home, config)
    store = _existing_store(ctx, settings)
    job = _job(store, job_id)
    printer = _event_printer(as_json)
    seen = 0
    for event in store.events(job["job_id"]):
        printer(event)
        seen = event["seq"]
    if not follow:
        if job["state"] not in TERMINAL_STATES and daemon_pid(settings.state) is None:
            _, daemon_line = _daemon_line(settings, store)
            click.echo(f"({daemon_line}: the job continues when a daemon starts)", err=True)
        return
    try:
        final = _follow(store, settings.state, job["job_id"], seen, printer)
    except KeyboardInterrupt:
        sys.exit(130)
    if final in TERMINAL_STATES:
        sys.exit(0 if final == "done" else 1)
    _, daemon_line = _daemon_line(settings, store)
    click.echo(f"{daemon_line}: job {job['job_id']} stays {final} until a daemon starts on {settings.home} "
               f"(moviegen run, or systemctl start moviegen); stopped following", err=True)
    sys.exit(EXIT_NO_DAEMON)


def _follow(store: EventStore, state_dir: Path, job_id: str, after: int, printer: Callable[[dict], None]) -> str:
    """Print the job's new events until it ends or no daemon holds the lock; return its state."""
    job = store.job(job_id) or {}
    checked = 0.0
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=_console(), transient=False) as bar:
        task = bar.add_task(_describe(job), total=100, completed=job.get("percent") or 0)
        while job.get("state") not in TERMINAL_STATES:
            daemon_gone = False
            if time.monotonic() - checked >= FOLLOW_DAEMON_CHECK_SECONDS:
                checked = time.monotonic()
                daemon_gone = daemon_pid(state_dir) is None
            if not daemon_gone:
                time.sleep(FOLLOW_POLL_SECONDS)
            # Read after the check, so the events a stopping daemon wrote last are shown too.
            for event in store.events(job_id, after=after):
                after = event["seq"]
                if event["kind"] != "stage.progress":
                    bar.console.print(_event_line(event), markup=False, highlight=False, soft_wrap=True)
            job = store.job(job_id) or {}
            bar.update(task, completed=job.get("percent") or 0, description=_describe(job))
            if daemon_gone:
                break
    return str(job.get("state"))


def _describe(job: dict) -> str:
    return f"{job.get('state', '?')}: {job.get('message') or ''}"[:60]


def _event_printer(as_json: bool) -> Callable[[dict], None]:
    if as_json:
        return lambda event: click.echo(json.dumps(event, ensure_ascii=False))
    return lambda event: click.echo(_event_line(event))


def _event_line(event: dict) -> str:
    data = {k: v for k, v in (event.get("data") or {}).items() if k != "traceback"}
    details = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
    return f"{event['at'][:23]} {event['seq']:>6} {event['kind']:<20} {event.get('stage') or '':<7} {details}"


@cli.command()
@_home_options
@click.argument("job_id", metavar="JOB")
@click.pass_context
def retry(ctx: click.Context, home: Path | None, config: Path | None, job_id: str) -> None:
    """Ask the daemon to retry a failed or cancelled job at the stage where it stopped.

    Stages that finished before are skipped through their manifests.

    \b
    Example:
        moviegen retry 20261126-022000-3fa2c1
    """
    from daemon.retention import removed_at

    settings = _settings(ctx, home, config)
    store = _existing_store(ctx, settings)
    job = _job(store, job_id)
    if job["state"] not in ("failed", "cancelled"):
        raise click.UsageError(f"job {job['job_id']} is {job['state']}; only failed or cancelled jobs can be retried")
    removed = removed_at(store, job["job_id"])
    if removed is not None:
        raise click.UsageError(f"job {job['job_id']} cannot resume: its folder was removed by the disk trim at "
                               f"{removed} (daemon.keep_failed_days, `moviegen gc`); drop the input again")
    store.request(job["job_id"], "retry")
    _acknowledge(settings, store, "retry", job["job_id"])


@cli.command()
@_home_options
@click.argument("job_id", metavar="JOB")
@click.pass_context
def cancel(ctx: click.Context, home: Path | None, config: Path | None, job_id: str) -> None:
    """Ask the daemon to cancel a job: its stage stops and child processes are killed.

    \b
    Example:
        moviegen cancel 20261126-022000-3fa2c1
    """
    settings = _settings(ctx, home, config)
    store = _existing_store(ctx, settings)
    job = _job(store, job_id)
    if job["state"] in TERMINAL_STATES:
        raise click.UsageError(f"job {job['job_id']} is already {job['state']}")
    store.request(job["job_id"], "cancel")
    _acknowledge(settings, store, "cancel", job["job_id"])


def _acknowledge(settings, store: EventStore, command: str, job_id: str) -> None:
    """Say what happens to a recorded request: taken now by the daemon, or at its next start."""
    pid, daemon_line = _daemon_line(settings, store)
    if pid is not None:
        click.echo(f"{command} requested for {job_id}; the daemon (pid {pid}) takes it within a second "
                   f"(follow it: moviegen events {job_id} --follow)")
        return
    click.echo(f"{command} recorded for {job_id}; {daemon_line}, so it waits for the next start "
               f"(moviegen run, or systemctl start moviegen) and is applied first thing then")


@cli.command()
@_home_options
@click.argument("item", metavar="URL|FILE")
@click.pass_context
def submit(ctx: click.Context, home: Path | None, config: Path | None, item: str) -> None:
    """Drop a URL or a file into the inbox safely (temporary name, then rename).

    A URL becomes a .url file. The running daemon picks it up within its settle window.

    \b
    Example:
        moviegen submit https://example.com/post
        moviegen submit article.md
    """
    from daemon.inbox import submit_to_inbox

    settings = _settings(ctx, home, config)
    if not settings.home.is_dir():
        raise click.UsageError(_missing_home(ctx, settings.home, "nothing would pick the file up"))
    try:
        path = submit_to_inbox(settings.inbox, item)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="URL|FILE") from None
    click.echo(str(path))
    if daemon_pid(settings.state) is None:
        click.echo(f"note: no daemon is running on {settings.home}; the file waits in the inbox until one starts",
                   err=True)


@cli.command()
@_home_options
@click.pass_context
def rebuild(ctx: click.Context, home: Path | None, config: Path | None) -> None:
    """Rebuild the jobs table from the event log; salvage a damaged log first.

    A damaged log is moved aside (``moviegen.db.damaged-<time>``) and every event that can still
    be read is copied into a new one, then the jobs table is rebuilt from them.

    \b
    Example:
        moviegen rebuild
    """
    from daemon.events import DamagedLog, check_log, salvage_log

    settings = _settings(ctx, home, config)
    try:
        check_log(settings.db_path, settings.jobs_dir)
    except DamagedLog as exc:
        if exc.lost:
            raise DamagedLogError(str(exc)) from None
        report = salvage_log(settings.db_path)
        click.echo(f"moved the damaged log to {report['moved_to']}; copied {report['events']} readable event(s) "
                   f"into a new {settings.db_path} ({report['unreadable']} unreadable)")
    store = _existing_store(ctx, settings)
    if store is None:
        raise click.UsageError("there is no event log to rebuild from: no daemon has run on this home yet")
    count = store.rebuild_jobs()
    click.echo(f"rebuilt {count} job(s) from the event log")


# --- without a daemon --------------------------------------------------------------------------


@cli.command()
@_home_options
@click.argument("source", metavar="SOURCE")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the MP4 to write (its .srt subtitles and .json sidecar go beside it)")
@click.option("--renderer", type=click.Choice(["ffmpeg", "remotion"]), help="override video.renderer")
@click.option("--size", metavar="WxH", help="override the video size, e.g. 1280x720")
@click.option("--format", "video_format", type=click.Choice(["landscape", "shorts"]),
              help="override video.format: landscape 1920x1080, shorts 1080x1920 (9:16)")
@click.pass_context
def make(ctx: click.Context, home: Path | None, config: Path | None, source: str, out: Path,
         renderer: str | None, size: str | None, video_format: str | None) -> None:
    """Make one video in this process, no daemon: SOURCE is a URL, an article or a script.

    \b
    Example:
        moviegen make samples/ja-article.md -o out.mp4 --size 1280x720
        moviegen make script.yaml -o out.mp4 --renderer remotion
        moviegen make samples/ja-article.md -o short.mp4 --format shorts
    """
    from daemon.app import make_video
    from daemon.inbox import URL_PATTERN
    from stages.base import StageError

    settings = _settings(ctx, home, config)
    if not URL_PATTERN.fullmatch(source.strip()) and not Path(source).is_file():
        raise click.BadParameter(f"{source}: not a URL and not a file", param_hint="SOURCE")
    if renderer:
        settings.video.renderer = renderer
    if size:
        match = re.fullmatch(r"(\d+)[xX](\d+)", size.strip())
        if not match or int(match[1]) < 16 or int(match[2]) < 16:
            raise click.BadParameter(f"{size!r}: expected WIDTHxHEIGHT, e.g. 1280x720", param_hint="--size")
        settings.video.width, settings.video.height = int(match[1]), int(match[2])
    if video_format:
        if size:
            raise click.BadParameter("give --size or --format, not both", param_hint="--format")
        from stages.settings import VIDEO_FORMATS

        settings.video.format = video_format
        settings.video.width, settings.video.height = VIDEO_FORMATS[video_format]
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[message]}"), TimeElapsedColumn(), console=_console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, current: int, total: int, message: str) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=100, message="")
            percent = 100.0 if total <= 0 else min(100.0, 100.0 * current / total)
            bar.update(tasks[stage], completed=percent, message=message[:50])

        try:
            written = make_video(source, out, settings, progress)
        except StageError as exc:
            bar.stop()
            bar.console.print(f"[red]failed:[/] {escape(str(exc))}")
            sys.exit(1)
        except Exception as exc:
            bar.stop()
            bar.console.print(f"[red]failed ({type(exc).__name__}):[/] {escape(str(exc))}")
            sys.exit(1)
    click.echo(str(written))


@cli.command()
@_home_options
@click.argument("source", metavar="PATH_OR_URL")
@click.option("--url", help="the page's address, for a local HTML or Markdown file")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def extract(ctx: click.Context, home: Path | None, config: Path | None, source: str, url: str | None,
            fmt: str) -> None:
    """Run the fetch stage alone: print the article as plain text or JSON.

    \b
    Example:
        moviegen extract https://example.com/post
        moviegen extract saved.html --url https://example.com/post --format json
    """
    from stages.base import StageError
    from stages.fetch import article_text, extract as extract_article

    settings = _settings(ctx, home, config)
    try:
        article = extract_article(source, settings, url=url)
    except StageError as exc:
        _console(stderr=True).print(f"[red]failed:[/] {escape(str(exc))}")
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(article, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(article_text(article))


@cli.command()
@_home_options
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, home: Path | None, config: Path | None, script: Path) -> None:
    """Check a script file; print every problem with its line and column (exit 1 if any).

    \b
    Example:
        moviegen validate script.yaml
    """
    from stages.script import validate_script_file

    issues = validate_script_file(script, _settings(ctx, home, config))
    for issue in issues:
        click.echo(f"{script}:{issue.line}:{issue.column}: {issue.message}")
    if issues:
        sys.exit(1)
    click.echo(f"{script}: ok")


@cli.command()
@_home_options
@click.pass_context
def doctor(ctx: click.Context, home: Path | None, config: Path | None) -> None:
    """Show what is configured (secrets masked), what is reachable and what is missing.

    Exit 1 when something the configuration needs is missing.

    \b
    Example:
        moviegen doctor
        MOVIEGEN_AUDIO__ENGINE=voicevox moviegen doctor
    """
    from daemon.app import doctor as run_checks, mask_secrets

    settings = _settings(ctx, home, config)
    config_data = mask_secrets(settings.public_dict())
    console = _console()
    console.print(f"[bold]home[/] {settings.home}")
    for section in ("daemon", "script", "audio", "video"):
        console.print(f"[bold]{section}[/] {json.dumps(config_data.get(section), ensure_ascii=False)}")
    if settings.script.writer == "llm":
        console.print(f"[bold]llm[/] {json.dumps(config_data.get('llm'), ensure_ascii=False)}")
    console.print(f"[bold]personas[/] {', '.join(p.id for p in settings.personas)}")
    table = Table(title="checks")
    for column in ("check", "ok", "detail"):
        table.add_column(column, overflow="fold")
    checks = run_checks(settings)
    for check in checks:
        mark = "[green]ok[/]" if check.ok else ("[red]MISSING[/]" if check.required else "[yellow]no[/]")
        table.add_row(check.name, mark, check.detail)
    _console().print(table)
    if any(not c.ok and c.required for c in checks):
        sys.exit(1)


@cli.command()
@_home_options
@click.option("--dry-run", is_flag=True, help="print what would be removed, remove nothing")
@click.pass_context
def gc(ctx: click.Context, home: Path | None, config: Path | None, dry_run: bool) -> None:
    """Free disk: expired job folders, debris and cache entries beyond their caps.

    A job's folder goes daemon.keep_done_days after it finished or was cancelled,
    daemon.keep_failed_days after it failed; its events stay. The audio, slide and render caches
    are trimmed to audio/slides/video.cache_max_gb, least recently used first. Nothing an
    unfinished job uses is touched, so this is safe while the daemon runs (which also does it on
    its own after each job and once a day).

    \b
    Example:
        moviegen gc --dry-run
        moviegen gc
    """
    from daemon.retention import collect_garbage

    settings = _settings(ctx, home, config)
    _check_log(settings)  # never remove folders on the word of a damaged or foreign log
    if not settings.db_path.is_file():
        raise click.UsageError(f"{settings.home} holds no moviegen event log ({settings.db_path}): nothing to collect")
    report = collect_garbage(settings, EventStore(settings.db_path), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for removal in report.removals:
        if removal.what in ("job", "debris", "scratch"):
            click.echo(f"{verb} {removal.what} {removal.path} ({_size(removal.bytes)})")
    for name, cache in report.caches.items():
        if cache["entries"]:
            click.echo(f"{verb} {cache['entries']} {name} cache entr{'y' if cache['entries'] == 1 else 'ies'}: "
                       f"{_size(cache['bytes_before'])} -> {_size(cache['bytes_after'])}")
    freed = "would free" if dry_run else "freed"
    click.echo(f"{freed} {_size(report.bytes_freed)} ({report.bytes_freed} bytes)")


def _size(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


def main() -> None:
    """The console script ``moviegen``."""
    cli(prog_name="moviegen")
