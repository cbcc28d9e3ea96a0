"""Cross-validated selection: the strict best of the candidates by (a) the shipped single probe,
(b) the mean validation AUC over FOLDS probes, (c) both pooled; test AUC of the pick with one
network (M1) and the 5-member ensemble (M5)."""
import os, sys, numpy as np, json, glob
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules import arr, stats, cands, A, auc, ap, robust
SIX = ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined"]
EIGHT = SIX + ["mse+2logit"]
def pick(val, cs):
    best = max(val[c] for c in cs); return next(c for c in cs if val[c] >= best - 1e-12)
def valaucs(p):
    st = stats(p["u_train"]); cu = cands(p["u_val"], st); cl = cands(p["l_val"], st)
    return {c: A(cl[c], cu[c])[0] for c in cu}
for d in sys.argv[1:]:
    res = {}
    files = sorted(glob.glob(f"out/{d}/run*.json"))
    for f in files:
        j = json.load(open(f))
        y = np.array(j["final"]["test_label"])
        mem = [j["final"]] + j.get("extra", [])
        def test_auc(c, M):
            zs = []
            for m in mem[:M]:
                u = arr(m["u"]); t = arr(m["test"]); s = stats(u)
                zs.append(robust(cands(t, s)[c], cands(u, s)[c]))
            return auc(y, np.mean(zs, 0))
        single = valaucs({k: arr(v) for k, v in j["probe"].items()})
        folds = [valaucs({k: arr(v) for k, v in fd.items()}) for fd in j.get("folds", [])]
        rules = {"single": single}
        if folds:
            rules["cv"] = {c: np.mean([fv[c] for fv in folds]) for c in single}
            rules["cv+single"] = {c: np.mean([fv[c] for fv in folds + [single]]) for c in single}
        for rname, val in rules.items():
            for cname, cs in (("six", SIX), ("seven", EIGHT)):
                ch = pick(val, cs)
                for M in (1, len(mem)):
                    res.setdefault((rname, cname, M), []).append((test_auc(ch, M), ch))
    print(f"== {d} ({len(files)} runs)")
    for k, v in res.items():
        print(f"  {k[0]:10s} {k[1]:6s} M{k[2]}: {np.mean([a for a,_ in v]):.3f}  {dict(zip(*np.unique([c for _,c in v], return_counts=True)))}")
