import numpy as np, json, glob, sys, os
from sklearn.metrics import roc_auc_score as auc, average_precision_score as ap
G=1e-12  # score::LOGIT_GUARD (1e-7 before session 8)
def arr(d): return {k:(np.array(v,dtype=np.float64) if v is not None else None) for k,v in d.items()}
def feats(r):
    lg = np.log(np.maximum(r["m_l"],G)) - np.log(np.maximum(r["s_sum"],G))
    return {"logit": lg, "lmse": np.log(r["mse"]+1e-12), "nkl": -r["s_kl"], "nss": -r["s_sum"]}
def center_spread(v):
    # score::RobustStats::of: the median and the IQR, or a wider range rescaled where the IQR is ~0.
    q = np.percentile(v,[1,5,25,50,75,95,99]); sp = q[4]-q[2]
    if sp < 1e-6: sp = (q[5]-q[1])*1.349/3.290
    if sp < 1e-6: sp = (q[6]-q[0])*1.349/4.653
    return q[3], max(sp,1e-12)
def robust(v, ref):
    """`v` standardised by the median and spread of `ref`, as mmnet standardises over D_u."""
    c, sp = center_spread(ref)
    return (v-c)/sp
def stats(ref):
    return {k: center_spread(v) for k, v in feats(ref).items()}
def z(f,st):
    return {k:(f[k]-st[k][0])/st[k][1] for k in f}
def cands(r, st):
    zz = z(feats(r), st)
    c = {}
    c["combined"] = zz["logit"]+zz["lmse"]+np.maximum(zz["nkl"],0)
    c["mse"] = zz["lmse"]
    c["logit"] = zz["logit"]
    c["logit+mse"] = zz["logit"]+zz["lmse"]
    c["max"] = np.maximum(zz["logit"], zz["lmse"])
    c["mse+logit+"] = zz["lmse"]+np.maximum(zz["logit"],0)
    c["mse+0.5logit"] = zz["lmse"]+0.5*zz["logit"]
    c["mse+kl+"] = zz["lmse"]+np.maximum(zz["nkl"],0)
    c["mse+0.25logit"] = zz["lmse"]+0.25*zz["logit"]
    c["mse+0.5logit+kl+"] = zz["lmse"]+0.5*zz["logit"]+np.maximum(zz["nkl"],0)
    c["mse+0.5logit+"] = zz["lmse"]+0.5*np.maximum(zz["logit"],0)
    c["mse+2logit"] = zz["lmse"]+2*zz["logit"]
    c["logit+mse+kl+"] = c["combined"]
    c["s_kl"] = zz["nkl"]
    c["s_sum"] = zz["nss"]
    return c
def A(pos, neg):
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]; s = np.r_[pos,neg]
    return auc(y,s), ap(y,s)
def load(d):
    runs=[]
    for f in sorted(glob.glob(f"out/{d}/run*.json")):
        j=json.load(open(f)); runs.append(j)
    return runs
def evaluate(d):
    runs = load(d)
    res = []
    for j in runs:
        p = {k:arr(v) for k,v in j["probe"].items()}
        st = stats(p["u_train"])
        cu = cands(p["u_val"], st); cl = cands(p["l_val"], st)
        syn = {k[4:]: cands(v, st) for k,v in p.items() if k.startswith("syn_")}
        val = {c: {"known": A(cl[c], cu[c])[0], **{s: A(syn[s][c], cu[c])[0] for s in syn}} for c in cu}
        fz = j["final"]; fst = stats(arr(fz["u"])); ct = cands(arr(fz["test"]), fst)
        y = np.array(fz["test_label"]); t = np.array(fz["test_type"])
        test = {c: (auc(y,ct[c]), ap(y,ct[c])) for c in ct}
        types = sorted(set(t[y==1])) if len(set(t[y==1]))>1 else []
        per = {c: {int(k): auc(np.r_[np.zeros((y==0).sum()), np.ones((t==k).sum())], np.r_[ct[c][y==0], ct[c][(t==k)&(y==1)]]) for k in types} for c in ct}
        res.append(dict(val=val, test=test, per=per, secs=(j["probe_seconds"], j["final_seconds"]), ztest=z(feats(arr(fz["test"])), fst), y=y))
    return res
PREF = ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined"]
def tol_rule(val, eps, pref=PREF):
    best = max(val[c]["known"] for c in pref)
    for c in pref:
        if val[c]["known"] >= best - eps: return c
def rule(val, cset, crit):
    best=None
    for c in cset:
        v = crit(val[c])
        if best is None or v > best[0]+1e-12: best=(v,c)
    return best[1]
RULES = {
 "auto(now)": (["combined","mse"], lambda v: v["known"]),
 "known+marg/2": (["combined","mse"], lambda v: (v["known"]+v["marginal"])/2),
 "known+part/2": (["combined","mse"], lambda v: (v["known"]+v["partial"])/2),
 "known+range/2": (["combined","mse"], lambda v: (v["known"]+v["range"])/2),
 "known+all3/4": (["combined","mse"], lambda v: (v["known"]+(v["marginal"]+v["partial"]+v["range"])/3)/2),
 "min(known,part)": (["combined","mse"], lambda v: min(v["known"],v["partial"])),
 "known fam": (["mse","mse+0.25logit","mse+0.5logit","logit+mse","mse+2logit"], lambda v: v["known"]),
 "known fam3": (["mse","mse+0.5logit","logit+mse"], lambda v: v["known"]),
 "known fam3c": (["mse","mse+0.5logit","combined"], lambda v: v["known"]),
 "known fam+c": (["mse","mse+0.25logit","mse+0.5logit","logit+mse","combined"], lambda v: v["known"]),
 "grid6": (["combined","mse","mse+kl+","logit+mse","mse+0.5logit","mse+0.5logit+kl+"], lambda v: v["known"]),
 "grid4": (["combined","mse","mse+kl+","mse+0.5logit"], lambda v: v["known"]),
 "grid3": (["combined","mse","mse+kl+"], lambda v: v["known"]),
 "grid6pr": (["combined","mse","mse+kl+","logit+mse","mse+0.5logit","mse+0.5logit+kl+"], lambda v: v["known"]),
 "K+P wide": (["combined","mse","logit+mse","mse+logit+","mse+0.5logit","max"], lambda v: (v["known"]+v["partial"])/2),
 "K+3 wide": (["combined","mse","logit+mse","mse+logit+","mse+0.5logit","max"], lambda v: (v["known"]+(v["marginal"]+v["partial"]+v["range"])/3)/2),
}
W = {"combined":(1,1),"mse":(0,0),"mse+kl+":(0,1),"logit+mse":(1,0),"mse+0.5logit":(0.5,0),"mse+0.5logit+kl+":(0.5,1)}
def soft(r, tau):
    cs = list(W); a = np.array([r["val"][c]["known"] for c in cs]); p = np.exp((a-a.max())/tau); p/=p.sum()
    wa = sum(pi*W[c][0] for pi,c in zip(p,cs)); wb = sum(pi*W[c][1] for pi,c in zip(p,cs))
    return wa, wb
def fused_test(r, wa, wb):
    zz = r["ztest"]; s = zz["lmse"] + wa*zz["logit"] + wb*np.maximum(zz["nkl"],0)
    return auc(r["y"], s), ap(r["y"], s)
if __name__=="__main__":
    for d in sys.argv[1:]:
        res = evaluate(d)
        if not res: continue
        print(f"== {d}: {len(res)} runs, secs probe/final {np.mean([r['secs'][0] for r in res]):.1f}/{np.mean([r['secs'][1] for r in res]):.1f}")
        cs = list(res[0]["test"].keys())
        print("  fixed test AUC-ROC/PR: " + "  ".join(f"{c} {np.mean([r['test'][c][0] for r in res]):.3f}/{np.mean([r['test'][c][1] for r in res]):.3f}" for c in cs))
        print("  val known:  " + "  ".join(f"{c} {np.mean([r['val'][c]['known'] for r in res]):.3f}" for c in cs))
        for s in ["marginal","partial","range"]:
            print(f"  val {s[:5]}:  " + "  ".join(f"{c} {np.mean([r['val'][c][s] for r in res]):.3f}" for c in cs))
        for name,(cset,crit) in RULES.items():
            ch = [rule(r["val"], cset, crit) for r in res]
            a = np.mean([r["test"][c][0] for r,c in zip(res,ch)]); p = np.mean([r["test"][c][1] for r,c in zip(res,ch)])
            print(f"  rule {name:16s} {a:.3f}/{p:.3f}  chose {dict(zip(*np.unique(ch,return_counts=True)))}")
        for eps in (0.002, 0.005, 0.01, 0.02):
            ch = [tol_rule(r["val"], eps) for r in res]
            a = np.mean([r["test"][c][0] for r,c in zip(res,ch)]); p = np.mean([r["test"][c][1] for r,c in zip(res,ch)])
            print(f"  tol {eps:5}            {a:.3f}/{p:.3f}  chose {dict(zip(*np.unique(ch,return_counts=True)))}")
        for tau in (0.003, 0.01, 0.03):
            out = [fused_test(r, *soft(r, tau)) for r in res]
            print(f"  soft tau={tau}: {np.mean([o[0] for o in out]):.3f}/{np.mean([o[1] for o in out]):.3f}")
        if res[0]["per"]["mse"]:
            for c in ["combined","mse","mse+kl+","logit+mse","mse+0.5logit","mse+0.5logit+kl+"]:
                ks = res[0]["per"][c].keys()
                print(f"  per-type {c:14s} " + " ".join(f"{k}:{np.mean([r['per'][c][k] for r in res]):.3f}" for k in ks))
