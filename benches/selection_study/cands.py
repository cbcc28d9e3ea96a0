"""Selection over candidate sets, single network (M1): test AUC-ROC of the strict-best pick."""
import os, sys, numpy as np, json, glob
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules import arr, stats, cands, A, auc, ap, z, feats
def ext(r, st):
    c = cands(r, st); zz = z(feats(r), st)
    c["mse+2logit+kl+"] = zz["lmse"]+2*zz["logit"]+np.maximum(zz["nkl"],0)
    c["mse+4logit"] = zz["lmse"]+4*zz["logit"]
    return c
SETS = {
 "six": ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined"],
 "eight(+2logit)": ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined","mse+2logit","mse+2logit+kl+"],
 "seven(+2logit)": ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined","mse+2logit"],
}
for d in sys.argv[1:]:
    out = {k: [] for k in SETS}; fixed = {}
    files = sorted(glob.glob(f"out/{d}/run*.json"))
    for f in files:
        j = json.load(open(f))
        p = {k: arr(v) for k, v in j["probe"].items()}
        st = stats(p["u_train"]); cu = ext(p["u_val"], st); cl = ext(p["l_val"], st)
        fz = j["final"]; fst = stats(arr(fz["u"])); ct = ext(arr(fz["test"]), fst)
        y = np.array(fz["test_label"])
        for name, cs in SETS.items():
            val = {c: A(cl[c], cu[c])[0] for c in cs}
            best = max(val.values()); ch = next(c for c in cs if val[c] >= best - 1e-12)
            out[name].append((auc(y, ct[ch]), ch))
        for c in ["mse+2logit", "mse+2logit+kl+", "mse+4logit", "combined"]:
            fixed.setdefault(c, []).append(auc(y, ct[c]))
    print(f"== {d} ({len(files)} runs)  fixed: " + " ".join(f"{c} {np.mean(v):.3f}" for c, v in fixed.items()))
    for name, v in out.items():
        print(f"  {name:16s} {np.mean([a for a,_ in v]):.3f}  {dict(zip(*np.unique([c for _,c in v], return_counts=True)))}")
