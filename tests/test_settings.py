"""Settings: the annotated example parses, and the environment overrides the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from stages.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_annotated_example_is_valid(tmp_path: Path):
    """samples/moviegen.toml, shown in the README, loads without error."""
    settings = load_settings(config=ROOT / "samples" / "moviegen.toml", home=tmp_path)
    assert [p.id for p in settings.personas] == ["zundamon", "metan"]
    assert settings.persona(None).id == "zundamon"
    assert settings.pronunciation[0].reading == "ムービージェン"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MOVIEGEN_<SECTION>__<KEY> wins over the TOML file in the home."""
    shutil.copy(ROOT / "samples" / "moviegen.toml", tmp_path / "moviegen.toml")
    monkeypatch.setenv("MOVIEGEN_VOICEVOX__SPEAKER", "8")
    monkeypatch.setenv("MOVIEGEN_VIDEO__RENDERER", "remotion")
    settings = load_settings(home=tmp_path)
    assert settings.voicevox.speaker == 8
    assert settings.video.renderer == "remotion"
    assert settings.video.width == 1920
    assert settings.db_path == tmp_path / "state" / "moviegen.db"


def test_unknown_keys_are_refused(tmp_path: Path):
    """A typo in the file is an error, not a silently ignored key."""
    config = tmp_path / "moviegen.toml"
    config.write_text("[video]\nwidht = 10\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        load_settings(config=config, home=tmp_path)


def test_api_key_env_is_resolved_by_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`llm.api_key_env` names a variable; the settings read it, so stages never touch os.environ."""
    monkeypatch.setenv("MY_ROUTER_KEY", "sk-test-123")
    settings = load_settings(home=tmp_path, llm={"api_key_env": "MY_ROUTER_KEY"})
    assert settings.llm.api_key is not None and settings.llm.api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in repr(settings) and "sk-test-123" not in str(settings.public_dict())


def test_a_zero_slot_is_refused(tmp_path: Path):
    """A resource slot of 0 would block every stage using it forever: it is a settings error."""
    with pytest.raises(ValidationError, match="at least 1"):
        load_settings(home=tmp_path, daemon={"slots": {"render": 0}})


def test_one_slot_keeps_the_other_defaults(tmp_path: Path):
    """[daemon.slots] render = 2 changes render only; tts and network keep their limits."""
    settings = load_settings(home=tmp_path, daemon={"slots": {"render": 2}})
    assert settings.daemon.slots == {"render": 2, "tts": 1, "network": 4, "cpu": 2}


def test_settings_errors_name_the_file_the_key_and_the_allowed_values(tmp_path: Path):
    """The error is still a pydantic ValidationError, but its text is one readable line per problem."""
    config = tmp_path / "moviegen.toml"
    config.write_text('[audio]\nengine = "voicevoxx"\n[[personas]]\nid = "a"\nspeed = "fast"\nvoice = 3\n')
    with pytest.raises(ValidationError) as caught:
        load_settings(config=config, home=tmp_path)
    text = str(caught.value)
    assert text.startswith(f"invalid settings in {config} (3 problems):")
    assert "[audio] engine = 'voicevoxx': not allowed; allowed values: 'openjtalk', 'espeak' or 'voicevox'" in text
    assert "[[personas]] #1 speed = 'fast': Input should be a valid number" in text
    assert "[[personas]] #1 voice: unknown key" in text and "accepts: " in text and "speaker" in text
    assert "https://errors.pydantic.dev" not in text


def test_a_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MOVIEGEN_DAEMON__MAX_JOBS=abc is reported as that variable, not as a line of the file."""
    monkeypatch.setenv("MOVIEGEN_DAEMON__MAX_JOBS", "abc")
    with pytest.raises(ValidationError, match=r"\(from the environment: MOVIEGEN_DAEMON__MAX_JOBS\) "
                                              r"\[daemon\] max_jobs = 'abc'"):
        load_settings(home=tmp_path)


def test_broken_toml_names_the_file(tmp_path: Path):
    """A TOML syntax error is a SettingsError naming the file (a ValueError, like tomllib's)."""
    from stages.settings import SettingsError

    config = tmp_path / "moviegen.toml"
    config.write_text("[daemon]\nmax_jobs = 1\nmax_jobs = 2\n")
    with pytest.raises(SettingsError, match=f"the settings file {config} is not valid TOML"):
        load_settings(config=config, home=tmp_path)


def test_settings_remember_their_file(tmp_path: Path):
    """Messages about the configuration name the file the settings came from."""
    config = tmp_path / "my.toml"
    config.write_text("[video]\nwidth = 640\n")
    assert load_settings(config=config, home=tmp_path).config_name() == str(config)
    assert load_settings(home=tmp_path).config_name() == str(tmp_path / "moviegen.toml")


def test_relative_paths_in_a_settings_file_are_relative_to_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A settings file in its own folder, loaded from another current directory (as a systemd unit, whose
    cwd is /, or `make demo` run from elsewhere): every relative path setting is taken next to the file,
    `~` is expanded, absolute paths and fontconfig family names stay as they are, and a relative path in
    an environment variable stays relative to the current directory."""
    from stages.characters import expression_names

    conf_dir = tmp_path / "etc" / "moviegen"
    shutil.copytree(ROOT / "samples" / "characters" / "mint", conf_dir / "chars" / "mint")
    config = conf_dir / "moviegen.toml"
    config.write_text(
        'home = "home"\n'
        "[theme]\n"
        'font = "fonts/Mine.otf"\n'
        'logo = "/srv/logo.png"\n'
        "[video.subtitles]\n"
        'font = "Noto Sans CJK JP"\n'
        "[video.background]\n"
        'type = "image"\n'
        'path = "bg/paper.png"\n'
        "[video.bgm]\n"
        'path = "~/music/loop.ogg"\n'
        "[[personas]]\n"
        'id = "mint"\n'
        "[personas.character]\n"
        'folder = "chars/mint"\n'
        "[[personas]]\n"
        'id = "kohaku"\n'
        "[personas.character.psd]\n"
        'path = "kohaku.psd"\n'
        'mouth = {open = "!口/*あ"}\n'
        "[[personas]]\n"
        'id = "png"\n'
        "[personas.character]\n"
        'base = "png/base.png"\n'
        'mouth_open = "png/open.png"\n',
        encoding="utf-8",
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    settings = load_settings(config=Path("..") / "etc" / "moviegen" / "moviegen.toml")

    assert settings.home == conf_dir / "home"
    assert settings.theme.font == str(conf_dir / "fonts" / "Mine.otf")
    assert settings.theme.logo == Path("/srv/logo.png")
    assert settings.video.subtitles.font == "Noto Sans CJK JP"
    assert settings.video.background.path == conf_dir / "bg" / "paper.png"
    assert settings.video.bgm.path == tmp_path / "me" / "music" / "loop.ogg"
    mint, kohaku, png = settings.personas
    assert mint.character.folder == conf_dir / "chars" / "mint"
    assert "happy" in expression_names(mint.character)  # the folder is really read from here
    assert kohaku.character.psd.path == conf_dir / "kohaku.psd"
    assert kohaku.character.psd.mouth.open == ["!口/*あ"]  # layer paths are not file paths
    assert (png.character.base, png.character.mouth_open) == (conf_dir / "png" / "base.png", conf_dir / "png" / "open.png")

    monkeypatch.setenv("MOVIEGEN_VIDEO__BGM__PATH", "music/env.ogg")
    assert load_settings(config=config).video.bgm.path == Path("music/env.ogg")
