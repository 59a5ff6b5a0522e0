"""The cluster launcher files (`ray up`) pass Ray's own checks: ``prepare_config`` (merges the provider's
defaults.yaml, as `ray up` does) then ``validate_config`` (ray-schema.json plus Ray's cross-field rules).

No cloud call: the AWS provider's ``bootstrap_config`` (which talks to EC2/IAM) is the step after these two and
is not run. What this adds beyond the schema: the node types a recipe relies on exist with the resources
the docs name (GPU tokenizer nodes carry ``tokenizer_gpu``, CPU decode nodes ``decode_cpu``), and the
dashboard/job API is never bound to every interface.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _checked(name: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / name).read_text())
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    commands = " ".join(raw["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in commands and "--dashboard-host=127.0.0.1" in commands, name
    return config


def test_on_prem_cluster_file_is_valid():
    config = _checked("ray_cluster.yaml")
    assert config["provider"]["type"] == "local"


def test_cloud_cluster_file_has_cpu_decode_and_gpu_tokenizer_nodes():
    config = _checked("ray_cluster_cloud.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["resources"].get("tokenizer_gpu", 0) >= 1 for t in gpu)
    assert all(t["node_config"]["InstanceType"].split(".")[0] in ("g5", "g6") for t in gpu)
    cpu = [t for t in types.values() if t["resources"].get("decode_cpu")]
    assert cpu and all(not t["resources"].get("GPU") for t in cpu)
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0  # no stage work on the driver's node
    setup = " ".join(config["setup_commands"])
    assert "make fixtures" in setup and "espeak-ng" in setup


def test_validator_rejects_a_broken_file():
    """The check can fail: an unknown key, or a head type that is not a node type, is refused."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "ray_cluster_cloud.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["gpu_tokens"]["resource"] = {"GPU": 1}  # typo of `resources`
    with pytest.raises(Exception, match="resource"):
        validate_config(prepare_config(bad))
    bad = copy.deepcopy(raw)
    bad["head_node_type"] = "missing"
    with pytest.raises(Exception):
        validate_config(prepare_config(bad))
