"""Writes a tiny Llama-architecture GGUF model with random weights, for testing against
llama.cpp's real server on CPU (no download: only the `gguf` and `numpy` packages).

The model is nonsense — what matters is that llama.cpp loads it and serves real streams in
its own wire format. Vocabulary: SentencePiece-style (`tokenizer.ggml.model = llama`) with
<unk>, <s>, </s>, the 256 byte-fallback tokens and a few hundred words.

usage: make_gguf.py OUT.gguf
"""
import sys

import numpy as np
import gguf

N_EMBD, N_HEAD, N_LAYER, N_FF, CTX = 64, 4, 2, 128, 512
WORDS = [
    "ready", "model", "latency", "token", "stream", "answer", "quick", "brown", "fox", "jumps",
    "over", "lazy", "dog", "the", "a", "is", "of", "and", "to", "in", "on", "for", "with", "as",
    "GPU", "queue", "cache", "shift", "chart", "control", "limit", "process", "signal", "noise",
]


def vocab():
    toks, scores, types = [], [], []
    for t, ty in (("<unk>", gguf.TokenType.UNKNOWN), ("<s>", gguf.TokenType.CONTROL),
                  ("</s>", gguf.TokenType.CONTROL)):
        toks.append(t); scores.append(0.0); types.append(ty)
    for b in range(256):
        toks.append(f"<0x{b:02X}>"); scores.append(0.0); types.append(gguf.TokenType.BYTE)
    words = []
    for i in range(12):
        for w in WORDS:
            words.append(f"\u2581{w}{i if i else ''}")
    for i, w in enumerate(words):
        toks.append(w); scores.append(-float(i)); types.append(gguf.TokenType.NORMAL)
    return toks, scores, types


def main(out):
    rng = np.random.default_rng(7)
    toks, scores, types = vocab()
    n_vocab = len(toks)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("llmscope-tiny-test")
    w.add_context_length(CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def t(*shape, scale=0.02):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    ones = lambda n: np.ones(n, dtype=np.float32)  # noqa: E731
    # byte tokens and EOS get low output weight: answers are mostly whole words
    out_w = t(n_vocab, N_EMBD, scale=0.5)
    out_w[:259] *= 0.01
    w.add_tensor("token_embd.weight", t(n_vocab, N_EMBD, scale=0.5))
    w.add_tensor("output_norm.weight", ones(N_EMBD))
    w.add_tensor("output.weight", out_w)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "attn_q.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_k.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_v.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "attn_output.weight", t(N_EMBD, N_EMBD))
        w.add_tensor(p + "ffn_norm.weight", ones(N_EMBD))
        w.add_tensor(p + "ffn_gate.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_up.weight", t(N_FF, N_EMBD))
        w.add_tensor(p + "ffn_down.weight", t(N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
