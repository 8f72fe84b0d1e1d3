"""RT1Policy: streaming equals recomputing the window from scratch, padding as in training, batching, reset,
instructions, checkpoints; and the Policy module stays importable without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from envs.spaces import ACTION_HIGH, ACTION_LOW, ACTION_SIZE, ACTION_SLICES, CAMERA_NAMES, PROPRIO_SIZES
from rt1_sim.checkpoint import CheckpointError, save_checkpoint
from rt1_sim.data.windows import CenterCrop
from rt1_sim.model import RT1, checkpoint_state
from rt1_sim.model.film_efficientnet import FiLM
from rt1_sim.model.instruction import ZeroInstructionEncoder, _shared_encoder, make_instruction_encoder
from rt1_sim.model.presets import get_preset
from rt1_sim.policy import Policy, RT1Policy
from rt1_sim.preprocess import PROPRIO_SIZE, observation_to_tensors, stack_observations

SIZE, T = 32, 6
CONFIG = get_preset("micro", image_height=SIZE, image_width=SIZE, crop_size=SIZE)


def make_model(using_proprioception: bool = True, seed: int = 0) -> RT1:
    """A tiny eval-mode RT1 whose untrained weights still make images and instructions matter."""
    torch.manual_seed(seed)
    model = RT1(CONFIG, CAMERA_NAMES, T, using_proprioception)
    with torch.no_grad():
        for film in model.modules():
            if isinstance(film, FiLM):
                for p in film.parameters():
                    p.normal_(0.0, 0.5)
        model.image_encoder.calibrate_batchnorm(torch.rand(16, 3, SIZE, SIZE), torch.randn(16, 512))
    return model.eval()


def episode(steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    observations = []
    for _ in range(steps):
        obs = {c: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for c in CAMERA_NAMES}
        obs.update({k: rng.standard_normal(n).astype(np.float32) for k, n in PROPRIO_SIZES.items()})
        observations.append(obs)
    return observations


def recompute(model: RT1, history: list[dict], context: torch.Tensor, seed: int) -> torch.Tensor:
    """The newest step's logits (ACTION_SIZE, vocab) from the whole window, built from scratch as in training:
    right-aligned, left padding marked invalid (and filled with random junk, which must not matter)."""
    window = history[-T:]
    pad = T - len(window)
    images, proprio = observation_to_tensors(
        stack_observations(window), CAMERA_NAMES, using_proprioception=True
    )
    g = torch.Generator().manual_seed(seed)
    images = torch.cat([torch.rand(pad, *images.shape[1:], generator=g), images])[None]  # (1, T, V, 3, H, W)
    proprio = torch.cat([torch.randn(pad, PROPRIO_SIZE, generator=g), proprio])[None]  # (1, T, P)
    valid = torch.arange(T)[None] >= pad  # (1, T)
    with torch.no_grad():
        logits, _ = model(images, context, valid, proprio)
    return logits[0, -1]


def test_streaming_equals_recomputing_the_window_for_20_steps():
    model = make_model()
    policy = RT1Policy(model, default_instruction="pick up the red cube")
    context = torch.as_tensor(policy.instruction_encoder("pick up the red cube"))[None]
    observations = episode(20)
    for step in range(20):
        action, logits = policy.act_with_logits(observations[step])
        expected = recompute(model, observations[: step + 1], context, seed=step)
        torch.testing.assert_close(logits[0], expected, rtol=1e-5, atol=1e-5)
        tokens = model.tokenizer.logits_to_tokens
        assert torch.equal(tokens(logits[0]), tokens(expected)), step
        assert action.shape == (ACTION_SIZE,) and action.dtype == np.float32
        assert (action >= ACTION_LOW).all() and (action <= ACTION_HIGH).all()
        assert action[ACTION_SLICES["terminate_episode"]][0] in (0.0, 1.0)


def test_earlier_actions_never_depend_on_later_frames():
    model = make_model()
    first, second = episode(12, seed=1), episode(12, seed=1)
    second[8:] = episode(4, seed=2)
    policy_a, policy_b = RT1Policy(model), RT1Policy(model)
    logits_a = [policy_a.act_with_logits(o)[1] for o in first]
    logits_b = [policy_b.act_with_logits(o)[1] for o in second]
    for step in range(8):
        assert torch.equal(logits_a[step], logits_b[step])
    assert not torch.allclose(logits_a[8], logits_b[8], atol=1e-3)


def test_batched_act_matches_one_policy_per_env():
    model = make_model()
    envs = [episode(8, seed=s) for s in range(3)]
    batched = RT1Policy(model)
    singles = [RT1Policy(model) for _ in envs]
    for step in range(8):
        observations = [e[step] for e in envs]
        actions, logits = batched.act_with_logits(
            observations if step % 2 else stack_observations(observations)
        )
        assert actions.shape == (3, ACTION_SIZE)
        for i, single in enumerate(singles):
            action_i, logits_i = single.act_with_logits(envs[i][step])
            torch.testing.assert_close(logits[i], logits_i[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(actions[i], action_i)
    with pytest.raises(ValueError, match="running batch has 3"):
        batched.act([envs[0][0], envs[1][0]])


def test_resetting_one_env_of_a_batch_restarts_only_that_env():
    model = make_model()
    envs = [episode(9, seed=s) for s in range(2)]
    batched, reference = RT1Policy(model), RT1Policy(model)
    for step in range(5):
        batched.act([e[step] for e in envs])
        reference.act(envs[0][step])
    batched.reset("pick up the red cube", env_index=1)
    fresh = RT1Policy(model, default_instruction="pick up the red cube")
    for step in range(5, 9):
        _, logits = batched.act_with_logits([envs[0][step], envs[1][step]])
        torch.testing.assert_close(
            logits[0], reference.act_with_logits(envs[0][step])[1][0], rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            logits[1], fresh.act_with_logits(envs[1][step])[1][0], rtol=1e-5, atol=1e-5
        )


def test_reset_forgets_the_history_and_keeps_the_instruction():
    model = make_model()
    observations = episode(8)
    policy = RT1Policy(model)
    policy.reset("pick up the red cube")
    for obs in observations:
        policy.act(obs)
    policy.reset()  # None keeps "pick up the red cube"
    fresh = RT1Policy(model, default_instruction="pick up the red cube")
    for obs in observations[:3]:
        assert torch.equal(policy.act_with_logits(obs)[1], fresh.act_with_logits(obs)[1])


def test_the_instruction_is_embedded_on_reset():
    model = make_model()
    obs = episode(1)[0]
    policy = RT1Policy(model)
    policy.reset("pick up the red cube")
    red = policy.act_with_logits(obs)[1]
    policy.reset("pick_up_the_red_cube")  # the dataset's spelling: the same instruction
    assert torch.equal(policy.act_with_logits(obs)[1], red)
    policy.reset("pick up the blue cube")
    assert not torch.allclose(policy.act_with_logits(obs)[1], red, atol=1e-3)
    zeros = RT1Policy(model, instruction_encoder=ZeroInstructionEncoder(512))  # IO's behaviour
    zeros.reset("anything")
    other = RT1Policy(model, instruction_encoder=ZeroInstructionEncoder(512), default_instruction="else")
    assert torch.equal(zeros.act_with_logits(obs)[1], other.act_with_logits(obs)[1])


def test_from_checkpoint_gives_the_same_actions(tmp_path):
    model = make_model()
    path = tmp_path / "rt1.pt"
    save_checkpoint(path, checkpoint_state(model, {"name": "hash", "size": 512}, "pick up the red cube"))
    original = RT1Policy(model, default_instruction="pick up the red cube")
    loaded = RT1Policy.from_checkpoint(path)
    assert loaded.instruction == "pick up the red cube"
    for obs in episode(4):
        np.testing.assert_array_equal(loaded.act(obs), original.act(obs))


@pytest.mark.parametrize("name", ["zeros", "hash"])
def test_from_checkpoint_embeds_with_the_recorded_encoder_in_a_fresh_process(tmp_path, name):
    """The recorded encoder, not the hash fallback, even when nothing in the process has embedded an
    instruction yet (a memoised encoder with no instruction cached is empty, and must not count as none)."""
    model = make_model()
    path = tmp_path / "rt1.pt"
    save_checkpoint(path, checkpoint_state(model, {"name": name, "size": 512}, "pick up the red cube"))
    _shared_encoder.cache_clear()  # as in a new process: the shared memoised encoders are empty
    loaded = RT1Policy.from_checkpoint(path)
    assert loaded.instruction_encoder.name == name
    expected = make_instruction_encoder(name, 512)("pick up the red cube")
    np.testing.assert_array_equal(loaded._context.numpy(), expected)


def test_a_checkpoint_with_another_action_table_is_refused(tmp_path):
    state = checkpoint_state(make_model())
    state["action_table"][0]["high"] = 1.0
    path = tmp_path / "other_table.pt"
    save_checkpoint(path, state)
    with pytest.raises(CheckpointError, match=r"other_table\.pt: trained with action table"):
        RT1Policy.from_checkpoint(path)


def test_rt1_policy_is_a_policy():
    assert isinstance(RT1Policy(make_model(using_proprioception=False)), Policy)


def test_the_policy_module_does_not_import_torch():
    code = "import sys, rt1_sim.policy; assert 'torch' not in sys.modules, 'rt1_sim.policy imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_compiled_policy_chooses_the_same_actions():
    observations = episode(8)
    eager = RT1Policy(make_model())
    compiled = RT1Policy(make_model(), torch_compile=True)
    for obs in observations:
        np.testing.assert_array_equal(compiled.act(obs), eager.act(obs))


@pytest.mark.parametrize("vocab_size", [128, 256])
def test_a_zero_action_round_trips_through_the_policy_to_exactly_zero(vocab_size, tmp_path):
    """Targets are tokenised with the network's vocabulary; the policy must decode with the same one (a
    decoder with another vocabulary turns 128's centre token into -0.02 m). Nothing is trained: the output
    head is set so that every dimension's greedy token is the one a zero action tokenises to."""
    torch.manual_seed(0)
    config = get_preset("micro", image_height=SIZE, image_width=SIZE, crop_size=SIZE, vocab_size=vocab_size)
    model = RT1(config, CAMERA_NAMES, T)
    zero_tokens = model.tokenizer.tokenize(np.zeros(ACTION_SIZE, np.float32))  # (ACTION_SIZE,)
    assert (zero_tokens[:-1] == (vocab_size - 1) // 2).all()
    head = model.transformer.head
    with torch.no_grad():  # logits = bias: the centre token wins wherever it is valid, token 0 for terminate
        head.weight.zero_()
        head.bias.zero_()
        head.bias[int(zero_tokens[0])] = 1.0
    save_checkpoint(tmp_path / "zero.pt", checkpoint_state(model))
    obs = episode(1)[0]
    for policy in (RT1Policy(model), RT1Policy.from_checkpoint(tmp_path / "zero.pt")):
        assert policy.model.tokenizer.vocab_size == vocab_size
        action = policy.act(obs)
        assert action.tolist() == [0.0] * ACTION_SIZE, action


def test_a_center_cropping_checkpoint_feeds_the_network_the_centred_crop(tmp_path):
    """inference_crop "center" (recorded in model_config): each frame is the centred crop_size crop resized
    back, what CenterCrop gives validation windows and what a "none" policy given those frames computes; a
    checkpoint that records nothing (written before the key existed) feeds the full frame."""
    config = get_preset("micro", image_height=SIZE, image_width=SIZE, crop_size=SIZE - 6)
    torch.manual_seed(0)
    model = RT1(config, CAMERA_NAMES, T)
    model.image_encoder.calibrate_batchnorm(torch.rand(16, 3, SIZE, SIZE), torch.randn(16, 512))
    model.inference_crop = "center"
    path = tmp_path / "center.pt"
    save_checkpoint(path, checkpoint_state(model))
    state = torch.load(path, weights_only=True)
    assert state["model_config"]["inference_crop"] == "center"
    del state["model_config"]["inference_crop"]
    save_checkpoint(tmp_path / "old.pt", state)

    centre = RT1Policy.from_checkpoint(path)
    full = RT1Policy.from_checkpoint(tmp_path / "old.pt")
    assert centre.model.inference_crop == "center" and full.model.inference_crop == "none"
    observations = episode(8, seed=3)
    crop = CenterCrop(SIZE - 6)
    cropped = [{k: crop(v[None])[0] if k in CAMERA_NAMES else v for k, v in o.items()} for o in observations]
    assert not np.array_equal(cropped[0]["front"], observations[0]["front"])
    for obs, obs_cropped in zip(observations, cropped, strict=True):
        assert np.array_equal(centre.act(obs), full.act(obs_cropped))
    differs = [not np.array_equal(centre.act(o), full.act(o)) for o in episode(8, seed=4)]
    assert any(differs)


def test_a_checkpoint_with_an_unknown_inference_crop_is_refused(tmp_path):
    state = checkpoint_state(make_model())
    state["model_config"]["inference_crop"] = "random"
    save_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(CheckpointError, match="inference_crop must be one of"):
        RT1Policy.from_checkpoint(tmp_path / "bad.pt")


def test_an_eval_suite_may_override_the_recorded_crop(tmp_path):
    """policy.inference_crop: "checkpoint" keeps what the checkpoint records, "none" / "center" replace it;
    any other value is refused when the suite is read."""
    from rt1_sim.config import EvalPolicyConfig
    from rt1_sim.eval.policy_choice import load_rt1

    save_checkpoint(tmp_path / "p.pt", checkpoint_state(make_model()))
    for crop, expected in (("checkpoint", "none"), ("center", "center"), ("none", "none")):
        options = EvalPolicyConfig(name=str(tmp_path / "p.pt"), inference_crop=crop)
        assert load_rt1(tmp_path / "p.pt", options).model.inference_crop == expected
    with pytest.raises(ValueError, match="policy.inference_crop must be one of"):
        EvalPolicyConfig(inference_crop="random")
