"""Test data: real config.json files (hf-configs/) and safetensors shard builders."""
