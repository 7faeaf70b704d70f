from pathlib import Path

import pytest

from inlet.config import Config, ConfigError, api_token, load


def test_defaults_match_the_documented_demo_setup() -> None:
    config = load({})
    assert config.org == "DEMO@AdobeOrg"
    assert config.http.port == 8080 and config.data_dir == "var"
    assert config.connection("demo") is not None and not config.connection("demo").authenticated  # type: ignore[union-attr]
    assert config.datastream("demo").origins == ["http://localhost:*", "https://shop.example"]  # type: ignore[union-attr]
    assert config.dataset("prod", "demo-profiles").xdm_class == "profile"  # type: ignore[union-attr]
    assert config.dataset("prod", "demo-events").xdm_class == "experienceevent"  # type: ignore[union-attr]
    assert config.lake.roll_interval == 60
    assert config.http.keep_alive_max_requests > 1000


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "inlet.toml"
    path.write_text('data_dir = "/srv/inlet"\n[http]\nport = 9000\n')
    config = load({"INLET_CONFIG": str(path), "INLET_HTTP_PORT": "9100", "INLET_NATS_URL": "nats://x:4222"})
    assert config.data_dir == "/srv/inlet"
    assert config.http.port == 9100
    assert config.nats.url == "nats://x:4222"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("prot = 1\n", "prot"),
        ("[http]\nprot = 1\n", "prot"),
        ("[http]\nport = 99999\n", "port"),
        ('[[connections]]\nid = "a"\nauthenticated = true\n', "needs tokens"),
        ('[[connections]]\nid = "a"\n[[connections]]\nid = "a"\n', "duplicate"),
        ('[[connections]]\nid = "a"\ndatasets = ["nope"]\n', "unknown dataset"),
        ("[nats]\nmax_age = 60\n", "duplicate_window"),
        ('[nats]\nsync_interval = "sometimes"\n', "sync_interval"),
    ],
)
def test_bad_config_fails_loudly_naming_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "inlet.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=needle):
        load({"INLET_CONFIG": str(path)})


def test_dev_api_token_is_random_and_stable_per_data_dir(tmp_path: Path) -> None:
    config = Config(data_dir=str(tmp_path))
    first = api_token(config)
    assert first.startswith("dev-") and len(first) > 20
    assert api_token(config) == first
    assert api_token(Config(data_dir=str(tmp_path / "other"))) != first
    assert api_token(Config(data_dir=str(tmp_path), api_token="set")) == "set"


def test_the_example_file_is_the_default() -> None:
    example = load({"INLET_CONFIG": str(Path(__file__).parents[3] / "inlet.example.toml")})
    assert example == load({})


def test_the_example_file_documents_every_section_and_nats_key() -> None:
    """Sections that are empty by default ([[api_tokens]], [[computed_attributes]]) appear
    commented out; every key of [nats] (retention, fsync policy) appears with its default."""
    text = (Path(__file__).parents[3] / "inlet.example.toml").read_text()
    for name in Config.__struct_fields__:
        assert any(marker in text for marker in (f"[{name}]", f"[[{name}]]", f"\n{name} =")), name
    from inlet.config import Nats

    for key in Nats.__struct_fields__:
        assert f"\n{key} =" in text, key
