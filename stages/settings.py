"""The one settings tree: ``moviegen.toml`` plus ``MOVIEGEN_<SECTION>__<KEY>`` variables.

No other module reads ``os.environ`` for configuration. Each stage reads its own section.
Precedence: explicit arguments > environment > TOML file > defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from stages.settings_errors import InvalidSettings, SettingsError, explain, unreadable  # noqa: F401 (re-exported)
from stages.settings_paths import anchor_paths

Hex = str  # "#rrggbb" or "#rrggbbaa"


class _Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class _KeyFromEnv(_Section):
    """A section with ``api_key`` / ``api_key_env``: the named variable is read here, at load time.

    This keeps the rule that only the settings read the environment; stages see ``api_key`` only.
    """

    @model_validator(mode="after")
    def _key_from_env(self):
        if getattr(self, "api_key", None) is None and getattr(self, "api_key_env", None):
            value = os.environ.get(self.api_key_env)
            if value:
                self.api_key = SecretStr(value)
        return self


_DEFAULT_SLOTS = {"render": 1, "tts": 1, "network": 4, "cpu": 2}


class DaemonSettings(_Section):
    max_jobs: int = Field(2, ge=1, description="jobs running at once past their fetch (fetches wait on network slots)")
    slots: dict[str, int] = Field(
        default_factory=lambda: dict(_DEFAULT_SLOTS),
        description="per-resource slots: a stage holds its resource's slot while it runs",
    )
    settle_seconds: float = Field(1.0, ge=0, description="size and mtime unchanged this long = file complete")
    rescan_seconds: float = Field(5.0, gt=0, description="periodic inbox rescan (watchdog events can be missed)")
    max_input_bytes: int = Field(20 * 1024 * 1024, gt=0, description="inbox files larger than this go to failed/")
    retry_attempts: int = Field(3, ge=1, description="attempts per stage for TransientError")
    retry_base_seconds: float = Field(2.0, ge=0, description="first backoff; doubles per attempt, with jitter")
    retry_max_seconds: float = Field(60.0, ge=0)
    stage_timeout_seconds: dict[str, float] = Field(
        default_factory=lambda: {"fetch": 120, "script": 600, "audio": 1800, "slides": 600, "video": 3600}
    )
    progress_interval_seconds: float = Field(1.0, ge=0, description="at most one stage.progress event this often")
    shutdown_grace_seconds: float = Field(8.0, ge=0)
    crash_limit: int = Field(
        2, ge=1, description="a job whose stage was running when the daemon died this many times in a row "
        "(no stage finished in between) fails at the next start instead of being resumed"
    )
    keep_done_days: float = Field(
        7.0, ge=0, description="a finished or cancelled job's folder (state/jobs/<id>) is removed this many days "
        "after it ended; its events stay"
    )
    keep_failed_days: float = Field(
        30.0, ge=0, description="the same for a failed job (kept longer: `moviegen retry` needs the folder)"
    )
    gc_interval_hours: float = Field(
        24.0, gt=0, description="besides after each job, the daemon trims job folders and caches this often when idle"
    )
    stage_factory: str = Field(
        "stages.pipeline:default_stages",
        description="module:function returning the stages by name (tests plug in their own)",
    )

    @field_validator("slots", mode="before")
    @classmethod
    def _slots_over_defaults(cls, slots: object) -> object:
        # Setting one slot ([daemon.slots] render = 2) keeps the defaults of the others.
        return {**_DEFAULT_SLOTS, **slots} if isinstance(slots, dict) else slots

    @field_validator("slots")
    @classmethod
    def _slots_positive(cls, slots: dict[str, int]) -> dict[str, int]:
        bad = sorted(name for name, count in slots.items() if count < 1)
        if bad:
            raise ValueError(f"slot counts must be at least 1 (a 0 would block those stages forever): {', '.join(bad)}")
        return slots


class FetchSettings(_Section):
    allow_private: bool = Field(False, description="allow private, loopback and link-local addresses")
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = "Mozilla/5.0 (compatible; moviegen/0.1; +https://github.com/moviegen/moviegen)"
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="host names or IP networks (CIDR) reachable even when private, e.g. an intranet wiki",
    )
    min_text_chars: int = Field(
        100, ge=0, description="trafilatura's MIN_EXTRACTED_SIZE; below this readability-lxml is tried too"
    )


class ScriptLimitSettings(_Section):
    """Budgets a script file must stay within; checked while it is read, before any work is spent."""

    max_bytes: int = Field(4 * 1024 * 1024, gt=0, description="file size; larger files are not read at all")
    max_nodes: int = Field(
        100_000, gt=0, description="YAML/JSON values, counting every use of an alias (stops billion laughs)"
    )
    max_depth: int = Field(32, ge=8, le=200, description="nesting of lists and mappings")
    max_sections: int = Field(1000, gt=0)
    max_phrases: int = Field(10_000, gt=0, description="narrations in all sections")
    max_chars: int = Field(500_000, gt=0, description="characters of all narration texts and readings")
    max_speech_minutes: float = Field(120.0, gt=0, description="estimated speaking time, pauses excluded")


class ScriptSettings(_Section):
    writer: Literal["extractive", "llm"] = "extractive"
    language: str = Field("ja", description="default language when the input does not say")
    max_minutes: float = Field(5.0, gt=0, description="trim the script to about this long")
    style: Literal["narration", "dialogue"] = "narration"
    limits: ScriptLimitSettings = Field(default_factory=ScriptLimitSettings)


class LLMSettings(_KeyFromEnv):
    base_url: str = "https://openrouter.ai/api/v1"
    model: str = ""
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(None, description="name of an environment variable holding the key")
    timeout: float = 120.0
    max_input_tokens: int = 12000
    temperature: float = 0.4
    max_output_tokens: int = Field(8192, gt=0, description="the reply's token cap (max_tokens)")
    require_parameters: bool | None = Field(
        None, description="send OpenRouter's provider.require_parameters; None: only for openrouter.ai"
    )
    attempts: int = Field(6, ge=1, description="tries per request on 429, 5xx, timeouts and connection errors")
    retry_base_seconds: float = Field(2.0, ge=0, description="first wait between tries; doubles each time")
    retry_max_seconds: float = Field(
        30.0, ge=0, description="longest wait (caps Retry-After too); the defaults wait about a minute in all"
    )


def _layer_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


LayerPaths = Annotated[list[str], BeforeValidator(_layer_list)]
"""PSD layer paths such as ``"!口/*あ"`` (a string or a list of them)."""


class PsdEyeLayers(_Section):
    """The layers shown for each eye state of a layered PSD character."""

    open: LayerPaths = Field(default_factory=list)
    closed: LayerPaths = Field(default_factory=list)


class PsdMouthLayers(_Section):
    """The layers shown for each mouth state; an empty ``half`` falls back to ``open``."""

    closed: LayerPaths = Field(default_factory=list)
    half: LayerPaths = Field(default_factory=list)
    open: LayerPaths = Field(default_factory=list)


class PsdExpression(_Section):
    """One expression of a PSD character: the layers it turns on, and optionally its own eyes/mouth."""

    layers: LayerPaths = Field(default_factory=list)
    eyes: PsdEyeLayers | None = Field(None, description="None: the character's eyes")
    mouth: PsdMouthLayers | None = Field(None, description="None: the character's mouth")


class PsdCharacterSettings(_Section):
    """A layered PSD 立ち絵 with PSDToolKit naming (stages/characters/psd.py)."""

    path: Path
    flipx: bool = Field(False, description="mirror the picture; layers named '…:flipx' replace their plain twins")
    eyes: PsdEyeLayers = Field(default_factory=PsdEyeLayers)
    mouth: PsdMouthLayers = Field(default_factory=PsdMouthLayers)
    expressions: dict[str, PsdExpression] = Field(default_factory=lambda: {"normal": PsdExpression()})


class CharacterSettings(_Section):
    """A persona's character: one of three sources (stages/characters/)."""

    base: Path | None = Field(None, description="PNG set: the picture (with mouth_open, eyes_closed beside it)")
    mouth_open: Path | None = None
    eyes_closed: Path | None = None
    folder: Path | None = Field(
        None, description="a folder per expression: <folder>/<expr>/base.png, mouth/{closed,half,open}.png, eyes/{open,closed}.png"
    )
    psd: PsdCharacterSettings | None = None
    default_expression: str = Field("normal", description="for lines without `expression:`")
    position: Literal["left", "right", "center"] | None = Field(
        None, description="None: a free slot (right, then left, then further in)"
    )
    height: float = Field(0.45, gt=0, le=1, description="character height as a fraction of the frame's short side (landscape: the height)")

    @model_validator(mode="after")
    def _one_source(self) -> "CharacterSettings":
        given = [name for name in ("base", "folder", "psd") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of base (a PNG set), folder or psd (given: {', '.join(given) or 'none'})")
        if self.psd is not None and self.default_expression not in self.psd.expressions:
            raise ValueError(
                f"default_expression {self.default_expression!r} is not among psd.expressions "
                f"({', '.join(self.psd.expressions)})"
            )
        return self


class Persona(_Section):
    id: str
    name: str = ""
    engine: Literal["openjtalk", "espeak", "voicevox"] | None = Field(
        None, description="None: audio.engine"
    )
    speaker: int | str | None = Field(None, description="VOICEVOX style id, espeak voice, ...")
    speed: float = Field(1.0, gt=0, description="speaking rate; 1 = the voice's own (VOICEVOX speedScale)")
    pitch: float = Field(
        0.0, description="VOICEVOX pitchScale units (±0.15 typical); about 0.0145 per semitone elsewhere"
    )
    intonation: float = Field(1.0, ge=0, description="VOICEVOX intonationScale (other engines ignore it)")
    volume: float = Field(1.0, gt=0, description="gain relative to audio.loudness_target_db (2 = +6 dB)")
    pre_phoneme_length: float = Field(0.1, ge=0, description="silence before a phrase, seconds (VOICEVOX)")
    post_phoneme_length: float = Field(0.1, ge=0, description="silence after a phrase, seconds (VOICEVOX)")
    subtitle_color: Hex = "#ffffff"
    character: CharacterSettings | None = None


class PronunciationEntry(_Section):
    surface: str
    reading: str = Field(description="katakana")
    accent: int | None = None
    priority: int = Field(5, ge=0, le=10)


class AudioSettings(_Section):
    engine: Literal["openjtalk", "espeak", "voicevox"] = "openjtalk"
    espeak_voice: str = "en"
    sample_rate: int = 48000
    loudness_target_db: float = Field(-20.0, description="RMS level of speech, dBFS")
    peak_ceiling_db: float = Field(-1.0, le=0, description="peak limiter ceiling, dBFS")
    max_chunk_chars: int = Field(
        150, ge=20, description="longer phrases are split at a natural break and synthesized in pieces"
    )
    max_phrase_chars: int = Field(3000, ge=20, description="a longer phrase is an InputError")
    espeak_timeout: float = Field(60.0, gt=0, description="seconds per espeak-ng call")
    workers: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        description="processes synthesizing OpenJTalk phrases at once (1: in the daemon's own process)",
    )
    cache_max_gb: float = Field(
        2.0, ge=0, description="clips kept in <cache>/audio, least recently used trimmed beyond this many GB "
        "(10^9 bytes) by the daemon and `moviegen gc`; a running job's clips always stay"
    )


class VoicevoxSettings(_Section):
    url: str = Field("http://127.0.0.1:50021", description="default: the profile's port (VOICEVOX 50021, AivisSpeech 10101, NEMO 50121)")
    profile: Literal["auto", "voicevox", "aivisspeech", "nemo"] = Field(
        "auto", description="which VOICEVOX-compatible engine (stages/audio/voicevox.py); auto: its /engine_manifest says"
    )
    speaker: int = Field(3, description="a style id (AivisSpeech's are 32-bit numbers such as 888753760)")
    concurrency: int = Field(2, ge=1)
    timeout: float = 60.0
    attempts: int = Field(
        6, ge=1, description="tries per call while the engine is unreachable or answers 429/5xx (e.g. restarting)"
    )
    retry_base_seconds: float = Field(2.0, ge=0, description="first wait between tries; doubles each time")
    retry_max_seconds: float = Field(
        30.0, ge=0, description="longest wait (caps Retry-After too); the defaults wait about a minute in all"
    )

    @model_validator(mode="after")
    def _profile_port(self) -> "VoicevoxSettings":
        if "url" not in self.model_fields_set and self.profile in _VOICEVOX_PORTS:
            self.url = f"http://127.0.0.1:{_VOICEVOX_PORTS[self.profile]}"
        return self


_VOICEVOX_PORTS = {"aivisspeech": 10101, "nemo": 50121}  # the engines' documented default ports


class ThemeSettings(_Section):
    background: Hex = "#10233f"
    accent: Hex = "#3fb68b"
    text: Hex = "#f5f7fa"
    font: str = Field(
        "Noto Sans CJK JP", description="a fontconfig family or a path", json_schema_extra={"path": "if_path_like"}
    )
    logo: Path | None = None
    panel_opacity: float = Field(
        0.72, ge=0.3, le=1,
        description="transparent slides (a section background override, or an image/video video.background): "
        "opacity of the rounded panels in the background colour behind their text",
    )


class SafeAreaSettings(_Section):
    subtitle_band: float = Field(0.22, ge=0, lt=1, description="lower band kept free, fraction of height")
    corner_width: float = Field(0.22, ge=0, lt=0.5, description="lower corners kept free for characters")
    corner_height: float = Field(0.5, ge=0, lt=1)
    margin: float = Field(0.05, ge=0, lt=0.5)


class ImageApiSettings(_KeyFromEnv):
    base_url: str = "https://openrouter.ai/api/v1"
    model: str = ""
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    form: Literal["chat", "images"] = "chat"
    timeout: float = 120.0
    attempts: int = 3
    size: str | None = Field(None, description="images form: requested size, e.g. 1536x1024 (None: the API's default)")
    retry_base_seconds: float = Field(1.0, ge=0, description="first backoff on 429/5xx without Retry-After; doubles")
    retry_max_seconds: float = Field(30.0, ge=0, description="longest wait between attempts (caps Retry-After too)")


class SlidesSettings(_Section):
    backend: Literal["typeset", "image-api"] = "typeset"
    safe_area: SafeAreaSettings = Field(default_factory=SafeAreaSettings)
    image_api: ImageApiSettings = Field(default_factory=ImageApiSettings)
    max_image_bytes: int = 20 * 1024 * 1024
    min_image_size: int = 64
    image_fit: Literal["cover", "contain"] = "contain"
    workers: int = Field(2, ge=1, le=8, description="slides drawn in parallel")
    cache_max_gb: float = Field(
        1.0, ge=0, description="slides and article images kept in <cache>/slides and <cache>/images, least recently "
        "used trimmed beyond this many GB by the daemon and `moviegen gc`; a running job's slides always stay"
    )


class BackgroundSettings(_Section):
    type: Literal["color", "image", "video"] = "color"
    value: Hex = "#000000"
    path: Path | None = None
    fit: Literal["cover", "contain"] = "cover"


class BgmSettings(_Section):
    path: Path | None = None
    volume: float = Field(0.15, ge=0, le=2)
    fade_in: float = 1.0
    fade_out: float = 2.0
    loop: bool = True
    duck: bool = True
    duck_volume: float = Field(0.4, ge=0, le=1, description="BGM gain under narration when ducking")


class TimingSettings(_Section):
    initial_pause: float = 1.0
    section_pause: float = 1.0
    speaker_change_pause: float = 0.5
    ending_pause: float = 1.0
    phrase_gap: float = Field(0.0, ge=0, description="pause between phrases of one speaker")


class TransitionSettings(_Section):
    type: Literal["fade", "slide", "wipe", "none"] = "fade"
    duration: float = Field(0.5, ge=0)


class SubtitleSettings(_Section):
    font: str | None = Field(None, description="None: theme.font", json_schema_extra={"path": "if_path_like"})
    size: float = Field(0.055, gt=0, description="font size as a fraction of the frame's short side (landscape: the height)")
    max_lines: int = 2
    outline: float = 0.004
    bottom_margin: float = Field(0.04, ge=0, lt=0.5, description="space below the last line, fraction of the height")
    min_scale: float = Field(
        0.8, gt=0, le=1, description="a cue too long for max_lines shrinks down to this scale, then becomes several cues"
    )


class VideoSettings(_Section):
    renderer: Literal["ffmpeg", "remotion"] = "ffmpeg"
    ffmpeg_mode: Literal["segments", "graph"] = Field(
        "segments",
        description="segments: stills encoded once + per-interval encodes joined without re-encoding (fast); "
        "graph: one filter graph for the whole video (simple, slow: the benchmark's baseline)",
    )
    workers: int = Field(
        default_factory=lambda: min(4, max(2, os.cpu_count() or 2)), ge=1,
        description="threads x264 encodes with (segments mode; the decode check and the AAC encode run beside it)",
    )
    decode_check: Literal["encoded", "full"] = Field(
        "encoded",
        description="segments mode, before handing the file on: encoded = decode every picture x264 made, in the "
        "final stream, and count the spliced copies' packets (about 3x cheaper); full = decode every frame",
    )
    cache_max_gb: float = Field(
        5.0, ge=0,
        description="rendered videos kept in <cache>/video (keyed by timeline, assets, renderer and settings), "
        "least recently used evicted beyond this many GB (10^9 bytes); 0 turns the render cache off",
    )
    format: Literal["landscape", "shorts"] | None = Field(
        None,
        description="a named frame size: landscape = 1920x1080 (16:9), shorts = 1080x1920 (9:16, YouTube Shorts, "
        "TikTok, Reels); sets width and height (setting either as well is an error). video.preset is x264's",
    )
    width: int = 1920
    height: int = 1080
    fps: int = 30
    crf: int = 23
    preset: str = "veryfast"
    timing: TimingSettings = Field(default_factory=TimingSettings)
    transition: TransitionSettings = Field(default_factory=TransitionSettings)
    subtitles: SubtitleSettings = Field(default_factory=SubtitleSettings)
    background: BackgroundSettings = Field(default_factory=BackgroundSettings)
    bgm: BgmSettings = Field(default_factory=BgmSettings)
    end_card: bool | None = Field(
        None, description="a credits picture after the last phrase (cast and voice credits; stages/video/endcard.py); "
        "None: when the video has characters or a VOICEVOX-compatible voice",
    )
    end_card_seconds: float = Field(4.0, gt=0, description="how long the end card is shown")

    @model_validator(mode="after")
    def _format_sets_the_size(self) -> "VideoSettings":
        if self.format is None:
            return self
        width, height = VIDEO_FORMATS[self.format]
        clash = [f"{k} = {getattr(self, k)}" for k, v in (("width", width), ("height", height))
                 if k in self.model_fields_set and getattr(self, k) != v]
        if clash:
            raise ValueError(f"format = {self.format!r} is {width}x{height}, but {' and '.join(clash)} is set too: "
                             "keep one of them")
        self.width, self.height = width, height
        return self


VIDEO_FORMATS: dict[str, tuple[int, int]] = {"landscape": (1920, 1080), "shorts": (1080, 1920)}
"""``video.format``'s frame sizes (width, height)."""


class RemotionSettings(_Section):
    node: str = "node"
    browser_executable: Path = Path("/usr/bin/chromium")
    concurrency: int = Field(1, ge=1, le=2, description="Chromium tabs rendering at once; 2 gained nothing on 2 cores")
    timeout_seconds: float = 3600.0
    project_dir: Path | None = Field(None, description="the remotion/ folder (package.json, node_modules); None: the one beside the package")
    bundle_cache: Path | None = Field(
        None, description="where bundles are kept; None: remotion/.bundle-cache, or <cache>/remotion-bundles when that is read-only"
    )


def _default_personas() -> list[Persona]:
    return [Persona(id="narrator", name="ナレーター", subtitle_color="#ffffff")]


class Settings(BaseSettings):
    """The whole configuration. Load with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MOVIEGEN_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    _config_file: Path | None = PrivateAttr(None)  # set by load_settings; named in messages

    home: Path = Field(default_factory=lambda: default_home())
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    script: ScriptSettings = Field(default_factory=ScriptSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    voicevox: VoicevoxSettings = Field(default_factory=VoicevoxSettings)
    personas: list[Persona] = Field(default_factory=_default_personas)
    default_persona: str = "narrator"
    pronunciation: list[PronunciationEntry] = Field(default_factory=list)
    slides: SlidesSettings = Field(default_factory=SlidesSettings)
    theme: ThemeSettings = Field(default_factory=ThemeSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    remotion: RemotionSettings = Field(default_factory=RemotionSettings)

    @field_validator("personas")
    @classmethod
    def _unique_personas(cls, personas: list[Persona]) -> list[Persona]:
        ids = [p.id for p in personas]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate persona ids: {', '.join(dupes)}")
        if not personas:
            raise ValueError("at least one persona is needed")
        return personas

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _TOML_PATH.get("path")
        if toml_path is not None:
            sources.append(_AnchoredToml(settings_cls, toml_file=toml_path))
        return tuple(sources)

    # --- derived paths --------------------------------------------------------------------

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def failed(self) -> Path:
        return self.home / "failed"

    @property
    def done(self) -> Path:
        return self.home / "done"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def jobs_dir(self) -> Path:
        return self.state / "jobs"

    @property
    def cache_dir(self) -> Path:
        return self.state / "cache"

    @property
    def db_path(self) -> Path:
        return self.state / "moviegen.db"

    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings were loaded from; None when there was none."""
        return self._config_file

    def config_name(self) -> str:
        """Where a user fixes a setting: the loaded file, else the home's moviegen.toml."""
        return str(self._config_file or self.home / "moviegen.toml")

    def persona(self, persona_id: str | None) -> Persona:
        """The persona with this id; None means the default persona."""
        wanted = persona_id or self.default_persona
        for persona in self.personas:
            if persona.id == wanted:
                return persona
        if persona_id is None:
            return self.personas[0]
        raise KeyError(persona_id)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with secrets masked (for `doctor` and logs)."""
        return self.model_dump(mode="json")


_TOML_PATH: dict[str, Path | None] = {"path": None}


class _AnchoredToml(TomlConfigSettingsSource):
    """The settings file, its relative paths taken relative to its own folder (stages/settings_paths.py)."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        data = super()._read_file(file_path)
        return anchor_paths(data, Settings, Path(os.path.abspath(Path(file_path).expanduser())).parent)


def default_home() -> Path:
    """``$MOVIEGEN_HOME``, else ``~/.local/share/moviegen``."""
    env = os.environ.get("MOVIEGEN_HOME")
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "moviegen"


def load_settings(config: Path | None = None, home: Path | None = None, **overrides: Any) -> Settings:
    """Load settings: explicit overrides > ``MOVIEGEN_*`` environment > TOML > defaults.

    Raises:
        InvalidSettings: a value or key is wrong (a pydantic ``ValidationError`` whose text names the
            file or variable, the key and the allowed values).
        SettingsError: the file is not valid TOML.

    Args:
        config: a TOML file; default ``<home>/moviegen.toml`` when it exists.
        home: the daemon's home folder; default ``$MOVIEGEN_HOME`` or ``~/.local/share/moviegen``.
        overrides: top-level fields, e.g. ``video={"width": 320, "height": 180}``.
    """
    resolved_home = Path(home) if home is not None else None
    if config is None:
        candidate = (resolved_home or default_home()) / "moviegen.toml"
        config = candidate if candidate.is_file() else None
    if resolved_home is not None:
        overrides.setdefault("home", resolved_home)
    _TOML_PATH["path"] = Path(config) if config is not None else None
    try:
        settings = Settings(**overrides)
        settings._config_file = _TOML_PATH["path"]
        return settings
    except ValidationError as exc:
        # Name the file (or variable), the key and the allowed values, not pydantic's raw text.
        raise explain(exc, Settings, _TOML_PATH["path"], overrides) from None
    except tomllib.TOMLDecodeError as exc:
        raise unreadable(_TOML_PATH["path"], exc) from None
    finally:
        _TOML_PATH["path"] = None
