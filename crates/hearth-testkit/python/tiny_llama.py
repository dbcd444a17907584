"""Writes a tiny llama-architecture GGUF with random weights for the reasoning tests.

    python tiny_llama.py OUT.gguf

No registry ships a small enough real model, so the tests run llama.cpp's server on this one: its text is noise,
but the protocol (chat completions, streaming, keys, errors, timeouts) is llama.cpp's own. The vocabulary is a
SentencePiece one (all 256 byte tokens, so any text tokenizes) plus English words, so the noise reads as words.
Deterministic: the same file every time.
"""

import sys

import gguf
import numpy as np

WORDS = (
    "the a an of to in is it and or for on with as by at from that this be are was not no yes harbour boat boats "
    "fishing leave dawn tide sea ship night day library document answer question source because when where what "
    "who how why which there here they we you he she their our your one two three first last more most"
).split()


def vocabulary():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, byte
    pieces = ["▁" + w for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz") + [".", ",", "▁[1]", "▁[2]", "▁"]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, types


def main():
    out = sys.argv[1]
    tokens, scores, types = vocabulary()
    n_vocab, n_embd, n_head, n_ff, n_layer = len(tokens), 64, 2, 128, 2
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("hearth-test-tiny-llama")
    w.add_context_length(8192)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    )
    rng = np.random.default_rng(0)

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # Dimension 0 of every embedding is a constant that the small layers leave standing: through it an output
    # row's first weight is a bias the context cannot outweigh. The only such bias is for "{", so that where a
    # JSON schema allows an object or the end of a list (concept extraction's answer), the noise is a non-empty
    # list rather than always "[]".
    embeddings = r(n_vocab, n_embd)
    embeddings[:, 0] = 4.0
    w.add_tensor("token_embd.weight", embeddings)
    output = r(n_vocab, n_embd)
    output[:, 0] = 0.0
    # End-of-text, unknown and the control tokens score 0 against any state: never in the top-k a server samples
    # from, so an answer is never cut off before its first word.
    output[:3] = 0.0
    output[3:259] *= 0.1  # byte tokens rarely: the noise stays words
    output[3 + ord("{"), 0] = 0.35
    w.add_tensor("output.weight", output)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + t + ".weight", r(n_embd, n_embd, scale=0.05))
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(p + "ffn_gate.weight", r(n_ff, n_embd, scale=0.05))
        w.add_tensor(p + "ffn_up.weight", r(n_ff, n_embd, scale=0.05))
        w.add_tensor(p + "ffn_down.weight", r(n_embd, n_ff, scale=0.05))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
