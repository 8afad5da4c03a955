import hashlib
import json

import bitsandbytes as bnb
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from survey_lib.generation import sample_completions
from survey_lib.models import HubUnavailableError, LoraSettings, ModelSettings, load_model, resolve_model_path, trainable_copy
from survey_lib.profiles import PROFILES, get_profile
from survey_lib.tokenization import build_tokenizer
from survey_lib.world.arithmetic import VOCABULARY, ArithmeticTask
from survey_lib.zoo import ZOO, zoo_path
from survey_lib.zoo.build import build


# ----- tokenizers


def test_word_tokenizer_round_trip_and_chat_template(world, tmp_path):
    build_tokenizer(world.vocabulary, "word").save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "the movie was not bad !"
    assert tok.decode(tok(text)["input_ids"]) == text
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "the movie"}, {"role": "assistant", "content": "was great ."}], tokenize=False
    )
    assert chat == "<|user|> the movie <|assistant|> was great . </s> "
    assert tok.convert_ids_to_tokens(tok(chat)["input_ids"])[-1] == tok.eos_token
    assert tok.pad_token_id != tok.eos_token_id


def test_char_tokenizer_round_trip():
    tok = build_tokenizer(VOCABULARY, "char")
    ids = tok("12+35=47")["input_ids"]
    assert len(ids) == 8 and tok.decode(ids) == "12+35=47"


def test_unknown_level_lists_choices():
    with pytest.raises(ValueError, match="'word', 'char'"):
        build_tokenizer(["a"], "byte")


# ----- the zoo


@pytest.mark.parametrize("name", list(ZOO))
def test_committed_zoo_model_matches_its_manifest(name):
    path = zoo_path(name)
    manifest = json.loads((path / "manifest.json").read_text())
    assert hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest() == manifest["weights_sha256"]
    assert manifest["parameters"] < 3_000_000  # "a few M parameters at most"


@pytest.mark.parametrize("name, text", [("tiny-text-lm", "the movie was not bad !"), ("tiny-arith-lm", "12+35=47")])
def test_auto_tokenizer_loads_the_zoo_tokenizer_unchanged(name, text):
    # TRL loads tokenizers by path with AutoTokenizer; it must not swap in a Hub class
    tok = AutoTokenizer.from_pretrained(zoo_path(name))
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == text
    assert len(ids) == (len(text.split()) if name == "tiny-text-lm" else len(text))


def test_zoo_build_is_deterministic(tmp_path):
    one = build("tiny-text-lm", tmp_path / "one", steps=3, progress=False)
    two = build("tiny-text-lm", tmp_path / "two", steps=3, progress=False)
    assert one["weights_sha256"] == two["weights_sha256"]
    AutoModelForCausalLM.from_pretrained(tmp_path / "one")  # a valid from_pretrained path


def test_text_model_writes_the_world_fluently(world):
    model, tok = load_model("tiny-text-lm")
    prompts = list(world.prompts) * 8
    samples = sample_completions(model, tok, prompts, seed=0)
    c = world.components(prompts, samples)
    assert c["ended"].mean() > 0.95 and c["fluency"].mean() > 0.85


def test_arithmetic_model_is_partly_right():
    model, tok = load_model("tiny-arith-lm")
    task = ArithmeticTask()
    prompts = [task.prompt(a, b) for a, b in task.sample_problems(300, np.random.default_rng(5))]
    accuracy = task.verify(prompts, sample_completions(model, tok, prompts, max_new_tokens=5, seed=0)).mean()
    assert 0.4 < accuracy < 0.8  # room for RL to improve it (chapter 09)


# ----- loading


def test_zoo_name_and_path_resolve_to_the_same_model():
    assert resolve_model_path("tiny-text-lm") == str(zoo_path("tiny-text-lm"))
    by_name, _ = load_model("tiny-text-lm")
    by_path, _ = load_model(zoo_path("tiny-text-lm"))
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), by_path.state_dict().values()))


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="tiny-text-lm"):
        load_model("tiny-txt-lm")
    with pytest.raises(ValueError, match="'none', 'nf4'"):
        load_model("tiny-text-lm", quantization="int3")
    with pytest.raises(ValueError, match="'tiny', 'small', 'colab', 'gpu'"):
        get_profile("laptop")
    with pytest.raises(ValueError, match="alpha"):
        LoraSettings(alpha=0)
    with pytest.raises(TypeError, match="r must be int"):
        LoraSettings(r=2.5)


def test_hub_id_offline_says_so_and_points_to_tiny():
    with pytest.raises(HubUnavailableError, match="'tiny' profile"):
        load_model("no-such-org/no-such-model")


def test_profiles_name_real_models():
    assert get_profile("tiny").text_model in ZOO and get_profile("tiny").judge_model in ZOO
    assert PROFILES["colab"].settings.dtype == "float16"  # a T4 has no bf16
    assert PROFILES["gpu"].settings.dtype == "bfloat16"
    assert all(p.settings.quantization == "nf4" for n, p in PROFILES.items() if n in ("colab", "gpu"))
    assert PROFILES["small"].settings.device == "cpu" and PROFILES["small"].settings.lora is not None


def test_qlora_on_cpu_trains_only_the_adapters():
    model, tok = load_model(
        "tiny-text-lm", ModelSettings(quantization="nf4", lora=LoraSettings(r=4, alpha=8, dropout=0.0), device="cpu")
    )
    base = model.get_base_model()
    linears = [m for n, m in base.named_modules() if n.endswith(("q_proj.base_layer", "down_proj.base_layer"))]
    assert linears and all(isinstance(m, bnb.nn.Linear4bit) for m in linears)
    assert linears[0].weight.quant_state.quant_type == "nf4"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad and p.dtype.is_floating_point}
    batch = tok(["the movie was great .", "the plot was dull ."], return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # lora_B starts at zero, so the first step moves only B
        loss = model(**batch, labels=batch["input_ids"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = dict(model.named_parameters())
    assert all(not torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(frozen[n], after[n]) for n in frozen)
    assert sample_completions(model, tok, ["the movie"], seed=0)[0]  # still generates


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_a_trainable_copy_shares_the_frozen_base_and_trains_apart(quantization):
    model, tok = load_model("tiny-text-lm", ModelSettings(quantization=quantization, lora=LoraSettings(r=4), device="cpu"))
    copy_ = trainable_copy(model)
    original, copied = dict(model.named_parameters()), dict(copy_.named_parameters())
    assert original.keys() == copied.keys()
    for name, p in original.items():  # the base is the same tensor; each adapter its own
        assert (copied[name] is p) == (not p.requires_grad), name
    before = {n: p.detach().clone() for n, p in original.items()}
    batch = tok(["the movie was great ."], return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in copy_.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = copy_(**batch, labels=batch["input_ids"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())  # the original did not move
    assert any(not torch.equal(before[n], p) for n, p in copy_.named_parameters())
    full, _ = load_model("tiny-text-lm")  # every weight trainable: a deep copy, nothing shared
    assert not any(a is b for a, b in zip(full.parameters(), trainable_copy(full).parameters()))


def test_lora_on_the_last_layers_adapts_only_those_blocks_and_backpropagates_no_further():
    model, tok = load_model("tiny-text-lm", ModelSettings(lora=LoraSettings(r=4, last_layers=1), device="cpu"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    assert {n.split(".layers.1.")[1].split(".lora_")[0] for n in trainable} == {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}  # "all-linear" inside the adapted block
    batch = tok(["the movie was great ."], return_tensors="pt")
    hidden = model(**batch, output_hidden_states=True).hidden_states
    assert not hidden[1].requires_grad and hidden[2].requires_grad  # block 0's output carries no graph
    with pytest.raises(ValueError, match="last_layers=3 but the model has 2"):
        load_model("tiny-text-lm", ModelSettings(lora=LoraSettings(last_layers=3), device="cpu"))


def test_a_profile_sets_its_response_limit_on_the_policies_it_loads():
    from survey_lib.generation import DEFAULT_MAX_NEW_TOKENS, response_limit

    model, _ = get_profile("tiny").load("text")
    assert response_limit(model) == DEFAULT_MAX_NEW_TOKENS == get_profile("tiny").max_new_tokens
    assert response_limit(model, 5) == 5
    model.generation_config.max_new_tokens = 7
    assert response_limit(model) == 7
    assert PROFILES["small"].max_new_tokens > DEFAULT_MAX_NEW_TOKENS  # English reviews need room to end
    with pytest.raises(ValueError, match="max_new_tokens"):
        response_limit(model, 0)


def test_bf16_mixed_precision_keeps_fp32_weights_and_logits_and_close_log_probs():
    settings = ModelSettings(lora=LoraSettings(r=4), device="cpu")
    plain, tok = load_model("tiny-text-lm", settings)
    mixed, _ = load_model("tiny-text-lm", settings, mixed_precision="bf16")
    batch = tok(["the movie was great ."], return_tensors="pt")
    logits = mixed(**batch).logits
    assert logits.dtype == torch.float32  # the output layer runs outside autocast
    assert all(p.dtype == torch.float32 for p in mixed.parameters())
    close = torch.log_softmax(plain(**batch).logits, -1) - torch.log_softmax(logits, -1)
    assert 0 < close.abs().max() < 0.1  # bf16 arithmetic inside, so near but not equal
    logits.sum().backward()
    assert all(p.grad is not None for p in mixed.parameters() if p.requires_grad)
    sample_completions(mixed, tok, ["the movie"], seed=0)  # generate goes through the autocast forward
    with pytest.raises(ValueError, match="mixed_precision"):
        ModelSettings(mixed_precision="fp8")


def test_bf16_mixed_precision_wrappers_follow_copies_to_their_own_weights():
    import copy

    model, tok = load_model("tiny-text-lm", ModelSettings(device="cpu"), head="reward", mixed_precision="bf16")
    twin = copy.deepcopy(model)
    assert twin.forward.__self__ is twin and twin.score.forward.__self__ is twin.score
    with torch.no_grad():
        twin.score.weight.zero_()
    batch = tok(["the movie was great ."], return_tensors="pt")
    assert torch.equal(twin(**batch).logits, torch.zeros(1, 1))  # the copy's own (zeroed) head
    assert model(**batch).logits.abs().item() > 0
