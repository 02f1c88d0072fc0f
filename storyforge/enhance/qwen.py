"""Prompt expansion with an instruct LLM through transformers, loaded once, freed before rendering."""

from __future__ import annotations

import gc
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyforge.errors import MissingExtra, StoryforgeError

# Our own instructions. They ask for the order SkyReels-V2's captioner writes in (shot type, subject, action,
# scene, light, camera motion), since that is the order the video model was trained to read.
SYSTEM_PROMPT = (
    "You turn a short shot description into the caption a text-to-video model reads. Write one detailed "
    "caption in English: a single paragraph of plain sentences, with no list, heading, quotation marks, "
    "preamble or comment. Describe, in this order: the type of shot and the camera angle; the main subject "
    "and its visible attributes (appearance, clothing, colours, size); what the subject does; the setting "
    "and how the frame is composed; the lighting, colours and mood; and last, how the camera moves. Keep "
    "every fact of the description and its style words, and do not add people, animals, objects or written "
    "text that it does not imply. When the subject hardly moves, describe a slow camera movement. Use "
    "concrete visual words rather than feelings or sounds. Stay under 150 words. Reply with the caption only."
)
FIRST_FRAME_NOTE = (
    "This shot starts from a given image, its first frame, which shows what the description says. Describe "
    "that first frame faithfully (the same subject, setting, composition and light) and then the motion "
    "that follows; do not move the scene somewhere else."
)
CONTINUE_NOTE = (
    "This shot continues the previous shot without a cut: the same subject, place and light. Describe what "
    "happens next."
)
USER_TEMPLATE = "Shot description: {draft}\n{notes}Write the caption."
# In the lock: a change of our instructions makes every LLM entry stale.
INSTRUCTIONS_SHA256 = hashlib.sha256(
    "\n".join((SYSTEM_PROMPT, FIRST_FRAME_NOTE, CONTINUE_NOTE, USER_TEMPLATE)).encode()
).hexdigest()

MAX_CHARS = 1500  # ~300 words: past that, the video model's text encoder (512 tokens) drops the end
MIN_WORDS = 3
DEFAULT_BATCH = 8
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class Request:
    """One shot to expand: its template prompt and what kind of shot it is."""

    id: str
    draft: str
    starts_from_image: bool = False
    continues: bool = False


@dataclass(frozen=True)
class Expansion:
    """The model's answer for one shot: the post-processed caption, or None with the reason it is unusable."""

    id: str
    prompt: str | None
    reason: str | None
    raw: str
    new_tokens: int
    chat: str  # the exact text the model was given (its chat template applied)


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: a hub id, or a local folder with a hash of its files."""

    name: str  # as written
    folder: Path | None
    sha256: str | None

    @property
    def location(self) -> str:
        return str(self.folder) if self.folder is not None else self.name


def locate(name: str, base: Path) -> ModelRef:
    """A model named in a story (`base`: the story's folder) or on the command line (`base`: the working folder)."""
    path = Path(name).expanduser()
    folder = path if path.is_absolute() else base / path
    if folder.is_dir():
        return ModelRef(name, folder.resolve(), folder_sha256(folder))
    if _HUB_ID.fullmatch(name) and not name.startswith((".", "~")):
        return ModelRef(name, None, None)
    raise StoryforgeError(f"no model folder '{name}' (relative to {base}), and it is not a hub id like "
                          "Qwen/Qwen2.5-7B-Instruct")


def folder_sha256(folder: Path) -> str:
    """A hash of a model folder: every file's path and size, the bytes of small files and both ends of large
    ones (hashing 15 GB of weights on every run would take minutes; a changed checkpoint changes its ends)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder))):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with path.open("rb") as handle:
            if size <= 2 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(size - (1 << 20))
                digest.update(handle.read())
    return digest.hexdigest()


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def user_message(request: Request) -> str:
    notes = ""
    if request.starts_from_image:
        notes += FIRST_FRAME_NOTE + "\n"
    if request.continues:
        notes += CONTINUE_NOTE + "\n"
    return USER_TEMPLATE.format(draft=request.draft, notes=notes)


def messages(request: Request) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message(request)}]


_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:\*\*)?\s*(?:enhanced |final |video )?(?:caption|prompt|description)\s*(?:\*\*)?\s*:\s*",
                    re.IGNORECASE)
_LIST_MARK = re.compile(r"^\s*(?:[-*•#>]+|\d+[.)])\s+", re.MULTILINE)
_TEMPLATE_MARKS = ("{{", "}}", "{%", "%}", "{#", "#}")


def postprocess(raw: str, max_chars: int = MAX_CHARS) -> str:
    """The model's answer as one clean paragraph: no reasoning block, label, markup, quotes or line breaks,
    at most `max_chars` characters, cut at a sentence end where one is near."""
    text = _THINK.sub(" ", raw)
    text = _LIST_MARK.sub("", text)
    text = _LABEL.sub("", text)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    while any(mark in text for mark in _TEMPLATE_MARKS):  # the plan never holds template syntax
        for mark in _TEMPLATE_MARKS:
            text = text.replace(mark, " ")
    text = " ".join(text.split())
    text = text.strip(" \"'“”‘’")
    if len(text) > max_chars:
        cut = text[:max_chars]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text = cut[: end + 1] if end >= max_chars // 2 else cut[: cut.rfind(" ")].rstrip(",;:") + "."
    return text


def unusable(text: str) -> str | None:
    """Why a post-processed answer cannot be a prompt, or None when it can."""
    if not text:
        return "the model returned nothing"
    letters = [c for c in text if c.isalpha()]
    if sum(c.isascii() for c in letters) < 0.9 * len(letters):
        return "the model did not answer in English"
    words = re.findall(r"[^\W\d_]+", text)
    if len(words) < MIN_WORDS:
        return f"the model returned too little text ({text[:40]!r})"
    counts = Counter(word.lower() for word in words)
    if len(words) >= 8 and counts.most_common(1)[0][1] > len(words) / 2:
        return "the model repeated itself"
    return None


def _imports() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MissingExtra("torch", "llm", "Prompt expansion with an LLM (enhance.llm / --llm)") from None
    try:
        import transformers
    except ImportError:
        raise MissingExtra("transformers", "llm", "Prompt expansion with an LLM (enhance.llm / --llm)") from None
    return torch, transformers


class Expander:
    """A loaded instruct model and its tokenizer. Use it in a `with` block: leaving it frees the model."""

    def __init__(self, ref: ModelRef, tokenizer: Any, model: Any, device: str, load_seconds: float):
        self.ref, self.tokenizer, self.model, self.device = ref, tokenizer, model, device
        self.load_seconds = load_seconds

    @classmethod
    def load(cls, ref: ModelRef, device: str | None = None) -> Expander:
        """Load once: tokenizer and weights from the hub or a local folder, never running code they carry."""
        torch, transformers = _imports()
        started = time.perf_counter()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        # transformers 5 calls it `dtype`; 4.x `torch_dtype`
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        options = {dtype_key: dtype}
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # the library never prints; callers show progress
        if ref.folder is None:  # a hub model: on this machine already, or fetched now on purpose (one policy)
            from storyforge import hub

            try:
                hub.ensure([hub.Needed("prompt model", ref.name, "", index="config.json")])
            except StoryforgeError as missing:
                raise StoryforgeError(str(missing).replace("render with --download", "run enhance with --download")
                                      .replace("in the middle of a render", "unasked")) from None
        try:  # never the network here: a missed file is an error at once, not minutes of retries
            tokenizer, model = _from_pretrained(transformers, ref.location, local_files_only=True, **options)
        except (OSError, ValueError) as error:
            reason = " ".join(str(error).split())[:300].rstrip(".")
            raise StoryforgeError(f"could not load the model '{ref.name}': {reason}; give a local model folder, or "
                                  f"download it (again) with `hf download {ref.name}`") from None
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        if not getattr(tokenizer, "chat_template", None):
            raise StoryforgeError(f"the model '{ref.name}' has no chat template; use an instruct model such as "
                                  "Qwen/Qwen2.5-7B-Instruct")
        tokenizer.padding_side = "left"  # a batch of prompts must end where generation starts
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.to(device).eval()
        return cls(ref, tokenizer, model, device, time.perf_counter() - started)

    def __enter__(self) -> Expander:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the model (and GPU memory) so rendering has the whole device."""
        if self.model is None:
            return
        self.model = None
        self.tokenizer = None
        gc.collect()
        torch, _ = _imports()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def chat(self, request: Request) -> str:
        return self.tokenizer.apply_chat_template(messages(request), tokenize=False, add_generation_prompt=True,
                                                  enable_thinking=False)

    def expand(self, requests: Sequence[Request], *, seed: int, max_new_tokens: int, batch_size: int = DEFAULT_BATCH,
               on_progress: Callable[[int, int], None] | None = None) -> list[Expansion]:
        """Expand every request, `batch_size` at a time, with greedy (deterministic) decoding."""
        answers = self.complete([messages(request) for request in requests], seed=seed,
                                max_new_tokens=max_new_tokens, batch_size=batch_size, on_progress=on_progress)
        results: list[Expansion] = []
        for request, (raw, tokens, chat) in zip(requests, answers, strict=True):
            text = postprocess(raw)
            reason = unusable(text)
            results.append(Expansion(request.id, None if reason else text, reason, raw, tokens, chat))
        return results

    def complete(self, conversations: Sequence[list[dict[str, str]]], *, seed: int, max_new_tokens: int,
                 batch_size: int = DEFAULT_BATCH, on_progress: Callable[[int, int], None] | None = None,
                 ) -> list[tuple[str, int, str]]:
        """(raw answer, new tokens, chat text) for each conversation, greedy, `batch_size` at a time."""
        torch, transformers = _imports()
        if self.model is None:
            raise RuntimeError("the expander was closed")
        eos = self._eos_ids()
        config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, repetition_penalty=1.05,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=eos)
        results: list[tuple[str, int, str]] = []
        if on_progress:
            on_progress(0, len(conversations))
        for start in range(0, len(conversations), batch_size):
            chats = [self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True,
                                                        enable_thinking=False)
                     for conversation in conversations[start:start + batch_size]]
            inputs = self.tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            torch.manual_seed(seed)  # greedy decoding needs no randomness; the seed pins any that a model adds
            with torch.inference_mode():
                output = self.model.generate(**inputs, generation_config=config)
            new = output[:, inputs["input_ids"].shape[1]:].tolist()
            for chat, tokens in zip(chats, new, strict=True):
                used = _until_eos(tokens, eos)
                results.append((self.tokenizer.decode(used, skip_special_tokens=True), len(used), chat))
            if on_progress:
                on_progress(len(results), len(conversations))
        return results

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return sorted(i for i in ids if isinstance(i, int))


def _from_pretrained(transformers: Any, location: str, **options: Any) -> tuple[Any, Any]:
    """Tokenizer and model; never trusting code a model folder or hub repository carries."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(location, trust_remote_code=False,
                                                           local_files_only=options.get("local_files_only", False))
    model = transformers.AutoModelForCausalLM.from_pretrained(location, trust_remote_code=False, **options)
    return tokenizer, model


def _until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """The generated tokens up to and including the first end-of-turn token (padding after it dropped)."""
    for index, token in enumerate(tokens):
        if token in eos:
            return tokens[: index + 1]
    return tokens


def expand(requests: Sequence[Request], ref: ModelRef, *, seed: int, max_new_tokens: int,
           batch_size: int = DEFAULT_BATCH, on_progress: Callable[[int, int], None] | None = None) -> list[Expansion]:
    """Load the model, expand every request, free the model."""
    if not requests:
        return []
    with Expander.load(ref) as expander:
        return expander.expand(requests, seed=seed, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               on_progress=on_progress)


CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny(folder: Path, seed: int = 0, *, vocab_size: int = 512, text: Sequence[str] = ()) -> Path:
    """A seeded, random, Qwen2-style instruct model of about 400 KB, built offline (for tests and benchmarks):
    a byte-level BPE tokenizer (trained on our instructions and `text`) with a ChatML chat template, and a
    2-layer model that loads with from_pretrained. Its answers are noise; what it exercises is the real load,
    chat template and generate path."""
    torch, transformers = _imports()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [SYSTEM_PROMPT, FIRST_FRAME_NOTE, CONTINUE_NOTE, USER_TEMPLATE, *text,
              "Wide shot, low angle. A small red fox with a bushy white-tipped tail runs through a misty pine "
              "forest at sunrise. Soft golden light, calm mood. The camera slowly tracks alongside."] * 4
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                                pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"), pad_token_id=fast.pad_token_id)
    model = transformers.Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    fast.save_pretrained(folder)
    return folder
