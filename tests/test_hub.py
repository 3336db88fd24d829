"""embodia.hub: Hub ids (with their revision) pulled from the cache offline, the offline and network errors, cards and pushes up to the call into huggingface_hub."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from embodia.cli import main
from embodia.hub import looks_like_hub_id, split_hub_id
from embodia.policy.checkpoint import BASE_DIR


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "arg", ["lerobot/pusht", "lerobot/svla_so101_pickplace", "Org-1/my.data_set", "a/b", "user/x" + "y" * 90]
)
def test_hub_ids(arg, elsewhere):
    assert looks_like_hub_id(arg)


@pytest.mark.parametrize(
    "arg",
    [
        "pusht",  # no owner
        "./lerobot/pusht",  # explicitly a path
        "/lerobot/pusht",
        "~/pusht",
        "lerobot/pusht/",
        "data/lerobot/pusht",  # two slashes
        "lerobot/-pusht",  # the Hub's rules: no leading or trailing - or .
        "lerobot/pusht.",
        "lero--bot/pusht",
        "lerobot/pu..sht",
        "le robot/pusht",
        "user/x" + "y" * 91,  # 97 characters
        "",
    ],
)
def test_paths_that_are_not_hub_ids(arg, elsewhere):
    assert not looks_like_hub_id(arg) and split_hub_id(arg) is None


def test_an_existing_folder_is_never_a_hub_id(elsewhere):
    (elsewhere / "lerobot" / "pusht").mkdir(parents=True)
    assert not looks_like_hub_id("lerobot/pusht")
    assert looks_like_hub_id("lerobot/aloha")


@pytest.mark.parametrize(
    ("arg", "split"),
    [
        ("lerobot/pusht", ("lerobot/pusht", None)),
        ("you/policy@v1", ("you/policy", "v1")),
        ("you/data@refs/pr/1", ("you/data", "refs/pr/1")),
        ("you/data@0123456789abcdef0123456789abcdef01234567", ("you/data", "0123456789abcdef0123456789abcdef01234567")),
        ("you/data@", None),
        ("you/data@..", None),
        ("you@v1", None),
    ],
)  # fmt: skip
def test_an_id_may_name_a_revision(arg, split, elsewhere):
    assert split_hub_id(arg) == split


# ------------------------------------------------------------------------------ pulling from the cache
FIXTURE = Path(__file__).parent / "fixtures" / "so101_tabletop_tiny"


def put_in_cache(cache: Path, repo_id: str, repo_type: str, folder: Path, ref: str = "main") -> str:
    """Lay `folder` out as huggingface_hub's cache does after a download (blobs named by their git
    hash, snapshots/<commit>/ of links to them, refs/<ref> holding the commit); returns the commit."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1(
        "".join(str(p.relative_to(folder)) for p in files).encode() + ref.encode()
    ).hexdigest()
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    for path in files:
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache of this test's own, offline; and a working folder with nothing in it."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return cache


def test_a_dataset_id_resolves_from_the_cache_offline(hub_cache):
    from huggingface_hub import scan_cache_dir

    from embodia.data.reader import LeRobotDataset

    commit = put_in_cache(hub_cache, "embodia-test/tiny", "dataset", FIXTURE)
    scan = scan_cache_dir(hub_cache)  # huggingface_hub itself reads the layout as a download's
    assert not scan.warnings
    (repo,) = scan.repos
    assert (repo.repo_id, repo.repo_type, [r.commit_hash for r in repo.revisions]) == (
        "embodia-test/tiny", "dataset", [commit]
    )  # fmt: skip
    ds = LeRobotDataset.open("embodia-test/tiny")  # no v3.0 tag in the cache: main
    assert ds.root == hub_cache / "datasets--embodia-test--tiny" / "snapshots" / commit
    assert ds.num_episodes == LeRobotDataset.open(FIXTURE).num_episodes
    assert LeRobotDataset.open(f"embodia-test/tiny@{commit}").root == ds.root


def test_a_dataset_is_taken_at_the_v3_tag_before_main(hub_cache, tmp_path):
    from embodia.data.reader import LeRobotDataset

    put_in_cache(hub_cache, "embodia-test/tiny", "dataset", FIXTURE)
    newer = tmp_path / "newer"
    shutil.copytree(FIXTURE, newer)
    (newer / "NOTE.md").write_text("the tagged revision")
    tagged = put_in_cache(hub_cache, "embodia-test/tiny", "dataset", newer, ref="v3.0")
    assert LeRobotDataset.open("embodia-test/tiny").root.name == tagged
    main_commit = (hub_cache / "datasets--embodia-test--tiny" / "refs" / "main").read_text()
    assert LeRobotDataset.open("embodia-test/tiny@main").root.name == main_commit


def test_a_local_folder_wins_over_the_hub_id_of_the_same_name(hub_cache):
    from embodia.data.reader import LeRobotDataset

    put_in_cache(hub_cache, "embodia-test/tiny", "dataset", FIXTURE)
    shutil.copytree(FIXTURE, Path("embodia-test/tiny"))
    assert LeRobotDataset.open("embodia-test/tiny").root == Path("embodia-test/tiny")


def test_a_policy_id_resolves_from_the_cache(hub_cache, tiny_policy_dir):
    from embodia.policy.loading import load_policy

    commit = put_in_cache(hub_cache, "embodia-test/tiny-policy", "model", tiny_policy_dir)
    policy = load_policy("embodia-test/tiny-policy")
    assert policy.path == hub_cache / "models--embodia-test--tiny-policy" / "snapshots" / commit
    assert policy.metadata["checkpoint_hash"] == load_policy(tiny_policy_dir).metadata["checkpoint_hash"]


def test_offline_an_id_not_in_the_cache_names_the_id_and_the_setting(hub_cache, capsys):
    from embodia.data.reader import LeRobotDataset
    from embodia.hub import HubError

    with pytest.raises(HubError) as err:
        LeRobotDataset.open("embodia-test/missing")
    message = str(err.value)
    assert "Hugging Face Hub dataset 'embodia-test/missing' is not in the local Hub cache" in message
    assert str(hub_cache) in message and "HF_HUB_OFFLINE=1 forbids downloading it" in message
    assert "hf download embodia-test/missing --repo-type dataset" in message
    # through a command: an error line, exit code 2, and no run folder left behind
    assert main(["eval", "embodia-test/missing-policy@v2", "--suite", "touch", "--episodes", "1"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "Hugging Face Hub model 'embodia-test/missing-policy@v2' is not in the local Hub cache" in out
    assert list(Path.cwd().iterdir()) == []


def test_online_without_a_connection_says_so(hub_cache, monkeypatch):
    from embodia.hub import HubError, pull

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr("huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE",
                        "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")  # fmt: skip
    with pytest.raises(HubError, match="could not be downloaded .* and is not in the local Hub cache") as err:
        pull("embodia-test/missing", "model")
    assert "HF_HUB_OFFLINE=1 to use the cache only" in str(err.value)


# ------------------------------------------------------------------------------ pushing
class RecordingApi:
    """Stands where `huggingface_hub.HfApi` is called: records every call's arguments (there is no
    network here; what reaches the Hub past these calls is huggingface_hub's own, untested here)."""

    calls: list = []
    existing_tags: tuple = ()

    def __init__(self, *a, **kw):
        pass

    def __getattr__(self, name):
        def call(*args, **kwargs):
            RecordingApi.calls.append((name, args, kwargs))
            if name == "create_repo":
                return f"https://huggingface.co/{'datasets/' if kwargs['repo_type'] == 'dataset' else ''}{kwargs['repo_id']}"
            if name == "list_repo_refs":
                return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in RecordingApi.existing_tags])
            return None

        return call


@pytest.fixture
def recording_api(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.HfApi", RecordingApi)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    RecordingApi.calls, RecordingApi.existing_tags = [], ("v3.0",)
    yield RecordingApi.calls


def _calls(calls, name):
    return [kw for n, _, kw in calls if n == name]


def test_dataset_push_uploads_the_folder_card_and_v3_tag(recording_api):
    from huggingface_hub import DatasetCard

    assert main(["dataset", "push", str(FIXTURE), "you/so101-tiny", "--branch", "dev"]) == 0
    assert [n for n, _, _ in recording_api] == [
        "create_repo", "create_branch", "upload_folder", "upload_file", "list_repo_refs", "delete_tag", "create_tag"
    ]  # fmt: skip
    (upload,) = _calls(recording_api, "upload_folder")
    assert upload["folder_path"] == str(FIXTURE) and upload["repo_type"] == "dataset"
    assert upload["revision"] == "dev" and "README.md" in upload["ignore_patterns"]
    (tag,) = _calls(recording_api, "create_tag")
    assert tag == {"repo_id": "you/so101-tiny", "repo_type": "dataset", "tag": "v3.0", "revision": "dev"}
    (card_call,) = _calls(recording_api, "upload_file")
    assert card_call["path_in_repo"] == "README.md"
    card = DatasetCard(card_call["path_or_fileobj"].decode())
    assert card.data.license == "apache-2.0" and card.data.task_categories == ["robotics"]
    assert {"LeRobot", "embodia", "so101"} <= set(card.data.tags)
    assert card.data.configs == [{"config_name": "default", "data_files": "data/*/*.parquet"}]
    for fact in ("**Robot type**: so101", "**Rate**: 30 frames per second", "**Codebase version**: v3.0",
                 "LeRobotDataset(\"you/so101-tiny\")", "Recorded in simulation by `embodia record`",
                 '"codebase_version": "v3.0"', "| task | episodes |"):  # fmt: skip
        assert fact in card.text, fact


def test_a_dataset_from_a_recipe_stage_names_the_recipe(tmp_path):
    from embodia.data.card import dataset_card

    stage = tmp_path / "record_beside"
    shutil.copytree(FIXTURE, stage / "dataset")
    manifest = {"recipe": "teach", "scale": "full", "stage": "record_beside", "kind": "record",
                "git_sha": "abc123", "config": {"episodes": 5}}  # fmt: skip
    (stage / "stage.json").write_text(json.dumps(manifest))
    text = dataset_card(stage / "dataset", "you/x")
    assert "stage `record_beside` (record) of the embodia recipe `teach`" in text
    assert "`embodia recipe run teach` rebuilds it" in text and '"episodes": 5' in text


def test_a_broken_dataset_is_not_pushed(recording_api, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    data = next((broken / "data").rglob("*.parquet"))
    data.write_bytes(data.read_bytes()[:-200])  # truncated
    assert main(["dataset", "push", str(broken), "you/broken"]) == 2
    assert recording_api == []
    assert main(["dataset", "push", "no/such-folder", "you/x"]) == 2 and recording_api == []


def test_policy_push_uploads_the_weights_with_a_model_card(recording_api):
    from huggingface_hub import ModelCard

    assert main(["policy", "push", "base", "you/embodia-base"]) == 0
    (upload,) = _calls(recording_api, "upload_folder")
    assert upload["repo_type"] == "model" and upload["revision"] is None
    assert upload["allow_patterns"] == ["config.json", "model.safetensors", "normalization.json"]
    assert not _calls(recording_api, "create_tag")
    card = ModelCard(_calls(recording_api, "upload_file")[0]["path_or_fileobj"].decode())
    seen = json.loads((BASE_DIR / "config.json").read_text())["metadata"]["evaluation"][
        "seen"
    ]  # the card renders it
    assert card.data.library_name == "embodia" and card.data.pipeline_tag == "robotics"
    assert card.data.license == "apache-2.0" and {"robotics", "embodia", "so101"} <= set(card.data.tags)
    for fact in ("Stage `finetune_sentence` of the embodia recipe `base`", "`embodia recipe run base`",
                 f"| seen | {seen['success_rate']:.1%} |", "embodia eval base --suite pick,push,stack,touch --episodes 50",
                 "| so101 | 30.0 Hz | 6 |", "embodia eval you/embodia-base",
                 "## The checkpoint's own card"):  # fmt: skip
        assert fact in card.text, fact


def test_a_trained_checkpoint_card_names_its_training(tiny_policy_dir):
    from embodia.policy.card import model_card

    text = model_card(tiny_policy_dir, "you/tiny")
    assert "Trained by `embodia train` (preset `vla`, 4 steps)" in text
    assert "a local dataset `so101_tabletop_tiny`" in text and str(tiny_policy_dir.parent) not in text
    assert "No evaluation is recorded" in text


def test_push_errors_are_clear_and_push_nothing(recording_api, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["policy", "push", "base", "you/embodia-base"]) == 2
    assert "HF_HUB_OFFLINE=1 is set" in capsys.readouterr().out and recording_api == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert main(["policy", "push", "base", "you/embodia-base@v1"]) == 2
    assert "use --branch" in capsys.readouterr().out and recording_api == []

    class Denied(RecordingApi):
        def create_repo(self, **kw):
            from huggingface_hub.errors import HfHubHTTPError

            response = SimpleNamespace(status_code=401, headers={}, request=None)  # what the error reads
            raise HfHubHTTPError("401 Unauthorized", response=response)

    monkeypatch.setattr("huggingface_hub.HfApi", Denied)
    assert main(["policy", "push", "base", "you/embodia-base"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "not allowed (log in with `hf auth login` or set HF_TOKEN" in out


def test_training_reads_a_dataset_by_its_hub_id(hub_cache, tmp_path):
    from embodia.policy.policy import Policy
    from embodia.train.config import preset
    from embodia.train.loop import train

    put_in_cache(hub_cache, "embodia-test/tiny", "dataset", FIXTURE)
    cfg = preset("tiny", datasets=["embodia-test/tiny"], cache_dir=str(tmp_path / "cache"), steps=2)
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    assert policy.metadata["datasets"] == ["embodia-test/tiny"]  # the id, for the model card


def test_a_lerobot_policy_id_resolves_to_its_folder(hub_cache, lerobot_policies):
    from embodia.hub import pull
    from embodia.policy.loading import lerobot_folder_of

    commit = put_in_cache(hub_cache, "embodia-test/act", "model", lerobot_policies["act"])
    assert lerobot_folder_of(pull("embodia-test/act", "model")).name == commit
    assert main(["lerobot", "inspect", "embodia-test/act"]) == 0
