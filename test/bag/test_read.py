"""Reading imperfect bags (nora_ros.bag.read / run): each problem is named, and what can be read
still replays.

The damaged bags are made from a real recorded trial the way they happen: a topic that was not
recorded, a recording killed mid-write (the storage file cut short, no metadata.yaml), a topic
of a package this machine does not have.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("mujoco")
pytest.importorskip("rosbags")

from bag_helpers import copy_bag, record, storage_file, truncate  # noqa: E402

from nora_ros.bag.read import read_bag  # noqa: E402
from nora_ros.bag.replay import replay  # noqa: E402
from nora_ros.bag.run import RecordedRun  # noqa: E402
from nora_ros.errors import BagError  # noqa: E402
from nora_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402

NS = "/nora"


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return record(tmp_path_factory.mktemp("read")).paths[0]


@pytest.fixture(scope="module")
def db3_bag(tmp_path_factory):
    return record(tmp_path_factory.mktemp("read_db3"), storage="sqlite3").paths[0]


def _scripted(run):
    policy = ScriptedExpertPolicy()
    return replay(run, lambda trial: policy, policy_name="scripted")


def test_a_missing_topic_is_named_and_the_rest_still_replays(bag, tmp_path, capsys):
    damaged = copy_bag(bag, tmp_path / "no_chunks", drop=(f"{NS}/action_chunk",))
    run = RecordedRun.open(damaged)
    assert run.missing == [f"{NS}/action_chunk"]
    assert any(f"missing topic {NS}/action_chunk (nora_ros/msg/ActionChunk)" in p for p in run.problems)
    with pytest.raises(BagError, match=f"missing topic {NS}/action_chunk"):
        run.require()
    run.require([f"{NS}/cmd"])  # present: no error for a caller that needs only that
    result = _scripted(run)
    s = result.summary()
    frames = len(run.frame_messages)
    assert s["frames"] == s["frames_fed"] == frames > 20 and s["chunks_compared"] == 0
    assert s["ticks_compared"] == len(run.commands) > 40
    assert any("no recorded action chunks" in p for p in s["problems"])
    # the command line: a warning naming it, the replay done; --strict makes it an error
    from nora_ros.cli import main

    assert main(["replay", str(damaged), "--policy", "scripted", "--out", str(tmp_path / "out"), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["frames_fed"] == frames and f"missing topic {NS}/action_chunk" in out.err
    assert main(["replay", str(damaged), "--strict", "--out", str(tmp_path / "out2")]) == 1
    assert f"error: {damaged}: missing topic {NS}/action_chunk" in capsys.readouterr().err


def test_a_truncated_mcap_file_is_salvaged_up_to_the_cut(bag, tmp_path):
    full = read_bag(bag)
    cut = truncate(bag, tmp_path / "cut", 0.6)
    contents = read_bag(cut)
    (problem,) = contents.problems
    assert str(storage_file(cut)) in problem and "truncated" in problem and "File end magic is invalid" in problem
    total, kept = sum(full.counts.values()), sum(contents.counts.values())
    assert 0.3 * total < kept < total
    # what was kept is the beginning of the run, unchanged
    for topic, msgs in contents.messages.items():
        assert [m.raw for m in msgs] == [m.raw for m in full.messages[topic][:len(msgs)]], topic
    result = _scripted(RecordedRun(contents))
    s = result.summary()
    assert 10 < s["chunks_compared"] < len(RecordedRun(full).chunks)
    assert max(s["action_error"]["max"].values()) == 0.0 and max(s["cmd_error"]["max"].values()) == 0.0


def test_a_recording_killed_before_metadata_yaml_reads_its_storage_file(bag, db3_bag, tmp_path):
    for source, name in ((bag, "mcap"), (db3_bag, "db3")):
        copy = shutil.copytree(source, tmp_path / name)
        (copy / "metadata.yaml").unlink()
        contents = read_bag(copy)
        (problem,) = contents.problems
        assert "has no metadata.yaml" in problem and storage_file(copy).name in problem
        assert contents.counts == read_bag(source).counts


def test_a_truncated_sqlite3_file_is_an_error_naming_the_file(db3_bag, tmp_path):
    cut = truncate(db3_bag, tmp_path / "cut", 0.5)
    with pytest.raises(BagError, match=r"cut\.db3|cut/.*\.db3|cut") as err:
        read_bag(cut)
    assert "malformed" in str(err.value) and ".recover" in str(err.value)


def test_an_unknown_message_type_is_named_and_skipped_the_rest_replays(bag, tmp_path):
    widget = b"\x00\x01\x00\x00" + b"\x05\x00\x00\x00knob\x00"

    def add_unknown(writer):
        unknown = writer.add_connection("/acme/widget", "acme_msgs/msg/Widget", msgdef="", rihs01="RIHS01_" + "0" * 64)
        described = writer.add_connection("/acme/gadget", "acme_msgs/msg/Gadget", msgdef="string name\n",
                                          rihs01="RIHS01_" + "1" * 64)
        writer.write(unknown, 10**9, widget)
        writer.write(described, 10**9, widget)

    damaged = copy_bag(bag, tmp_path / "unknown", extra=add_unknown)
    contents = read_bag(damaged)
    (problem,) = contents.problems
    assert "/acme/widget" in problem and "unknown message type acme_msgs/msg/Widget" in problem
    # a type the bag defines is registered from the bag and decoded
    assert contents.topic("/acme/gadget")[0].msg.name == "knob"
    run = RecordedRun.open(damaged)  # only our topics are decoded: the unknown one is not even a problem here
    result = _scripted(run)
    assert result.summary()["chunks_compared"] == len(run.chunks) > 20


def test_the_camera_topic_under_an_unknown_type_is_named(bag, tmp_path):
    def camera_as_unknown(writer):
        c = writer.add_connection(f"{NS}/camera/image_raw", "acme_msgs/msg/Frame", msgdef="",
                                  rihs01="RIHS01_" + "2" * 64)
        writer.write(c, 0, b"\x00\x01\x00\x00")

    damaged = copy_bag(bag, tmp_path / "camera", drop=(f"{NS}/camera/image_raw",), extra=camera_as_unknown)
    run = RecordedRun.open(damaged)
    assert any("unknown message type acme_msgs/msg/Frame" in p for p in run.problems)
    assert any(f"missing topic {NS}/camera/image_raw" in p and "acme_msgs/msg/Frame" in p for p in run.problems)
    from nora_ros.cli import main

    assert main(["replay", str(damaged), "--out", str(tmp_path / "out")]) == 1


def test_not_a_bag_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        read_bag(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 folder"):
        read_bag(tmp_path / "empty")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"hello")
    with pytest.raises(BagError, match="junk.mcap"):
        read_bag(junk)


def test_a_bag_without_trial_status_is_one_trial_whose_instruction_must_be_known(bag, tmp_path):
    bare = copy_bag(bag, tmp_path / "bare", drop=(f"{NS}/trial/status", f"{NS}/instruction"))
    run = RecordedRun.open(bare)
    with pytest.raises(BagError, match=f"neither {NS}/trial/status nor {NS}/instruction"):
        run.trials()
    (trial,) = run.trials("put the carrot in the pot")
    s = _scripted_with(run, "put the carrot in the pot")
    assert trial.trial_id == 0 and s["chunks_compared"] == len(run.chunks) > 20
    assert max(s["action_error"]["max"].values()) == 0.0


def _scripted_with(run, instruction):
    from nora_ros.bag.replay import ReplayOptions

    policy = ScriptedExpertPolicy()
    return replay(run, lambda trial: policy, ReplayOptions(instruction=instruction)).summary()
