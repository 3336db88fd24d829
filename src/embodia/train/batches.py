"""Datasets -> batches: the training datasets with their embodiments and encoded instructions
(`Source`), the batch transforms each one runs (`batch_transforms`, from `data.transforms`), and the
batch of a step (`make_batch`), built ahead in background threads (`Prefetcher`).

Every random draw of a step (which dataset, which frames, the augmentations, the flow noise and time)
comes from one generator seeded by (seed, step, process), so a batch is a pure function of its step:
a resumed run sees exactly the batches an uninterrupted one would.

Other phrasings of an instruction (`TrainConfig.language.paraphrase`) are not this package's
knowledge: the caller passes a `PhrasingSource` (`embodia train` and the recipes pass the simulated
tabletop's templates), and a run that swaps phrasings without one is refused.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embodia.data.loader import TrainingDataset
from embodia.data.reader import LeRobotDataset
from embodia.data.transforms import (
    LOSS_MASK,
    MODEL_INPUTS,
    TARGETS,
    Compose,
    EncodeInstructions,
    ImageAugment,
    Paraphrase,
    PhrasingSource,
    SentenceMix,
    SentenceNoise,
    ToModelInputs,
    Transform,
    WordDropout,
)
from embodia.policy.inputs import EmbodimentInfo, LanguageTable, delta_dims_for
from embodia.policy.language import InstructionEncoder, save_instruction_table
from embodia.policy.model import VLAConfig, sample_flow_time
from embodia.policy.normalize import Normalizer
from embodia.robots.spec import ACTION, OBS_STATE
from embodia.train.config import TrainConfig


@dataclass
class Source:
    """One dataset, the embodiment it trains, its instructions already encoded, and the transforms
    that turn its batches into the model's inputs."""

    data: TrainingDataset
    info: EmbodimentInfo
    language: LanguageTable
    # Other phrasings of each instruction (TrainConfig.language.paraphrase), all encoded in `language` too.
    alternatives: dict[str, list[str]] = field(default_factory=dict)
    transforms: Transform = field(default_factory=lambda: Compose(()))


def embodiment_of(robot_type: str | None, state_dim: int, action_dim: int) -> str:
    """The embodiment name a dataset trains: its robot_type, qualified by its action size when the
    same robot appears with different action spaces (SO-101 joints vs end-effector deltas)."""
    name = (robot_type or "unknown").lower()
    if name.startswith("so101"):  # LeRobot writes "so101_follower"
        return "so101_ee" if action_dim == 4 else "so101"
    return name


def build_sources(
    cfg: TrainConfig,
    model_cfg: VLAConfig,
    encoder,
    known: dict[str, EmbodimentInfo] | None = None,
    phrasings: PhrasingSource | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[Source], dict[str, EmbodimentInfo]]:
    """Open the datasets; reuse the checkpoint's normalisation for embodiments it already knows (so a
    fine-tuned policy keeps the action scale it was pretrained with), compute it for new ones. Each
    source's transforms write the model's inputs on `device`."""
    if not cfg.datasets:
        raise ValueError("no datasets to train on: pass at least one LeRobotDataset folder")
    embodiments = dict(known or {})
    sources = []
    for root in cfg.datasets:
        data = TrainingDataset(root, chunk_size=model_cfg.chunk_size, cache_dir=cfg.cache_dir)
        info = _embodiment(cfg, model_cfg, root, data, embodiments)
        alts = task_phrasings(cfg, data.ds.tasks, phrasings)
        texts = list(data.ds.tasks) + [a for a_list in alts.values() for a in a_list]
        language = LanguageTable.build(encoder, texts)
        transforms = batch_transforms(cfg, model_cfg, info, data.cameras, language, alts, device)
        sources.append(Source(data, info, language, alts, transforms))
    return sources, embodiments


def _embodiment(
    cfg: TrainConfig,
    model_cfg: VLAConfig,
    root,
    data: TrainingDataset,
    embodiments: dict[str, EmbodimentInfo],
) -> EmbodimentInfo:
    """The embodiment a dataset trains: checked against the model's sizes and, when `embodiments`
    (the checkpoint's, then the earlier datasets') already has it, against that; else a new one, with
    normalisation measured on this dataset, added to `embodiments` and to the model's slots."""
    ds = data.ds
    for key in (OBS_STATE, ACTION):
        if key not in ds.features:
            raise ValueError(f"{root}: dataset has no {key!r} feature; the VLA needs state and action")
    state_dim = int(np.prod(ds.features[OBS_STATE]["shape"]))
    action_dim = int(np.prod(ds.features[ACTION]["shape"]))
    if state_dim > model_cfg.max_state_dim or action_dim > model_cfg.max_action_dim:
        raise ValueError(
            f"{root}: state {state_dim} / action {action_dim} dims exceed the model's "
            f"max_state_dim {model_cfg.max_state_dim} / max_action_dim {model_cfg.max_action_dim}"
        )
    if len(ds.camera_keys) > model_cfg.max_cameras:
        raise ValueError(f"{root}: {len(ds.camera_keys)} cameras; the model takes {model_cfg.max_cameras}")
    name = embodiment_of(ds.robot_type, state_dim, action_dim)
    if name in embodiments:
        info = embodiments[name]
        if (info.state_dim, info.action_dim) != (state_dim, action_dim):
            raise ValueError(
                f"{root}: embodiment {name!r} has state/action dims ({state_dim}, {action_dim}) here "
                f"but ({info.state_dim}, {info.action_dim}) in the checkpoint"
            )
        if len(info.cameras) != len(ds.camera_keys):
            raise ValueError(f"{root}: cameras {ds.camera_keys} do not match the checkpoint's {info.cameras}")
        # The dataset's own camera names fill the checkpoint's slots in order.
        info.cameras = list(ds.camera_keys)
        return info
    if name not in model_cfg.embodiments:
        if len(model_cfg.embodiments) >= model_cfg.num_embodiments:
            raise ValueError(f"no free embodiment slot for {name!r} (model has {model_cfg.embodiments})")
        model_cfg.embodiments.append(name)
    feats = ds.features
    state_names, action_names = _names(feats[OBS_STATE]), _names(feats[ACTION])
    delta = delta_dims_for(state_names, action_names) if cfg.delta_actions else []
    # The action range is measured on the targets the model will see, never taken from
    # meta/stats.json: there q01/q99 are count-weighted means of per-episode quantiles (LeRobot's
    # approximation), which for a bimodal dimension such as a gripper that is open in some episodes and
    # closed in others can be far inside the data. Meta-World's gripper (+-1) got q01/q99 = 0.27/0.61,
    # so its targets were normalised to -8.6 and +3.6. With delta actions the range must also describe
    # actions minus the state. (Built from the measured range, so that the "never varies" warning
    # judges what is used.)
    lo, hi = action_target_quantiles(data, delta, model_cfg.chunk_size)
    stats = {**ds.stats, ACTION: {**ds.stats.get(ACTION, {}), "q01": lo, "q99": hi}}
    embodiments[name] = EmbodimentInfo(
        name=name,
        token=model_cfg.embodiments.index(name),
        state_dim=state_dim,
        action_dim=action_dim,
        cameras=list(ds.camera_keys),
        fps=float(ds.fps),
        normalizer=Normalizer.from_stats(stats),
        state_names=state_names,
        action_names=action_names,
        image_shapes={k: list(feats[k]["shape"]) for k in ds.camera_keys},
        delta_dims=delta,
    )
    return embodiments[name]


def batch_transforms(
    cfg: TrainConfig,
    model_cfg: VLAConfig,
    info: EmbodimentInfo,
    cameras: list[str],
    language: LanguageTable,
    alternatives: dict[str, list[str]],
    device: str | torch.device = "cpu",
) -> Compose:
    """The transforms of one source's batches, in the order their random draws are made: image
    augmentation, paraphrase, encoding, word dropout, sentence mixing and noise, normalisation. An
    augmentation switched off (or a paraphrase with nothing to swap in) is left out."""
    lang = cfg.language
    steps: list[Transform] = []
    if cfg.augment and cameras:
        steps.append(ImageAugment(cameras, max_shift=cfg.aug_shift))
    if lang.paraphrase > 0 and alternatives:
        steps.append(Paraphrase(alternatives, lang.paraphrase))
    steps.append(EncodeInstructions(language))
    if lang.word_dropout > 0:
        steps.append(WordDropout(lang.word_dropout))
    if lang.sentence_mix > 0 and alternatives:
        steps.append(SentenceMix(alternatives, language, lang.sentence_mix))
    if lang.sentence_noise > 0:
        steps.append(SentenceNoise(lang.sentence_noise))
    steps.append(ToModelInputs(info, model_cfg, cameras, device))
    return Compose(steps)


def task_phrasings(
    cfg: TrainConfig, tasks: list[str], phrasings: PhrasingSource | None
) -> dict[str, list[str]]:
    """The other phrasings training swaps in for each task (none unless cfg.language.paraphrase > 0),
    from `phrasings` (instruction, carriers) -> phrasings."""
    lang = cfg.language
    if lang.paraphrase <= 0:
        return {}
    if phrasings is None:
        raise ValueError(
            f"language.paraphrase is {lang.paraphrase} but no source of other phrasings was given: pass "
            "phrasings=(instruction, carriers) -> phrasings (embodia train and the recipes pass the "
            "simulated tabletop's templates)"
        )
    return {t: list(a) for t in tasks if (a := phrasings(t, lang.paraphrase_carriers))}


def write_instruction_table(
    cfg: TrainConfig, path: str | Path, phrasings: PhrasingSource | None = None
) -> tuple[Path, int]:
    """Encode every instruction a run of `cfg` would encode (its datasets' tasks and the phrasings its
    language flags swap in) into one file that `cfg.instruction_table` reads. Reads dataset metadata
    only, no frames."""
    texts: list[str] = []
    for root in cfg.datasets:
        tasks = list(LeRobotDataset.open(root).tasks)
        texts += tasks + [a for a_list in task_phrasings(cfg, tasks, phrasings).values() for a in a_list]
    texts = list(dict.fromkeys(texts))
    return save_instruction_table(InstructionEncoder(), texts, path), len(texts)


def action_target_quantiles(
    data: TrainingDataset, dims: list[int], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact q01/q99 of every chunk target as the model sees it (chunks clamped at episode ends like
    the loader's): action at t + k minus the state at t for the delta `dims`, absolute for the others."""
    action, state = data.action.numpy().astype(np.float64), data.state.numpy().astype(np.float64)
    n = len(action)
    idx = np.minimum(np.arange(n)[:, None] + np.arange(chunk)[None, :], data.episode_end[:, None])
    targets = action[idx]  # (N, H, d)
    targets[..., dims] -= state[:, None, dims]
    flat = targets.reshape(-1, action.shape[1])
    return np.quantile(flat, 0.01, axis=0), np.quantile(flat, 0.99, axis=0)


def _names(feature: dict) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict):  # LeRobot sometimes nests them: {"motors": [...]}
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if isinstance(names, list) else []


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 131 + rank)


def draw_source(sources: list[Source], cfg: TrainConfig, g: torch.Generator) -> int:
    """One dataset per step (a batch never mixes embodiments), drawn in proportion to its number of
    frames, or to `cfg.dataset_weights` when set."""
    weights = cfg.dataset_weights or [len(s.data) for s in sources]
    return int(torch.multinomial(torch.tensor(weights, dtype=torch.float), 1, generator=g))


def make_batch(sources: list[Source], cfg: TrainConfig, step: int, rank: int) -> tuple:
    """(model inputs, targets, loss mask, flow noise, flow time, index of the source drawn) of a step,
    on the sources' device; every random draw from one generator seeded by (seed, step, rank)."""
    g = step_generator(cfg.seed, step, rank)
    which = draw_source(sources, cfg, g)
    src = sources[which]
    idx = torch.randint(len(src.data), (cfg.batch_size,), generator=g).tolist()
    batch = src.transforms(src.data.__getitems__(idx), g)
    targets = batch[TARGETS]
    noise = torch.randn(targets.shape, generator=g)
    t = sample_flow_time(cfg.batch_size, g)
    device = targets.device
    return batch[MODEL_INPUTS], targets, batch[LOSS_MASK], noise.to(device), t.to(device), which


class Prefetcher:
    """Builds the batches of the next `depth` steps in background threads while the current step runs.
    `make_batch` is a pure function of the step, so the batches are exactly those built inline."""

    def __init__(self, sources: list[Source], cfg: TrainConfig, rank: int, depth: int):
        self.args = (sources, cfg)
        self.rank, self.depth = rank, depth
        self.pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="batches") if depth else None
        self.ahead: dict[int, Future] = {}

    def batch(self, step: int) -> tuple:
        if self.pool is None:
            return make_batch(*self.args, step, self.rank)
        for s in range(step, step + self.depth + 1):
            if s not in self.ahead:
                self.ahead[s] = self.pool.submit(make_batch, *self.args, s, self.rank)
        return self.ahead.pop(step).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.ahead.clear()
