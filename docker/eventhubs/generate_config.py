#!/usr/bin/env python3
"""Write the Event Hubs emulator's Config.json from shared/topology.json.

The emulator creates its namespace, hubs and consumer groups from this file at start-up,
so it must name the same hub, partition count and consumer groups as the code and
infra/ (tests/test_infra_deploy.py fails when the checked-in file drifts).

    python docker/eventhubs/generate_config.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPOLOGY = HERE.parent.parent / "shared" / "topology.json"
CONFIG = HERE / "Config.json"

# The emulator accepts exactly this namespace name (its Config-schema.json enum).
EMULATOR_NAMESPACE = "emulatorNs1"


def emulator_config(topology: dict) -> dict:
    hub = topology["eventHub"]
    return {
        "UserConfig": {
            "NamespaceConfig": [
                {
                    "Type": "EventHub",
                    "Name": EMULATOR_NAMESPACE,
                    "Entities": [
                        {
                            "Name": hub["name"],
                            # The schema types PartitionCount as a string.
                            "PartitionCount": str(hub["partitionCount"]),
                            # $Default exists implicitly and may not be listed.
                            "ConsumerGroups": [
                                {"Name": group} for group in hub["consumerGroups"]
                            ],
                        }
                    ],
                }
            ],
            "LoggingConfig": {"Type": "File"},
        }
    }


def render(topology: dict) -> str:
    return json.dumps(emulator_config(topology), indent=2) + "\n"


def main() -> None:
    topology = json.loads(TOPOLOGY.read_text())
    CONFIG.write_text(render(topology))
    print(f"wrote {CONFIG}")


if __name__ == "__main__":
    main()
