"""``ome-agent inspect``: exit codes, the table, --json (through the real entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ome_agent.cli import main
from tests.data.safetensors_fixtures import count_of, llama_like_shards, shard_bytes, write_shard
from tests.servers.hf_hub_server import HubServer

CONFIGS = Path(__file__).parent / "data" / "hf-configs"


def _model(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text((CONFIGS / "mixtral.json").read_text())
    write_shard(tmp_path / "model.safetensors", {"w": ("BF16", [1000, 1000])})
    return tmp_path


def test_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["inspect", str(_model(tmp_path))])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines() if "  " in line)
    assert "MixtralForCausalLM" in result.output
    assert "1,000,000" in result.output
    assert lines["dtype"].strip() == "bfloat16"


def test_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["inspect", str(_model(tmp_path)), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["parameterCount"] == 1_000_000
    assert data["parameterCountSource"] == "safetensors"
    assert data["maxTokens"] == 32768
    assert data["modelFormat"] == {"name": "safetensors", "version": "1.0.0"}
    assert data["errors"] == []


def test_unreadable_config_exits_1_and_still_prints_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"{broken")
    write_shard(tmp_path / "model.safetensors", {"w": ("BF16", [10])})
    result = CliRunner().invoke(main, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["parameterCount"] == 10
    assert data["errors"][0].startswith("config.json: malformed JSON")
    assert "gave no usable field" in result.stderr


def test_wrong_types_are_reported_as_ignored(tmp_path: Path) -> None:
    config = {"model_type": "llama", "hidden_size": "big", "num_hidden_layers": 2.5}
    (tmp_path / "config.json").write_text(json.dumps(config))
    described = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert described.exit_code == 0, described.output  # model_type is usable
    assert "config.json: hidden_size 'big' is not a positive integer: ignored" in described.stderr
    assert "config.json: num_hidden_layers 2.5 is not a positive integer: ignored" in (
        described.stderr
    )
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": "big", "architectures": 7}))
    nothing = CliRunner().invoke(main, ["inspect", str(tmp_path), "--json"])
    assert nothing.exit_code == 1
    errors = json.loads(nothing.stdout)["errors"]
    assert "config.json: architectures 7 is not a list of names: ignored" in errors
    assert "gave no usable field" in nothing.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        ["inspect", str(tmp_path / "missing")],
        ["inspect", str(tmp_path), "--schema-path", "../escape.json"],
        ["inspect", str(tmp_path), "--revision", "main"],
        ["inspect", "s3://bucket/model"],
        ["inspect", "hf://not a repo"],
    ]
    for args in cases:
        out = CliRunner().invoke(main, args)
        assert out.exit_code == 2, (args, out.output)
        assert out.output.startswith("error: "), out.output
        assert out.output.count("\n") == 1, out.output
        assert "Traceback" not in out.output


def test_remote_through_the_console_script(tmp_path: Path) -> None:
    shards = llama_like_shards(4)
    files = {name: shard_bytes(t) for name, t in shards.items()}
    files["config.json"] = (CONFIGS / "qwen3_4b.json").read_bytes()
    script = Path(sys.executable).with_name("ome-agent")
    with HubServer(lfs_threshold=1024 * 1024) as hub:
        hub.add_repo("org/m", files)
        proc = subprocess.run(
            [str(script), "inspect", "hf://org/m", "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"HF_ENDPOINT": hub.endpoint, "PATH": "/usr/bin:/bin"},
        )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["parameterCount"] == count_of(shards)
    assert data["modelType"] == "qwen3"


def test_unreachable_hub_exits_1(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("ome-agent")
    proc = subprocess.run(
        [str(script), "inspect", "hf://org/m"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot reach the Hub")
    assert "Traceback" not in proc.stderr


def test_termination_log_holds_the_node_report_config(tmp_path: Path) -> None:
    """What the controller's pvc:// inspection Job leaves for the kubelet to carry in
    the Pod's status: compact JSON of the node-report config, under 4096 bytes."""
    log = tmp_path / "termination-log"
    (tmp_path / "m").mkdir()
    result = CliRunner().invoke(
        main, ["inspect", str(_model(tmp_path / "m")), "--termination-log", str(log)]
    )
    assert result.exit_code == 0, result.output
    text = log.read_text()
    assert len(text.encode()) <= 4096
    config = json.loads(text)
    assert text == json.dumps(config, separators=(",", ":"), sort_keys=True)  # compact
    assert config["modelArchitecture"] == "MixtralForCausalLM"
    assert config["decodedModelConfiguration"]["parameter_count"] == "1M"  # OME's type
    assert config["parameterCount"] == 1_000_000


@pytest.mark.parametrize(
    ("with_model", "args", "code", "reason"),
    [
        # a claim's sub path with no model in it
        (False, (), 1, "config.json: not found in the model directory (nor a subfolder); "
         "the model's config gave no usable field (model_type, architectures): fix its "
         "config.json, or point --schema-path at the right one"),
        (True, ("--schema-path", "../x.json"), 2, "--schema-path: "),
    ],
)  # fmt: skip
def test_termination_log_holds_the_reason_of_a_failure(
    tmp_path: Path, with_model: bool, args: tuple[str, ...], code: int, reason: str
) -> None:
    """A failed pvc:// inspection Pod's status carries its termination message: the
    reason, one line, never an empty or "{}" config."""
    log = tmp_path / "termination-log"
    model = tmp_path / "m"
    model.mkdir()
    if with_model:
        _model(model)
    result = CliRunner().invoke(
        main, ["inspect", str(model), "--json", "--termination-log", str(log), *args]
    )
    assert result.exit_code == code, result.output
    text = log.read_text()
    assert text.startswith(reason), text
    assert "\n" not in text
