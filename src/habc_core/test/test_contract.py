"""The episode contract: sidecar validation and atomic I/O, layout, enums in sync with .msg."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from habc_core import contract
from habc_core.contract import EpisodeMeta, SidecarError, read_sidecar, write_sidecar
from habc_core.rostypes import find_msg_dir


def make_meta(**changes) -> EpisodeMeta:
    base = dict(
        episode_id="ep_0001",
        task="put the pencil in the pouch",
        source="rollout",
        outcome="success",
        round=2,
        model_index=1200,
        robot="arx_x5_bimanual_sim",
        control_hz=30.0,
        t_max_steps=900,
        start_ns=1_000,
        end_ns=2_000,
        intervened=False,
    )
    base.update(changes)
    return EpisodeMeta(**base)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("episode_id", "../escape"),
        ("task", "  "),
        ("source", "teleop"),
        ("outcome", "win"),
        ("round", -1),
        ("model_index", -2),
        ("control_hz", 0.0),
        ("t_max_steps", 0),
        ("end_ns", 10),
        ("intervened", 1),
        ("schema_version", contract.SCHEMA_VERSION + 1),
    ],
)
def test_meta_rejects_bad_field_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        make_meta(**{field: value})


def test_sidecar_round_trip_and_relabel(tmp_path: Path):
    meta = make_meta()
    write_sidecar(tmp_path, meta)
    assert read_sidecar(tmp_path) == meta
    write_sidecar(tmp_path, meta.replace(outcome="failure"))
    assert read_sidecar(tmp_path).outcome == "failure"
    # No temporary files are left behind by the atomic write.
    assert sorted(p.name for p in tmp_path.iterdir()) == [contract.SIDECAR_NAME]


def test_missing_sidecar_is_none_and_bad_sidecar_names_file(tmp_path: Path):
    assert read_sidecar(tmp_path) is None
    (tmp_path / contract.SIDECAR_NAME).write_text("episode_id: x\nbogus: 1\n")
    with pytest.raises(SidecarError, match=r"episode\.yaml.*bogus"):
        read_sidecar(tmp_path)
    (tmp_path / contract.SIDECAR_NAME).write_text("{{{")
    with pytest.raises(SidecarError, match="episode.yaml"):
        read_sidecar(tmp_path)


def test_layout(tmp_path: Path):
    d = contract.episode_dir(tmp_path, "Put the Pencil in the pouch!", 3, "ep_1")
    assert d == tmp_path / "put_the_pencil_in_the_pouch" / "round_003" / "ep_1"
    eid = contract.make_episode_id(1_700_000_000_123_456_000)
    assert eid == "ep_20231114T221320_123456"
    d.mkdir(parents=True)
    (d / "ep_1_0.mcap").write_bytes(b"")
    assert contract.find_episode_dirs(tmp_path) == [d]
    assert contract.storage_files(d) == [d / "ep_1_0.mcap"]


def test_topics():
    topics = contract.contract_topics()
    assert topics["/camera/top/color/image_raw"] == contract.IMAGE_TYPE
    assert topics["/right_arm/command"] == contract.ARM_COMMAND_TYPE
    assert "/camera/left_wrist/color/image_raw/compressed" in contract.contract_topics(
        compressed_images=True
    )
    with pytest.raises(ValueError, match="camera"):
        contract.image_topic("bottom")


def test_enum_values_match_msg_files():
    msg_dir = find_msg_dir()

    def consts(name: str) -> dict[str, int]:
        text = (msg_dir / f"{name}.msg").read_text()
        return {m[1]: int(m[2]) for m in re.finditer(r"^uint8 (\w+)=(\d+)", text, re.M)}

    assert consts("ControlAuthority") == {
        "POLICY": contract.AUTHORITY_POLICY,
        "HUMAN": contract.AUTHORITY_HUMAN,
        "HOLD": contract.AUTHORITY_HOLD,
    }
    assert consts("ArmCommand") == {
        "MODE_JOINT": contract.MODE_JOINT,
        "MODE_EE": contract.MODE_EE,
        **{f"SAFETY_{name.upper()}": bit for bit, name in contract.SAFETY_FLAG_NAMES.items()},
    }
    assert consts("EpisodeEvent") == {
        "START": contract.EVENT_START,
        "END": contract.EVENT_END,
        "RELABEL": contract.EVENT_RELABEL,
    }


def test_names_are_unique_per_arm():
    names = [n for arm in ("left", "right") for n in contract.joint_names(arm)]
    assert len(names) == len(set(names)) == 14
    assert contract.joint_names("left")[0] == "left_joint1"
    assert contract.base_frame("right") == "right_base_link"
    with pytest.raises(ValueError, match="arm"):
        contract.joint_names("middle")


def test_recorded_topics_hold_the_contract_and_the_optional_topics():
    rec = contract.recorded_topics()
    assert set(contract.contract_topics()) <= set(rec)
    assert rec[contract.ENV_STATE_TOPIC] == contract.ENV_STATE_TYPE
    assert rec[contract.command_request_topic("left")] == contract.ARM_COMMAND_TYPE
