"""Seed-ensemble study: members = final model + extras (other init seeds, same split).
For each run, the score chosen by the probe (strict best over the six fusions, exact ties to
the label-free end) is computed per member with that member's D_u stats, re-standardised by
its D_u median/IQR, and averaged over the first M members."""
import os, sys, numpy as np, json, glob
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules import arr, stats, cands, A, auc, ap, robust
PREF = ["mse","mse+kl+","mse+0.5logit","mse+0.5logit+kl+","logit+mse","combined"]
def study(d):
    rows=[]
    for f in sorted(glob.glob(f"out/{d}/run*.json")):
        j=json.load(open(f))
        p={k:arr(v) for k,v in j["probe"].items()}
        st=stats(p["u_train"]); cu=cands(p["u_val"],st); cl=cands(p["l_val"],st)
        val={c:A(cl[c],cu[c])[0] for c in PREF}
        best=max(val.values()); chosen=next(c for c in PREF if val[c]>=best)
        mem=[j["final"]]+j.get("extra",[])
        y=np.array(j["final"]["test_label"])
        per={}
        for c in PREF+["chosen"]:
            cc = chosen if c=="chosen" else c
            zs=[]; single=[]
            for m in mem:
                u=arr(m["u"]); t=arr(m["test"]); s=stats(u)
                cu_=cands(u,s)[cc]; ct_=cands(t,s)[cc]
                zs.append(robust(ct_,cu_)); single.append(auc(y,ct_))
            per[c]={M:(auc(y,np.mean(zs[:M],0)),ap(y,np.mean(zs[:M],0))) for M in range(1,len(mem)+1)}
            per[c]["single_mean"]=np.mean(single)
        rows.append((chosen,per))
    return rows
for d in sys.argv[1:]:
    r=study(d)
    if not r: continue
    n=len(r); Ms=sorted(k for k in r[0][1]["chosen"] if isinstance(k,int))
    print(f"== {d} ({n} runs) chosen: {dict(zip(*np.unique([x[0] for x in r],return_counts=True)))}")
    for c in ["chosen"]+PREF:
        s=" ".join(f"M{M} {np.mean([x[1][c][M][0] for x in r]):.3f}/{np.mean([x[1][c][M][1] for x in r]):.3f}" for M in Ms)
        print(f"  {c:18s} members-avg-single {np.mean([x[1][c]['single_mean'] for x in r]):.3f} | {s}")
