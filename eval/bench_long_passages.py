"""Dense passage vectors of long passages: truncated to MiniLM's 256-token window (what the engine and
sentence-transformers do) vs the token mean over consecutive 254-token windows, on SciFact's passages
(51 % longer than the window) with exact search; writes nothing, prints recall and nDCG.

    python eval/bench_long_passages.py   # reads SciFact's cached eval index (eval/cache/hippograph/scifact-spacy-*)
"""
import sys, json, glob, os, sqlite3, time
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import numpy as np
from sentence_transformers import SentenceTransformer
from hippograph.tables import unpack_text
from hippograph.text import passage_embedding_text
from eval.datasets import load_dataset
from eval.metrics import dedupe, recall_at_k, ndcg_at_k

d = [d for d in sorted(glob.glob(os.path.join(REPO, "eval/cache/hippograph/scifact-spacy-*")), key=os.path.getmtime, reverse=True) if os.path.exists(d + "/manifest.json")][0]
man = json.load(open(d + "/manifest.json"))
c = sqlite3.connect(d + "/" + man["generation"] + "/meta.sqlite")
rows = c.execute("select doc_id, title, text from passages order by idx").fetchall()
texts = [passage_embedding_text(t, unpack_text(x)) for _, t, x in rows]
docs = [r[0] for r in rows]
from hippograph.embedders import resolve_sentence_transformer_model
m = SentenceTransformer(str(resolve_sentence_transformer_model("all-MiniLM-L6-v2")), device="cpu")
tok = m.tokenizer
W = 254
t0 = time.time()
trunc = m.encode(texts, batch_size=64, normalize_embeddings=True)
print("trunc", time.time() - t0, flush=True)
win = trunc.copy()
long_idx = []
pieces, owner = [], []
for i, t in enumerate(texts):
    enc = tok(t, add_special_tokens=False, return_offsets_mapping=True)
    offs = enc["offset_mapping"]
    if len(offs) + 2 <= 256:
        continue
    long_idx.append(i)
    for a in range(0, len(offs), W):
        s, e = offs[a][0], offs[min(a + W, len(offs)) - 1][1]
        pieces.append(t[s:e]); owner.append(i)
t0 = time.time()
tokvecs = m.encode(pieces, batch_size=32, output_value="token_embeddings")
print("pieces", len(pieces), "long", len(long_idx), time.time() - t0, flush=True)
acc = {}
for i, tv in zip(owner, tokvecs):
    tv = tv.float().numpy() if hasattr(tv, "numpy") else np.asarray(tv)
    s, n = acc.get(i, (0, 0)); acc[i] = (s + tv.sum(0), n + len(tv))
for i, (s, n) in acc.items():
    v = s / n; win[i] = v / np.linalg.norm(v)
bench = load_dataset("scifact")
qs = bench.scored_queries()
qv = m.encode([q.question for q in qs], batch_size=64, normalize_embeddings=True)
for name, P in (("truncated", trunc), ("windows", win)):
    S = qv @ P.T
    r10 = nd = r5 = 0
    for q, s in zip(qs, S):
        top = np.argsort(-s)[:200]
        ranked = dedupe(docs[j] for j in top)
        grades = q.grades or {g: 1.0 for g in q.gold}
        r5 += recall_at_k(ranked, q.gold, 5); r10 += recall_at_k(ranked, q.gold, 10); nd += ndcg_at_k(ranked, grades, 10)
    n = len(qs)
    print(name, f"R@5 {100*r5/n:.2f} R@10 {100*r10/n:.2f} nDCG@10 {100*nd/n:.2f}", flush=True)
