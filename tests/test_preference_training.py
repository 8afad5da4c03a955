"""survey_lib.preference_training: TRL's tokenisation, completion log-probs, every loss of
LOSSES end to end, resume, sDPO's reference refresh, QLoRA on CPU, and bad input."""
import copy
import math
from dataclasses import replace

import bitsandbytes as bnb
import pytest
import torch

from survey_lib import preference_losses as pl
from survey_lib.models import LoraSettings, ModelSettings, load_model
from survey_lib.preference_config import LOSSES, PreferenceConfig
from survey_lib.preference_data import PreferenceDataError, prepare_rows, sample_response_pairs
from survey_lib.preference_training import train_preference
from survey_lib.sequences import completion_logprobs, encode_completion, encode_completions, encode_prompt, encode_prompts, sequence_logprobs
from survey_lib.world.text import TextWorld

FAST = PreferenceConfig(batch_size=16, epochs=1, min_steps=3)
QLORA = ModelSettings(quantization="nf4", dtype="float32", lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu")


from conftest import crash_at  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rows(tok):
    """64 gold-labelled text-world pairs sampled from the zoo model (completions start with a space)."""
    model, _ = load_model("tiny-text-lm")
    pairs = sample_response_pairs(model, tok, TextWorld(seed=0), 64, seed=0)
    return pairs.gold_rows(TextWorld(seed=0))[0]


def policy(noise: bool = False):
    """A fresh zoo model; with `noise` its weights are perturbed (a start a checkpoint must override)."""
    model = load_model("tiny-text-lm")[0]
    if noise:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def rewarded(rows):
    """DRO's format: each pair's two completions as single trajectories, reward 1 for the chosen."""
    return [{"prompt": r["prompt"], "completion": r[side], "reward": float(side == "chosen")}
            for r in rows for side in ("chosen", "rejected")]


def trl_dpo_trainer(tmp_path, model, tok, rows, ref_model=None):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=len(rows), use_cpu=True, bf16=False,
                     report_to="none", max_length=64)
    return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)


# ------------------------------------------------------------------ tokenisation and log-probs


def test_encode_completion_matches_trl_dpo_tokens_and_loss(tmp_path, rows, tok):
    """Plain-text rows: TRL's prompt/completion ids, and its DPO loss from our log-probs."""
    model = policy()
    ref = copy.deepcopy(model)
    with torch.no_grad():  # a reference that differs, so the loss is not just log 2
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    trainer = trl_dpo_trainer(tmp_path, model, tok, rows[:8], ref_model=ref)
    for row, trl_row in zip(rows[:8], trainer.train_dataset):
        for side in ("chosen", "rejected"):
            ids, n = encode_completion(tok, row["prompt"], row[side])
            assert (ids[:n], ids[n:]) == (trl_row["prompt_ids"], trl_row[f"{side}_ids"])
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, trainer.data_collator([trainer.train_dataset[i] for i in range(8)]))
        seqs = [encode_completion(tok, r["prompt"], r[side]) for side in ("chosen", "rejected") for r in rows[:8]]
        pol, ref_logps = (completion_logprobs(m, seqs, tok.pad_token_id)[0] for m in (model, ref))
        ours = pl.dpo_loss(*pol.chunk(2), *ref_logps.chunk(2), beta=0.1).mean()
    assert ours.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    # we tokenize prompt and completion apart, so the leading space does not matter (TRL joins
    # the texts: "the movie" + "was good ." would become the unknown word "moviewas")
    assert encode_completion(tok, "the movie", "was good .") == encode_completion(tok, "the movie", " was good .")


def test_conversational_rows_and_eos_endings_get_one_eos_like_trl(tmp_path, rows, tok):
    """A completion already ending with EOS (as the chat template renders it) gets no second one."""
    user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    reply = lambda text: [{"role": "assistant", "content": text.strip()}]  # noqa: E731
    chat = [{"prompt": user(r["prompt"]), "chosen": reply(r["chosen"]), "rejected": reply(r["rejected"])} for r in rows[:4]]
    trainer = trl_dpo_trainer(tmp_path, policy(), tok, chat)
    for row, trl_row in zip(prepare_rows(chat, "pairs", tok), trainer.train_dataset):
        ids, n = encode_completion(tok, row["prompt"], row["chosen"])
        assert (ids[:n], ids[n:]) == (trl_row["prompt_ids"], trl_row["chosen_ids"])
        assert ids.count(tok.eos_token_id) == 1
    assert encode_completion(tok, "the movie", " was good .</s>") == encode_completion(tok, "the movie", " was good .")


def test_batched_encoding_gives_each_pairs_own_ids(rows, tok):
    """encode_completions and encode_prompts: the ids of encode_completion (encode_prompt) one by one, for plain text (batched:
    EOS appended once, an empty completion gets only EOS) and for conversations."""
    prompts = [r["prompt"] for r in rows[:6]] + ["the movie", "the movie"]
    completions = [r["chosen"] for r in rows[:6]] + [" was good .</s>", ""]
    assert encode_completions(tok, prompts, completions) == [encode_completion(tok, p, c) for p, c in zip(prompts, completions)]
    chats = [[{"role": "user", "content": p}] for p in prompts[:3]]
    assert encode_completions(tok, chats, completions[:3]) == [encode_completion(tok, p, c) for p, c in zip(chats, completions)]
    assert encode_completions(tok, [], []) == []
    assert encode_prompts(tok, prompts + chats) == [encode_prompt(tok, p) for p in prompts + chats]
    assert encode_prompts(tok, prompts) == [encode_prompt(tok, p) for p in prompts]
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        encode_completions(tok, prompts[:2], completions[:1])


def test_completion_logprobs_sum_only_completion_tokens_of_a_padded_batch(rows, tok):
    """Right-padded batch of unequal lengths == per-sequence manual sum of log-softmax over the completion."""
    model = policy().eval()
    pairs = [(r["prompt"], r[side]) for r in rows[:4] for side in ("chosen", "rejected")]
    pairs.append(("the movie was great and the plot", rows[0]["chosen"]))  # a longer prompt
    seqs = [encode_completion(tok, p, c) for p, c in pairs]
    assert len({len(ids) for ids, _ in seqs}) > 2  # padding really happens
    assert len({n for _, n in seqs}) > 1  # the softmax starts at the shortest prompt's end: others start later
    with torch.no_grad():
        sums, lengths, _, mask = completion_logprobs(model, seqs, tok.pad_token_id, with_logits=True)
        for k, (ids, n) in enumerate(seqs):
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            manual = sum(logp[t - 1, ids[t]].item() for t in range(n, len(ids)))
            assert sums[k].item() == pytest.approx(manual, abs=1e-4)
            assert lengths[k] == mask[k].sum() == len(ids) - n
        other_pad = completion_logprobs(model, seqs, tok.eos_token_id)[0]  # what fills the padding is never read
    assert torch.allclose(other_pad, sums, atol=1e-5)
    by_text = sequence_logprobs(model, tok, [p for p, _ in pairs], [c for _, c in pairs], batch_size=3)
    assert torch.allclose(by_text, sums, atol=1e-4)


# ------------------------------------------------------------------ every loss


def test_pairs_convert_to_unpaired_and_negatives_as_trl_does(rows):
    """KTO gets each pair as a desirable and an undesirable row; NPO/D2O keep the rejected."""
    unpaired = prepare_rows(rows[:3], "unpaired")
    assert unpaired[:2] == [{"prompt": rows[0]["prompt"], "completion": rows[0]["chosen"], "label": True},
                            {"prompt": rows[0]["prompt"], "completion": rows[0]["rejected"], "label": False}]
    assert len(unpaired) == 6
    assert prepare_rows(rows[:3], "negatives") == [{"prompt": r["prompt"], "rejected": r["rejected"]} for r in rows[:3]]


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains_a_few_finite_steps(rows, tok, loss):
    """Each loss runs on its data format (pairs converted where allowed) and moves the model."""
    data = rewarded(rows[:16]) if LOSSES[loss].data == "rewarded" else rows[:32]
    model = policy()
    before = [p.detach().clone() for p in model.parameters()]
    result = train_preference(model, replace(FAST, loss=loss), data, tokenizer=tok)
    assert len(result.history) >= 3 and all(math.isfinite(h["loss"]) for h in result.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, result.model.parameters()))


def test_dpo_raises_the_margin_on_its_training_rows(rows, tok):
    """40 DPO steps: the implicit-reward margin grows; at step 0 policy == reference exactly."""
    def margins(model):
        prompts = [r["prompt"] for r in rows]
        return (sequence_logprobs(model, tok, prompts, [r["chosen"] for r in rows])
                - sequence_logprobs(model, tok, prompts, [r["rejected"] for r in rows]))

    result = train_preference(policy(), PreferenceConfig(batch_size=16, epochs=1, min_steps=40, learning_rate=1e-3), rows, tokenizer=tok)
    assert result.history[0]["chosen_logratio"] == pytest.approx(0, abs=1e-5)
    assert (margins(result.model) - margins(policy())).mean() > 5
    assert sum(h["accuracy"] for h in result.history[-8:]) / 8 > 0.75


def test_dro_learns_one_value_per_distinct_prompt(rows, tok):
    """DRO's V(x) is one trained scalar per distinct prompt."""
    data = rewarded(rows[:16])
    result = train_preference(policy(), replace(FAST, loss="dro"), data, tokenizer=tok)
    assert set(result.values) == {r["prompt"] for r in data}
    assert all(math.isfinite(v) for v in result.values.values()) and any(v != 0 for v in result.values.values())


@pytest.mark.parametrize("loss", ["dpo", "d2o", "dro", "rrhf"])
def test_gradient_accumulation_takes_the_same_steps_in_micro_batches(rows, tok, loss):
    """Three uneven micro-batches of 16 rows (6, 5, 5) give the updates and records of whole
    steps: each part's mean loss is weighted by its share of the rows."""
    data = rewarded(rows[:16]) if LOSSES[loss].data == "rewarded" else rows[:32]
    whole = train_preference(policy(), replace(FAST, loss=loss), data, tokenizer=tok)
    cut = train_preference(policy(), replace(FAST, loss=loss, gradient_accumulation_steps=3), data, tokenizer=tok)
    for a, b in zip(whole.model.parameters(), cut.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for h, g in zip(whole.history, cut.history, strict=True):
        assert h.keys() == g.keys() and all(g[k] == pytest.approx(v, rel=1e-4, abs=1e-5) for k, v in h.items())


@pytest.mark.parametrize("loss", [name for name, spec in LOSSES.items() if spec.couples_rows])
def test_gradient_accumulation_is_refused_for_losses_that_couple_a_steps_rows(loss):
    with pytest.raises(ValueError, match=f"{loss}.*gradient_accumulation_steps=1"):
        PreferenceConfig(loss=loss, gradient_accumulation_steps=2)


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize("loss", ["dpo", "beta_dpo", "tdpo2", "dro"])
def test_interrupted_run_resumes_bit_for_bit(rows, tok, tmp_path, monkeypatch, loss):
    """Crash between checkpoints, rerun: same history and parameters as an uninterrupted run
    (beta-DPO's filter draws and TDPO's frozen reference included); a finished run does no step."""
    data = rewarded(rows[:16]) if loss == "dro" else rows[:32]
    config = PreferenceConfig(loss=loss, batch_size=8, epochs=2, save_steps=3, output_dir=str(tmp_path / "ckpt"))
    straight = train_preference(policy(), replace(config, output_dir=None), data, tokenizer=tok)
    crash_at(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train_preference(policy(), config, data, tokenizer=tok)
    monkeypatch.undo()
    assert torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=False)["step"] == 3
    # a perturbed start: the checkpoint must win (TDPO's reference is the model passed in, so not there)
    resumed = train_preference(policy(noise=loss != "tdpo2"), config, data, tokenizer=tok)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for (name, a), b in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
    assert resumed.values == straight.values
    crash_at(monkeypatch, 0)  # any step would raise
    assert train_preference(policy(), config, data, tokenizer=tok).history == straight.history


def test_resuming_with_other_data_or_settings_is_refused(rows, tok, tmp_path):
    """The checkpoint's fingerprint covers the data and the settings (not output_dir/save_steps)."""
    config = replace(FAST, min_steps=1, output_dir=str(tmp_path))
    train_preference(policy(), config, rows[:16], tokenizer=tok)
    train_preference(policy(), replace(config, save_steps=7), rows[:16], tokenizer=tok)
    with pytest.raises(ValueError, match="other data or settings"):
        train_preference(policy(), config, rows[:15], tokenizer=tok)
    with pytest.raises(ValueError, match="other data or settings"):
        train_preference(policy(), replace(config, beta=0.2), rows[:16], tokenizer=tok)


# ------------------------------------------------------------------ sDPO


def test_sdpo_refreshes_the_second_chunks_reference_from_the_policy_at_the_boundary(rows, tok, tmp_path, monkeypatch):
    """reference_stages=2: chunk 2's reference log-probs are the policy's after stage 1 (also across a
    resume at the boundary), chunk 1 keeps the initial ones, and stage 2 starts at log-ratio 0."""
    config = PreferenceConfig(batch_size=16, epochs=1, min_steps=12, reference_stages=2, save_steps=6,
                              output_dir=str(tmp_path))
    stage_one = policy()
    crash_at(monkeypatch, 6)  # stage 2 begins at step 6: stop there, keeping the stage-1 policy
    with pytest.raises(KeyboardInterrupt):
        train_preference(stage_one, config, rows, tokenizer=tok)
    monkeypatch.undo()
    prompts, chosen = [r["prompt"] for r in rows], [r["chosen"] for r in rows]
    boundary = sequence_logprobs(stage_one, tok, prompts[32:], chosen[32:])
    initial = sequence_logprobs(policy(), tok, prompts, chosen)

    result = train_preference(policy(), config, rows, tokenizer=tok)
    ref = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["extra"]["ref"]["main"]
    assert torch.allclose(ref[:32], initial[:32], atol=1e-4)
    assert torch.allclose(ref[32:], boundary, atol=1e-4)
    assert not torch.allclose(ref[32:], initial[32:], atol=1e-2)
    assert abs(result.history[6]["chosen_logratio"]) < 1e-4 < abs(result.history[5]["chosen_logratio"])
    single = train_preference(policy(), replace(config, reference_stages=1, output_dir=None), rows, tokenizer=tok)
    assert abs(single.history[6]["chosen_logratio"]) > 1e-2


# ------------------------------------------------------------------ QLoRA on CPU


def dequantized(model):
    return {n: bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state)
            for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}


def test_qlora_dpo_moves_every_adapter_and_no_base_weight(rows, tok):
    """NF4 + LoRA on CPU: every lora_ tensor changes (gradients reach every layer, even after the
    eval-mode reference pass), nothing else does, and the 4-bit base weights stay bit-identical."""
    model, _ = load_model("tiny-text-lm", QLORA)
    assert isinstance(dict(model.named_modules())["base_model.model.model.layers.0.self_attn.q_proj"].base_layer, bnb.nn.Linear4bit)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = dequantized(model)
    result = train_preference(model, replace(FAST, min_steps=4, learning_rate=1e-2), rows[:32], tokenizer=tok)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {n for n in before if "lora_" in n}
    assert all(torch.equal(w, base[n]) for n, w in dequantized(model).items())
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_qlora_training_after_an_eval_pass_still_reaches_every_layer(rows, tok):
    """bitsandbytes repacks 4-bit weights on an eval-mode no-grad forward (e.g. sampling pairs)
    for a CPU kernel that passes no gradient back; train_preference undoes it, so one step
    (lora_B starts at 0: only the base layers carry the gradient) moves every lora_B."""
    model, _ = load_model("tiny-text-lm", QLORA)
    model.eval()
    with torch.no_grad():
        model(**tok(["the movie was"], return_tensors="pt"))
    lora_b = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    train_preference(model, replace(FAST, batch_size=32, min_steps=1), rows[:32], tokenizer=tok)
    unmoved = [n for n, p in model.named_parameters() if n in lora_b and torch.equal(p, lora_b[n])]
    assert not unmoved


def test_qlora_token_level_loss_uses_the_disabled_adapter_as_reference(rows, tok, monkeypatch):
    """TDPO under LoRA: the reference logits come from the model with its adapters disabled,
    once per step, and the adapters train."""
    model, _ = load_model("tiny-text-lm", QLORA)
    calls = {"n": 0}
    real = model.disable_adapter

    def counted():
        calls["n"] += 1
        return real()

    monkeypatch.setattr(model, "disable_adapter", counted)
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    result = train_preference(model, replace(FAST, loss="tdpo2", min_steps=4, learning_rate=1e-2), rows[:32], tokenizer=tok)
    assert calls["n"] == len(result.history) == 4
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert all(not torch.equal(p, lora[n]) for n, p in model.named_parameters() if "lora_" in n)


# ------------------------------------------------------------------ bad input


def test_unknown_loss_lists_the_valid_names():
    """A typo in the loss name lists every valid one."""
    with pytest.raises(ValueError, match=r"'dpo'.*'simpo'"):
        PreferenceConfig(loss="dpoo")


@pytest.mark.parametrize("beta", [0.0, -0.1, float("nan")])
def test_non_positive_beta_is_rejected_by_name(beta):
    """beta must be > 0."""
    with pytest.raises(ValueError, match="beta"):
        PreferenceConfig(beta=beta)


@pytest.mark.parametrize("loss", ["tdpo1", "tdpo2", "simpo"])
def test_sdpo_is_refused_for_token_level_and_reference_free_losses(loss):
    """reference_stages > 1 needs a sequence-level reference to refresh."""
    with pytest.raises(ValueError, match=f"reference_stages.*{loss}"):
        PreferenceConfig(loss=loss, reference_stages=2)


def test_more_sdpo_stages_than_rows_is_refused(rows, tok):
    """Each sDPO chunk needs a row (it used to divide by zero)."""
    with pytest.raises(ValueError, match="reference_stages=3"):
        train_preference(policy(), replace(FAST, reference_stages=3), rows[:2], tokenizer=tok)


@pytest.mark.parametrize("loss", ["dpo", "kto", "npo"])
@pytest.mark.parametrize("bad, message", [({"chosen": None}, "row 2 has no 'chosen'"), ({"rejected": ""}, "row 2: 'rejected'")])
def test_a_bad_pair_is_named_whatever_format_it_converts_to(rows, tok, loss, bad, message):
    """A pair without 'chosen' or with an empty 'rejected' names its index, also for KTO/NPO."""
    data = rows[:2] + [{k: v for k, v in {**rows[2], **bad}.items() if v is not None}] + rows[3:5]
    with pytest.raises(PreferenceDataError, match=message):
        train_preference(policy(), replace(FAST, loss=loss), data, tokenizer=tok)


@pytest.mark.parametrize("field, value, message", [
    ("reward", float("nan"), "row 1: 'reward' must be a finite number"),
    ("reward", None, "row 1: 'reward'"),
    ("reward", True, "row 1: 'reward' must be a finite number"),  # a flag, not a reward (margins refuse it too)
    ("completion", "  ", "row 1: 'completion'"),
])
def test_a_bad_rewarded_row_is_named(rows, tok, field, value, message):
    """DRO rows: a NaN, missing or boolean reward, or a blank completion, names the row."""
    data = rewarded(rows[:2])
    data[1] = {**data[1], field: value}
    with pytest.raises(PreferenceDataError, match=message):
        train_preference(policy(), replace(FAST, loss="dro"), data, tokenizer=tok)


@pytest.mark.parametrize("label", [1, "yes", None])
def test_an_unpaired_row_without_a_bool_label_is_named(rows, tok, label):
    """KTO rows need label True/False exactly."""
    data = prepare_rows(rows[:2], "unpaired")
    data[1] = {**data[1], "label": label}
    with pytest.raises(PreferenceDataError, match="row 1: 'label'"):
        train_preference(policy(), replace(FAST, loss="kto"), data, tokenizer=tok)


def test_no_grad_passes_split_rows_so_the_logits_stay_within_budget():
    from survey_lib.sequences import LOGITS_BUDGET, rows_per_pass

    assert rows_per_pass([[1] * 30] * 500, 200, 256) == 256  # the zoo: the cap binds
    big = rows_per_pass([([1] * 100, 50)] * 500, 49152, 256)  # SmolLM2's vocabulary
    assert big * 100 * 49152 <= LOGITS_BUDGET < (big + 1) * 100 * 49152
    assert rows_per_pass([[1] * 10**6], 49152, 256) == 1
